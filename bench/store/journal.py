"""Append-only JSON-lines journal of finished requests, one file per run.

Why it exists: DuckDB allows one read-write process per file, so a run cannot
count on reaching the database the moment a (paid) request finishes; the
dashboard or another run may hold the file. The journal can always be written:
``<db dir>/journal/<db stem>/<run_id>.jsonl`` next to the database, one ``RequestRow`` per
line (``encode_row``), written with one ``os.write`` each (``Journal.write_line``: it survives
a crash of the process) and ``os.fsync``'d in batches (``Journal.sync``: it survives a power
cut). ``bench.store`` moves journaled rows into DuckDB and records how far each journal has
been ingested.

Shape of a line: every ``RequestRow`` field by name; money (``Decimal``) as a
plain decimal string so no JSON reader turns it into a float; ``chunk_gaps_ms``
as a list. Encoding and decoding go through polars (``write_ndjson`` /
``read_ndjson`` with a fixed schema) because per-row ``json.dumps`` is too slow
for 100k-row batches. The same "wire frame" (money and ``started_at`` as text) is
what the store inserts, letting DuckDB cast text to DECIMAL/TIMESTAMPTZ.

One process appends to a run's journal at a time (the run's process). A line cut
short by a crash was never acknowledged: readers stop at the last newline, and
the next ``Journal`` opened on that file truncates the torn tail before appending.
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import json
import math
import os
import re
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Any

import polars as pl

try:  # installed with streamlit; only used to build list columns faster
    import pyarrow as pa
except ImportError:  # pragma: no cover
    pa = None

from bench.errors import ConfigError, StoreError
from bench.records import REQUEST_COLUMNS, RequestRow

# RequestRow annotation -> polars dtype of the wire frame. Unknown annotations
# fail at import, so a new field type cannot silently be written as text.
_WIRE_TYPES: dict[str, Any] = {
    "str": pl.String,
    "str | None": pl.String,
    "int": pl.Int64,
    "int | None": pl.Int64,
    "float | None": pl.Float64,
    "bool": pl.Boolean,
    "bool | None": pl.Boolean,
    "Decimal | None": pl.String,  # money travels as exact text
    "list[float] | None": pl.List(pl.Float64),
}


def _wire_schema() -> dict[str, Any]:
    schema = {}
    for f in dataclasses.fields(RequestRow):
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if annotation not in _WIRE_TYPES:
            raise TypeError(f"RequestRow.{f.name}: no journal type for {annotation!r}")
        schema[f.name] = _WIRE_TYPES[annotation]
    return schema


WIRE_SCHEMA: dict[str, Any] = _wire_schema()
MONEY_COLUMNS = [
    f.name for f in dataclasses.fields(RequestRow) if f.type in ("Decimal | None", Decimal)
]
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class JournalWriteError(StoreError):
    """A journal line could not be written (``no space left on device``, a read-only disk)."""

    def __init__(self, path: Path, exc: OSError) -> None:
        reason = (exc.strerror or str(exc)).lower() if exc.errno else str(exc)
        super().__init__(f"{path}: cannot write the journal: {reason}")
        self.path = path
        self.errno = exc.errno


class RunLocked(ConfigError):
    """Another process is running or resuming this run."""


class RunLock:
    """One run, one writer: an exclusive ``flock`` held for the whole run or resume.

    The lock file ``<journal dir>/<run_id>.run.lock`` says who holds it. The kernel
    drops the lock when the holder exits, ``kill -9`` included, so a crashed run
    never blocks its own resume.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, journal_dir: Path, run_id: str) -> RunLock:
        path = journal_path(journal_dir, run_id).with_suffix(".run.lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JournalWriteError(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            for _ in range(20):  # the holder writes who it is right after taking the lock
                holder = os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
                if holder:
                    break
                time.sleep(0.01)
            holder = holder or "another process"
            os.close(fd)
            raise RunLocked(
                f"run {run_id} is already being run or resumed by {holder}; "
                "wait for it to end, or stop it, then resume"
            ) from None
        try:  # who holds it, for the message a second process prints; the flock is what counts
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} (since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC)".encode(), 0)
        except OSError:
            pass
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock; the file stays (unlinking would race)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def journal_path(journal_dir: Path, run_id: str) -> Path:
    """Where a run's journal lives; the run id must be a safe file name."""
    if not _SAFE_RUN_ID.match(run_id):
        raise ConfigError(f"run id {run_id!r} is not a safe file name")
    return journal_dir / f"{run_id}.jsonl"


def _money_text(value: Decimal | None) -> str | None:
    """Plain decimal text; str() is fast, format(..., "f") only undoes exponent notation."""
    if value is None:
        return None
    text = str(value)
    return format(value, "f") if "E" in text else text


def _column(name: str, values: list[Any]) -> pl.Series:
    dtype = WIRE_SCHEMA[name]
    if dtype == pl.List(pl.Float64) and pa is not None:
        # polars builds list columns from Python lists ~20x slower than pyarrow
        return pl.Series(name, pa.array(values, type=pa.list_(pa.float64())))
    series = pl.Series(name, values, dtype=dtype)
    if dtype == pl.Float64:  # NaN/inf is no measurement; JSON would turn it into null anyway
        series = series.to_frame().select(pl.when(pl.col(name).is_finite()).then(pl.col(name))).to_series()
    return series


def rows_frame(rows: list[RequestRow]) -> pl.DataFrame:
    """RequestRows -> wire frame, column by column (fast: no per-row dicts)."""
    columns = []
    for name in REQUEST_COLUMNS:
        values = list(map(attrgetter(name), rows))
        if name in MONEY_COLUMNS:
            values = list(map(_money_text, values))
        columns.append(_column(name, values))
    return pl.DataFrame(columns)


def frame_rows(frame: pl.DataFrame) -> list[RequestRow]:
    """Wire frame -> RequestRows (money back to Decimal)."""
    rows = []
    for record in frame.select(REQUEST_COLUMNS).iter_rows(named=True):
        for name in MONEY_COLUMNS:
            if record[name] is not None:
                record[name] = Decimal(record[name])
        rows.append(RequestRow(**record))
    return rows


_MONEY_SET = frozenset(MONEY_COLUMNS)


def _money_default(value: object) -> str:
    text = _money_text(value) if isinstance(value, Decimal) else None
    if text is not None:
        return text
    raise TypeError(f"{type(value).__name__} in a journal row")


_LINE_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_money_default)


def encode_row(row: RequestRow) -> bytes:
    """One row as one JSON line, the same wire shape ``encode`` writes.

    The runner journals every request three times on the event loop (started, named by
    its first chunk, finished), so this is the hot path of journaling: one dict of the
    fields that are set (absent keys read back as null: half the bytes of a typical row)
    and one C-encoder call, money through ``default`` as exact text. A NaN or infinity
    (no measurement) makes the encoder refuse, and the careful path writes it as null.
    """
    record = {k: v for k, v in row.__dict__.items() if v is not None}
    try:
        return (_LINE_ENCODER.encode(record) + "\n").encode()
    except ValueError:
        return _encode_row_careful(row)


def _encode_row_careful(row: RequestRow) -> bytes:
    record: dict[str, Any] = {}
    for name in REQUEST_COLUMNS:
        value = getattr(row, name)
        if value is None:
            continue
        if name in _MONEY_SET:
            value = _money_text(value)
        elif value.__class__ is float and not math.isfinite(value):
            value = None
        elif name == "chunk_gaps_ms":
            value = [v if math.isfinite(v) else None for v in value]
        record[name] = value
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=WIRE_SCHEMA)


def decode(data: bytes) -> tuple[pl.DataFrame, int]:
    """Complete JSON lines -> (wire frame, number of unreadable lines skipped)."""
    if not data.strip():
        return empty_frame(), 0
    try:
        frame = pl.read_ndjson(io.BytesIO(data), schema=WIRE_SCHEMA)
        bad = 0
    except pl.exceptions.PolarsError:
        frame, bad = _decode_line_by_line(data)
    keyed = frame.filter(pl.col("run_id").is_not_null() & pl.col("request_idx").is_not_null())
    return keyed, bad + frame.height - keyed.height


def _decode_line_by_line(data: bytes) -> tuple[pl.DataFrame, int]:
    """Slow path for a journal with a damaged line: keep every line that parses."""
    frames, bad = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            frames.append(pl.read_ndjson(io.BytesIO(line), schema=WIRE_SCHEMA))
        except pl.exceptions.PolarsError:
            bad += 1
    return (pl.concat(frames) if frames else empty_frame()), bad


def read_journal(path: Path, offset: int = 0) -> tuple[pl.DataFrame, int, int]:
    """Rows of the complete lines from ``offset``: (frame, end offset, bad lines).

    A missing file is empty. The end offset is just past the last newline, so a
    line being written right now (or torn by a crash) is left for later.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return empty_frame(), offset, 0
    cut = data.rfind(b"\n") + 1
    frame, bad = decode(data[:cut])
    return frame, offset + cut, bad


def read_rows(path: Path) -> list[RequestRow]:
    """Every readable row of a journal, in the order written."""
    return frame_rows(read_journal(path)[0])


class Journal:
    """Appender for one run's journal file. Thread-safe; one process per file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._size = 0  # where the next line starts (the file's end, kept here: one appender)
        self._lock = threading.Lock()

    def write_line(self, data: bytes) -> None:
        """Append already-encoded lines without fsync.

        After ``os.write`` returns the bytes belong to the kernel: they survive a
        crash or ``kill -9`` of this process (not a power cut: ``sync()`` does that).
        A write that fails partway (a full disk) is cut back to the last whole line,
        so the next line is never glued onto a torn one, and ``JournalWriteError``
        names the file and the reason.

        One ``os.write`` and nothing else on the hot path: the end of the file is kept
        in memory (this process is the file's only appender, see ``RunLock``), so no
        ``fstat`` per line, and ``sync()`` never holds the lock while it waits on the disk.
        """
        with self._lock:
            try:
                fd = self._open()
            except OSError as exc:
                raise JournalWriteError(self.path, exc) from exc
            start = self._size
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:
                try:
                    os.ftruncate(fd, start)
                except OSError:  # pragma: no cover - truncating never needs space
                    pass
                raise JournalWriteError(self.path, exc) from exc
            self._size = start + len(data)

    def sync(self) -> None:
        """fsync what ``write_line`` wrote (power-cut durability, done in batches).

        The fsync runs on a duplicate of the descriptor, outside the lock: a disk that
        takes 20 ms to flush must not stall the event loop's next ``write_line``.
        """
        with self._lock:
            if self._fd is None:
                return
            fd = os.dup(self._fd)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            _drop_torn_tail(fd)
            self._size = os.fstat(fd).st_size
            if created:
                _fsync_dir(self.path.parent)  # make the new name itself durable
            self._fd = fd
        return self._fd


def _drop_torn_tail(fd: int) -> None:
    """Truncate an unterminated last line (a crash mid-write; never acknowledged)."""
    size = os.fstat(fd).st_size
    pos, block = size, 64 * 1024
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(fd, pos - start, start)
        if pos == size and chunk.endswith(b"\n"):
            return
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            os.ftruncate(fd, start + newline + 1)
            return
        pos = start
    if size:
        os.ftruncate(fd, 0)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

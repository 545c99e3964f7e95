"""Opening the DuckDB file without holding it: the advisory lock, lock-conflict retries,
read-only reads and short write transactions (the store's design points 2, 4, 5 and 6).

``StoreBase`` is the part of ``bench.store.store.Store`` every table's methods build on;
nothing here knows a table except the migrations' bookkeeping.
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

from bench.errors import StoreBusy
from bench.store.migrations import MIGRATIONS_TABLE, migrate

_T = TypeVar("_T")
# Never download or autoload DuckDB extensions: the machines this runs on may have no internet.
DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False, "autoload_known_extensions": False}
# One lock per database file for this process: two Store objects (or threads)
# writing the same file must not run their merges concurrently.
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(str(path.resolve()), threading.Lock())


def _is_lock_conflict(exc: Exception) -> bool:
    text = str(exc)
    if isinstance(exc, duckdb.ConnectionException):
        return "different configuration" in text  # same process, other access mode
    return isinstance(exc, duckdb.IOException) and "lock" in text.lower()


def _busy(path: Path, timeout_s: float) -> StoreBusy:
    return StoreBusy(f"{path} is locked by another orbench process (waited {timeout_s:g} s); try again")


@contextmanager
def _turn(lock_path: Path, exclusive: bool, deadline: float, busy: StoreBusy) -> Iterator[None]:
    """Design point 6: wait for our turn on the advisory lock file (cheap polling).

    Without the file (no journal directory yet, read-only media) go straight to
    DuckDB's own lock, which stays the authority either way.
    """
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy from None
                time.sleep(0.002)
        yield
    finally:
        os.close(fd)  # releases the flock


def _empty_result(sql: str, params: Any) -> pl.DataFrame:
    """Run a read against a blank, fully migrated in-memory database: right columns, no rows."""
    con = duckdb.connect(":memory:", config=DUCKDB_CONFIG)
    try:
        migrate(con)
        frame: pl.DataFrame = con.sql(sql, params=params).pl()  # duckdb types .pl() as Any
        return frame
    finally:
        con.close()


def _quoted(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchall()
    return bool(rows[0][0])


class StoreBase:
    """Connections to one database file; ``Store`` adds the tables."""

    # Set by Store.__init__.
    path: Path
    journal_dir: Path
    write_timeout_s: float
    read_timeout_s: float
    _ready: bool

    def _init(self) -> tuple[list[str], int]:
        """Migrate and recover the journal (Store's); returns (steps applied, rows recovered)."""
        raise NotImplementedError

    # -- internals -----------------------------------------------------------------

    def _ensure_ready(self) -> int:
        """Init once per Store (writers only); returns the journaled rows it recovered."""
        return 0 if self._ready else self._init()[1]

    @contextmanager
    def _connection(self, read_only: bool, timeout_s: float) -> Iterator[duckdb.DuckDBPyConnection]:
        """Our turn on the advisory lock, then a DuckDB connection; both released on exit."""
        deadline = time.monotonic() + timeout_s
        lock_path = self.journal_dir / f"{self.path.name}.lock"
        with _turn(lock_path, not read_only, deadline, _busy(self.path, timeout_s)):
            con = self._connect(read_only, deadline, timeout_s)
            try:
                yield con
            finally:
                con.close()

    def _connect(self, read_only: bool, deadline: float, timeout_s: float) -> duckdb.DuckDBPyConnection:
        """Open the file, retrying lock conflicts (e.g. a non-orbench holder) until the deadline."""
        delay = 0.005
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only, config=DUCKDB_CONFIG)
                break
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_conflict(exc):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _busy(self.path, timeout_s) from exc
                # Short, jittered sleeps: holders keep the lock for tens of ms, and
                # a long sleep leaves the file idle while every waiter naps.
                time.sleep(min(left, delay * (0.5 + random.random())))
                delay = min(delay * 1.5, 0.025)
        if read_only:  # present TIMESTAMPTZ as UTC whatever the machine's zone
            con.execute("SET TimeZone = 'UTC'")
        return con

    @contextmanager
    def _writing(self, timeout_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        timeout_s = self.write_timeout_s if timeout_s is None else timeout_s
        lock = _file_lock(self.path)
        if not lock.acquire(timeout=timeout_s):
            raise _busy(self.path, timeout_s)
        try:
            self.journal_dir.mkdir(parents=True, exist_ok=True)  # also holds the lock file
            with self._connection(read_only=False, timeout_s=timeout_s) as con:
                yield con
        finally:
            lock.release()

    @staticmethod
    def _in_transaction(con: duckdb.DuckDBPyConnection, work: Callable[[], _T]) -> _T:
        con.begin()
        try:
            result = work()
            con.commit()
            return result
        except BaseException:
            con.rollback()
            raise

    def _write(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One statement in its own short transaction."""
        self._ensure_ready()
        with self._writing() as con:
            return self._in_transaction(con, lambda: con.execute(sql, params).fetchall())

    def _read(self, sql: str, params: Any = None) -> pl.DataFrame:
        if not self.path.exists():
            return _empty_result(sql, params)
        try:
            with self._connection(read_only=True, timeout_s=self.read_timeout_s) as con:
                try:
                    frame: pl.DataFrame = con.sql(sql, params=params).pl()  # duckdb types .pl() as Any
                    return frame
                except duckdb.CatalogException:
                    if _has_table(con, MIGRATIONS_TABLE):
                        raise
            return _empty_result(sql, params)  # created but not yet migrated
        except duckdb.IOException:
            if not self.path.exists():  # removed between the check and the open
                return _empty_result(sql, params)
            raise

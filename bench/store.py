"""The DuckDB store: runs, per-request rows, catalog prices and credit balances.

Concurrency design
------------------
DuckDB lets one process open a file read-write, or any number read-only, never
both; a conflicting open fails at once with ``IOException: Could not set lock``.
orbench needs a run to write while the dashboard (another process) reads, two
runs in two processes to share a file, and a crash or ``kill -9`` to lose at most
the requests in flight. So nothing holds a connection:

1. **Journal first.** ``journal_line`` appends each finished row to
   ``<db dir>/journal/<run_id>.jsonl`` (``bench.journal``) the moment it ends, and
   the run's writer thread (``bench.sink``) fsyncs it (``sync_journal``). From then
   on the row is durable, whatever happens to the database or the process.
2. **Short write transactions.** ``ingest_journal`` then opens the file read-write,
   inserts the new journal lines from a polars frame in one ``INSERT ... SELECT``
   (never executemany), commits and closes. A lock conflict is retried with jittered
   backoff for up to ``write_timeout_s`` (30 s); if the file stays busy (StoreBusy)
   the rows simply wait in the journal and the next ingest moves them.
3. **Idempotent ingest.** Every insert goes through one merge: per (run_id,
   request_idx) the highest-ranking row wins among the batch and the stored row
   (settled before unsettled, then the newest session, then the newest journal
   revision ``rev``: a request is journaled when its stream ends and enriched by
   later revisions). A row of another session that loses and had been sent moves
   to ``superseded_requests``, so money paid for a crashed or cancelled send stays
   on the run. The table has no primary
   key (it would slow bulk inserts); this merge under the file lock (plus an
   in-process lock per file) is what keeps the key unique. ``_orbench_journal``
   records, in the same transaction, how many bytes of each journal are in, so
   ``ingest_journal`` (run by ``init()``) reads only journal tails and a crashed
   run's rows are recovered by the next process that opens the store to write.
4. **Read-only readers.** Every read opens ``read_only=True`` for one query and
   closes, retrying a lock conflict for ``read_timeout_s`` and then raising
   ``StoreBusy``. A missing (or not yet migrated) file reads as an empty result
   with the right columns.
5. Inside one process a read-write and a read-only connection to the same file
   cannot coexist either ("different configuration"); that is retried the same way.
6. **Taking turns cheaply.** Before opening DuckDB, orbench processes take an
   advisory ``flock`` on ``<db dir>/journal/<db stem>/<db name>.lock`` (shared for reads,
   exclusive for writes), polled every 2 ms. Waiting costs a syscall instead of
   a failed DuckDB open (~40 ms of CPU each), which shortens the queue under
   contention. DuckDB's own lock stays the authority: other tools holding the
   file are still met by the retry loop of points 2 and 4.

Costs on a 2-core box (see scripts/bench_store.py): a read-write open + 20-row
merge + close is ~50-90 ms, a read-only open ~20-45 ms, most of it DuckDB start-up
and the checkpoint on close, so batches should be small but not tiny.

Every connection turns off extension auto-install/auto-load, so nothing tries
to download. SQL lives here and in ``bench.migrations`` only, always with
parameters; identifiers interpolated into SQL come from fixed whitelists.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import json
import math
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import duckdb
import polars as pl

from bench import journal
from bench.errors import ConfigError, StoreBusy
from bench.migrations import MIGRATIONS_TABLE, migrate
from bench.records import FINISHED_OUTCOMES, REQUEST_COLUMNS, RequestRow

DEFAULT_WRITE_TIMEOUT_S = 30.0
DEFAULT_READ_TIMEOUT_S = 5.0
RUN_STATUSES = ("planned", "running", "finished", "stopped", "failed", "cancelled")
TERMINAL_STATUSES = ("finished", "stopped", "failed", "cancelled")
# Outcome sets live with the records; re-exported here for the store's readers.
PLAN_KEYS = ("request_idx", "model", "provider_variant", "endpoint", "case_id", "repeat", "is_warmup")
PRICE_FIELDS = (
    "prompt",
    "completion",
    "request",
    "image",
    "internal_reasoning",
    "input_cache_read",
    "input_cache_write",
)
_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_RUN_FIELDS = (
    "name", "suite_name", "suite_path", "suite_hash", "tool_version", "settings", "status",
    "status_reason", "started_at", "finished_at", "catalog_snapshot_id", "simulated", "planned",
    "plan",
)  # fmt: skip
_SECRET_KEY = re.compile(r"(^|_)(api_?key|key|token|secret|password|authorization)$", re.I)

# One lock per database file for this process: two Store objects (or threads)
# writing the same file must not run their merges concurrently.
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(str(path.resolve()), threading.Lock())


@dataclass
class RunRecord:
    """One row of ``runs``, JSON columns decoded."""

    run_id: str
    status: str
    name: str | None = None
    suite_name: str | None = None
    suite_path: str | None = None
    suite_hash: str | None = None
    tool_version: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    status_reason: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    catalog_snapshot_id: str | None = None
    simulated: bool = False
    planned: int | None = None
    plan: list[dict[str, Any]] | None = None

    def __getitem__(self, key: str) -> Any:
        """``run["plan"]``: callers may treat the record as a read-only mapping."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in self.__dataclass_fields__ else default


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and prefix-friendly: ``20261130-143501-3fa2c1``."""
    return f"{(now or utcnow()):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def redact_url(url: str) -> str:
    """Drop user:password and secret-looking query parameters from a URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not _SECRET_KEY.search(k)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_settings(value: Any) -> Any:
    """Settings as stored: no key-like entries, no credentials inside URLs."""
    if isinstance(value, Mapping):
        return {str(k): redact_settings(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, (list, tuple)):
        return [redact_settings(v) for v in value]
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return redact_url(value)
    return value


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _plan_records(plan: Sequence[Any]) -> list[dict[str, Any]]:
    """Planned requests as JSON-ready dicts: a mapping is kept whole (the runner
    decides what a resume needs), an object gives ``to_json()`` or PLAN_KEYS."""
    out = []
    for item in plan:
        if isinstance(item, Mapping):
            out.append(dict(item))
        elif callable(getattr(item, "to_json", None)):
            out.append(dict(item.to_json()))
        else:
            out.append({k: getattr(item, k) for k in PLAN_KEYS})
    return out


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise ConfigError(f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")


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


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _empty_result(sql: str, params: Any) -> pl.DataFrame:
    """Run a read against a blank, fully migrated in-memory database: right columns, no rows."""
    con = duckdb.connect(":memory:", config=_CONFIG)
    try:
        migrate(con)
        return con.sql(sql, params=params).pl()
    finally:
        con.close()


def _quoted(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


_COLS = _quoted(REQUEST_COLUMNS)
_C_COLS = ", ".join(f'c."{c}"' for c in REQUEST_COLUMNS)

# The merge (design point 3). Per (run_id, request_idx) the row that ranks highest
# wins, among the batch and the stored row: settled first (answered, maybe paid:
# never replaced; among settled rows the first session's), then the newest session,
# then the newest revision
# (journal first, enrich later: checks, the judge and lookups add revisions). A
# row of another session that loses, and had been sent, may have been paid for: it
# moves to superseded_requests (one row per request and session, its newest
# revision), so the run's money keeps it.
_SETTLED_SQL = "(outcome IN ({finished}) OR (outcome = 'cancelled' AND token_source = 'usage'))".format(
    finished=", ".join(f"'{o}'" for o in sorted(FINISHED_OUTCOMES)))
_RANK_COLUMNS = ["run_id", "request_idx", "session", "rev", "outcome", "token_source", "t_start_ms"]
_STORED_RANKS = f"""
SELECT {_quoted(_RANK_COLUMNS)} FROM requests AS r
SEMI JOIN _orbench_keys AS k ON r.run_id = k.run_id AND r.request_idx = k.request_idx
"""
_MERGE_DELETE_REPLACED = """
DELETE FROM requests AS r USING _orbench_replace AS k
WHERE r.run_id = k.run_id AND r.request_idx = k.request_idx
"""
_MERGE_INSERT = f"INSERT INTO requests ({_COLS}) SELECT {_C_COLS} FROM _orbench_batch AS c"
_SUPERSEDE_CLEAR = """
DELETE FROM superseded_requests AS s USING _orbench_sup AS k
WHERE s.run_id = k.run_id AND s.request_idx = k.request_idx AND s.session = k.session AND s.rev <= k.rev
"""
_SUPERSEDE_STORED = f"""
INSERT INTO superseded_requests ({_COLS}, superseded_at)
SELECT {", ".join(f'r."{c}"' for c in REQUEST_COLUMNS)}, now() FROM requests AS r
SEMI JOIN _orbench_sup AS k ON r.run_id = k.run_id AND r.request_idx = k.request_idx
    AND r.session = k.session AND r.rev = k.rev AND k.stored
ANTI JOIN superseded_requests AS s ON s.run_id = r.run_id AND s.request_idx = r.request_idx
    AND s.session = r.session
"""
_SUPERSEDE_BATCH = f"""
INSERT INTO superseded_requests ({_COLS}, superseded_at)
SELECT {_C_COLS}, now() FROM _orbench_sup_rows AS c
ANTI JOIN superseded_requests AS s ON s.run_id = c.run_id AND s.request_idx = c.request_idx
    AND s.session = c.session
"""
_MONEY_SQL = (
    "coalesce(spend_usd, cost_usd, list_cost_usd, "
    "CASE WHEN outcome IN ('started', 'cancelled') THEN max_cost_usd END, 0) + coalesce(judge_cost_usd, 0)"
)
"""What one stored row put at risk: the runner's booking, else the known cost, else (a send
cut short) its worst case; plus the judge calls that scored it."""
_RUN_SPEND = f"""
SELECT CAST(coalesce(sum(m), 0) AS DECIMAL(38,18)) AS spent FROM (
    SELECT {_MONEY_SQL} AS m FROM requests WHERE run_id = $run_id
    UNION ALL SELECT {_MONEY_SQL} AS m FROM superseded_requests WHERE run_id = $run_id
    UNION ALL SELECT coalesce(judge_cost_usd, 0) AS m FROM runs WHERE run_id = $run_id
)
"""

_HOST = socket.gethostname()  # with the pid, says which process a heartbeat came from
_RUNNING_RUNS = """
SELECT r.run_id, r.name, r.suite_name, r.suite_path, r.simulated, r.started_at, r.planned,
       r.heartbeat_at, r.heartbeat_pid, r.heartbeat_host,
       epoch(now() - r.heartbeat_at) AS heartbeat_age_s, coalesce(q.done, 0) AS done
FROM runs AS r LEFT JOIN (
    SELECT run_id, count(*) FILTER (WHERE list_contains($finished, outcome)) AS done
    FROM requests WHERE run_id IN (SELECT run_id FROM runs WHERE status = 'running')
    GROUP BY run_id) AS q USING (run_id)
WHERE r.status = 'running'
ORDER BY coalesce(r.started_at, r.created_at) DESC, r.run_id DESC
"""
_SIMULATED_SPEND = """
WITH sim AS (SELECT run_id, judge_cost_usd FROM runs WHERE simulated)
SELECT
    CAST(coalesce((SELECT sum(q.cost_usd) FROM requests AS q SEMI JOIN sim USING (run_id)), 0)
         AS DECIMAL(38,18)) AS requests_usd,
    CAST(coalesce((SELECT sum(coalesce(q.judge_cost_usd, 0)) FROM requests AS q SEMI JOIN sim USING (run_id)), 0)
       + coalesce((SELECT sum(coalesce(s.cost_usd, 0) + coalesce(s.judge_cost_usd, 0))
                   FROM superseded_requests AS s SEMI JOIN sim USING (run_id)), 0)
       + coalesce((SELECT sum(judge_cost_usd) FROM sim), 0) AS DECIMAL(38,18)) AS other_usd,
    (SELECT count(*) FROM sim) AS runs
"""

# -- per-run aggregates (m011; read by bench.aggregates) --------------------------
SKETCH_ALPHA = 0.005
"""Relative error bound of the latency sketches: every value read back is within 0.5 %."""
SKETCH_GAMMA = (1 + SKETCH_ALPHA) / (1 - SKETCH_ALPHA)
AGGREGATE_METRICS = ("ttft_ms", "e2e_ms", "decode_tps", "tpot_ms")
AGGREGATE_VERSION = 2
"""Bumped when what the aggregates hold changes; rows of another version are rebuilt.
2: cached tokens, 429 retries and cold connections per outcome (m013), and the sketch of the
e2e time of answers that passed their checks (``bench.summary``'s ``e2e_p50_correct_ms``)."""
_AGG_TABLES = ("run_aggregate_bins", "run_aggregates", "run_aggregate_builds")
_AGG_KEY = "run_id, model, provider_variant, endpoint, provider"
_AGG_COUNTS = f"""
INSERT INTO run_aggregates
SELECT {_AGG_KEY}, outcome,
    count(*), count(cost_usd), sum(cost_usd), count(list_cost_usd), sum(list_cost_usd),
    CAST(sum(prompt_tokens) AS BIGINT), CAST(sum(completion_tokens) AS BIGINT),
    count(passed) FILTER (WHERE outcome = 'ok'), count(*) FILTER (WHERE outcome = 'ok' AND passed),
    list_sort(list(DISTINCT token_source) FILTER (WHERE token_source IS NOT NULL)),
    list_sort(list(DISTINCT case_id) FILTER (WHERE case_id IS NOT NULL)),
    CAST(sum(cached_tokens) AS BIGINT), CAST(sum(retries_429) AS BIGINT),
    count(*) FILTER (WHERE conn_reused = false)
FROM requests WHERE run_id = $run_id AND NOT is_warmup
GROUP BY {_AGG_KEY}, outcome
"""
_AGG_BINS = f"""
INSERT INTO run_aggregate_bins
SELECT {_AGG_KEY}, metric, CASE WHEN x > 0 THEN CAST(ceil(ln(x) / $ln_gamma) AS INTEGER) END AS bin,
       count(*)
FROM (UNPIVOT (SELECT {_AGG_KEY}, {", ".join(AGGREGATE_METRICS)} FROM requests
               WHERE run_id = $run_id AND NOT is_warmup AND outcome = 'ok')
      ON {", ".join(AGGREGATE_METRICS)} INTO NAME metric VALUE x)
GROUP BY ALL
"""
_AGG_BINS_PASSED = f"""
INSERT INTO run_aggregate_bins
SELECT {_AGG_KEY}, 'e2e_ms_passed', CASE WHEN e2e_ms > 0 THEN CAST(ceil(ln(e2e_ms) / $ln_gamma) AS INTEGER) END,
       count(*)
FROM requests WHERE run_id = $run_id AND NOT is_warmup AND outcome = 'ok' AND passed AND e2e_ms IS NOT NULL
GROUP BY ALL
"""
_AGG_BUILD = """
INSERT INTO run_aggregate_builds
SELECT $run_id, now(), (SELECT count(*) FROM requests WHERE run_id = $run_id AND NOT is_warmup),
       $alpha, $version
"""


def _build_aggregates(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    _drop_aggregates(con, [run_id])
    con.execute(_AGG_COUNTS, {"run_id": run_id}).fetchall()
    con.execute(_AGG_BINS, {"run_id": run_id, "ln_gamma": math.log(SKETCH_GAMMA)}).fetchall()
    con.execute(_AGG_BINS_PASSED, {"run_id": run_id, "ln_gamma": math.log(SKETCH_GAMMA)}).fetchall()
    con.execute(_AGG_BUILD, {"run_id": run_id, "alpha": SKETCH_ALPHA, "version": AGGREGATE_VERSION}).fetchall()


def _drop_aggregates(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> None:
    """A write to a run's request rows makes its aggregates stale: forget them."""
    for table in _AGG_TABLES:
        con.execute(f"DELETE FROM {table} WHERE list_contains(?, run_id)", [list(run_ids)])


class Store:
    """Access to one orbench DuckDB file (and its journal directory). Thread-safe."""

    def __init__(
        self,
        path: Path | str,
        *,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        # One journal folder per database file: two databases in one folder must
        # never ingest each other's rows.
        self.journal_dir = self.path.parent / "journal" / self.path.stem
        self.write_timeout_s = write_timeout_s
        self.read_timeout_s = read_timeout_s
        self.recovered_rows = 0
        """Journaled rows the last init() moved into the database."""
        self.skipped_journal_lines = 0
        """Unreadable (not torn) journal lines seen by ingest; should stay 0."""
        self._journals: dict[str, journal.Journal] = {}
        self._guard = threading.Lock()
        self._ready = False

    # -- lifecycle ---------------------------------------------------------------

    def init(self) -> list[str]:
        """Create or migrate the file, then recover rows left in any journal.

        Returns the migration steps applied now (``recovered_rows`` says how many
        journaled rows it moved in). Raises SchemaTooNew for a file from a newer
        orbench and StoreBusy if it stays locked.
        """
        applied, self.recovered_rows = self._init()
        return applied

    def _init(self) -> tuple[list[str], int]:
        with self._writing() as con:
            applied = migrate(con, self.path)
            self._ready = True
            files = self._journal_files(None)
            recovered = self._in_transaction(con, lambda: self._ingest(con, files))
        return applied, int(recovered)

    def close(self) -> None:
        """Close journal files. The database itself is never held open."""
        with self._guard:
            for j in self._journals.values():
                j.close()
            self._journals.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs --------------------------------------------------------------------

    def create_run(
        self,
        run_id: str | None = None,
        *,
        name: str | None = None,
        suite_name: str | None = None,
        suite_path: str | None = None,
        suite_hash: str | None = None,
        tool_version: str | None = None,
        settings: Mapping[str, Any] | None = None,
        plan: Sequence[Any] | None = None,
        status: str = "planned",
        started_at: datetime | None = None,
        catalog_snapshot_id: str | None = None,
        simulated: bool = False,
    ) -> str:
        """Insert a run row; return its id (generated when not given).

        ``settings`` is stored with key-like entries and URL credentials removed;
        ``plan`` items are mappings or objects with PLAN_KEYS.
        """
        run_id = run_id or new_run_id()
        journal.journal_path(self.journal_dir, run_id)  # the id must be a safe file name
        _check_status(status)
        plan_json = None if plan is None else _json(_plan_records(plan))
        values = [
            run_id, name, suite_name, None if suite_path is None else str(suite_path), suite_hash,
            tool_version, _json(redact_settings(settings or {})), status, started_at,
            catalog_snapshot_id, simulated, None if plan is None else len(plan), plan_json,
        ]  # fmt: skip
        sql = (
            "INSERT INTO runs (run_id, name, suite_name, suite_path, suite_hash, tool_version, "
            "settings, status, started_at, catalog_snapshot_id, simulated, planned, plan) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        try:
            self._write(sql, values)
        except duckdb.ConstraintException as exc:
            raise ConfigError(f"run {run_id} already exists") from exc
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set run columns. A terminal status stamps finished_at, 'running' started_at."""
        unknown = set(fields) - set(_RUN_FIELDS)
        if unknown:
            raise TypeError(f"update_run: unknown field(s) {', '.join(sorted(unknown))}")
        if "status" in fields:
            _check_status(fields["status"])
            if fields["status"] in TERMINAL_STATUSES:
                fields.setdefault("finished_at", utcnow())
        if "settings" in fields:
            fields["settings"] = _json(redact_settings(fields["settings"] or {}))
        if fields.get("plan") is not None:
            records = _plan_records(fields["plan"])
            fields["plan"] = _json(records)
            fields.setdefault("planned", len(records))
        sets = [f'"{k}" = ?' for k in fields]
        if fields.get("status") == "running" and "started_at" not in fields:
            sets.append("started_at = coalesce(started_at, now())")
        if not sets:
            return
        sql = f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?"
        if self._write(sql, [*fields.values(), run_id])[0][0] == 0:
            raise ConfigError(f"no run {run_id} in {self.path}")

    def get_run(self, run_id: str) -> RunRecord | None:
        columns = _quoted([f.name for f in dataclasses.fields(RunRecord)])
        frame = self._read(f"SELECT {columns} FROM runs WHERE run_id = ?", [run_id])
        if frame.is_empty():
            return None
        row = frame.row(0, named=True)
        row["settings"] = json.loads(row["settings"]) if row["settings"] else {}
        row["plan"] = json.loads(row["plan"]) if row["plan"] else None
        return RunRecord(**row)

    def latest_run_id(self) -> str | None:
        frame = self._read(
            "SELECT run_id FROM runs "
            "ORDER BY coalesce(started_at, created_at) DESC, created_at DESC, run_id DESC LIMIT 1"
        )
        return None if frame.is_empty() else str(frame.item())

    def resolve_run(self, ref: str) -> str:
        """'latest', a full run id or a unique prefix -> run id; ConfigError otherwise."""
        ref = ref.strip()
        if ref in ("", "latest"):
            latest = self.latest_run_id()
            if latest is None:
                raise ConfigError(f"no runs in {self.path} yet")
            return latest
        ids = self._read(
            "SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id", [ref]
        )["run_id"].to_list()
        if ref in ids or len(ids) == 1:
            return ref if ref in ids else str(ids[0])
        if not ids:
            raise ConfigError(f"no run matches {ref!r} in {self.path}")
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise ConfigError(f"run {ref!r} is ambiguous ({len(ids)} runs: {shown}); give more characters")

    def list_runs(self) -> pl.DataFrame:
        """Runs, newest first, with row counts and reported cost (plan left out)."""
        return self._read(
            """
            SELECT r.* EXCLUDE (plan),
                   coalesce(q.n_rows, 0) AS n_rows, coalesce(q.n_ok, 0) AS n_ok, q.cost_usd
            FROM runs AS r LEFT JOIN (
                SELECT run_id, count(*) AS n_rows, count(*) FILTER (WHERE outcome = 'ok') AS n_ok,
                       sum(cost_usd) AS cost_usd
                FROM requests GROUP BY run_id) AS q ON q.run_id = r.run_id
            ORDER BY coalesce(r.started_at, r.created_at) DESC, r.created_at DESC, r.run_id DESC
            """
        )

    # -- heartbeat: is a running run's process still alive? ---------------------------

    def beat(self, run_id: str, *, timeout_s: float = 2.0) -> None:
        """Stamp ``runs.heartbeat_at`` (and this process's pid and host) for a running run.

        Called every few seconds by the run's writer thread, never per request. It waits
        at most ``timeout_s`` for the file (StoreBusy after that): a missed beat is harmless.
        """
        sql = ("UPDATE runs SET heartbeat_at = now(), heartbeat_pid = ?, heartbeat_host = ? "
               "WHERE run_id = ?")
        self._ensure_ready()
        with self._writing(timeout_s) as con:
            self._in_transaction(con, lambda: con.execute(sql, [os.getpid(), _HOST, run_id]).fetchall())

    def running_runs(self) -> pl.DataFrame:
        """Runs whose status is still ``running``, newest first, with their heartbeat's age.

        ``done`` counts requests with a finished row (warm-ups included, like ``planned``);
        ``heartbeat_age_s`` is None for a run that never beat (an orbench older than m010).
        """
        return self._read(_RUNNING_RUNS, {"finished": sorted(FINISHED_OUTCOMES)})

    # -- sweeps: one run per load level, grouped by sweep_id (m012) ------------------------

    def create_sweep(self, sweep_id: str, *, suite_path: str, axis: str, levels: Sequence[float],
                     settings: Mapping[str, Any]) -> None:
        """Record a sweep before its first step runs (what ``--resume SWEEP`` replays)."""
        self._write("INSERT INTO sweeps (sweep_id, suite_path, axis, levels, settings) VALUES (?, ?, ?, ?, ?)",
                    [sweep_id, suite_path, axis, [float(v) for v in levels],
                     _json(redact_settings(dict(settings)))])

    def update_sweep(self, sweep_id: str, status: str, reason: str | None = None) -> None:
        """Set a sweep's status; anything but 'running' stamps finished_at."""
        self._write("UPDATE sweeps SET status = ?, status_reason = ?, "
                    "finished_at = CASE WHEN ? = 'running' THEN NULL ELSE now() END WHERE sweep_id = ?",
                    [status, reason, status, sweep_id])

    def get_sweep(self, ref: str) -> dict[str, Any]:
        """A sweep by id, unique prefix or 'latest' (settings decoded); ConfigError if none matches."""
        frame = self._read("SELECT * FROM sweeps WHERE $ref = 'latest' OR starts_with(sweep_id, $ref) "
                           "ORDER BY created_at DESC, sweep_id DESC", {"ref": ref.strip() or "latest"})
        exact = frame.filter(pl.col("sweep_id") == ref) if not frame.is_empty() else frame
        if not exact.is_empty():
            frame = exact
        elif frame.height > 1 and ref != "latest":
            raise ConfigError(f"--resume {ref!r}: matches {frame.height} sweeps; give more characters")
        if frame.is_empty():
            raise ConfigError(f"--resume {ref!r}: no such sweep in {self.path}")
        row = frame.row(0, named=True)
        row["settings"] = json.loads(row["settings"]) if row["settings"] else {}
        return row

    def tag_sweep_run(self, run_id: str, sweep_id: str, level: float) -> None:
        """Mark a run as the step of a sweep at one load level."""
        self._write("UPDATE runs SET sweep_id = ?, sweep_level = ? WHERE run_id = ?",
                    [sweep_id, float(level), run_id])

    def sweep_runs(self, sweep_id: str) -> pl.DataFrame:
        """The runs of a sweep (run_id, sweep_level, status), oldest first."""
        return self._read("SELECT run_id, sweep_level, status, status_reason FROM runs WHERE sweep_id = ? "
                          "ORDER BY sweep_level, created_at", [sweep_id])

    def simulated_spend(self) -> dict[str, Any]:
        """What the sandbox billed, as recorded here: every request of every simulated run.

        ``requests_usd`` is the billed cost of their request rows (warm-ups included, as the
        Credits page's per-run table sums it); ``other_usd`` adds replaced sends that were
        paid and judge calls. ``usd`` is the sum; ``runs`` how many simulated runs there are.
        """
        frame = self._read(_SIMULATED_SPEND)
        if frame.is_empty():
            return {"usd": Decimal(0), "requests_usd": Decimal(0), "other_usd": Decimal(0), "runs": 0}
        row = frame.row(0, named=True)
        return {"usd": row["requests_usd"] + row["other_usd"], "requests_usd": row["requests_usd"],
                "other_usd": row["other_usd"], "runs": int(row["runs"])}

    # -- per-run aggregates (m011) ---------------------------------------------------

    def build_aggregates(self, run_ids: Sequence[str], *, timeout_s: float | None = None) -> list[str]:
        """(Re)write the aggregates of ended runs, one short transaction per run.

        Called when a run ends and, lazily, by the dashboard (``bench.aggregates.plan``).
        Only the schema is brought up to date first, never a journal ingested: a reader
        must not move another process's rows. Returns the runs built. StoreBusy (after
        ``timeout_s``) stops it; the runs built before it stay built.
        """
        done: list[str] = []
        for run_id in run_ids:  # one connection each: a run's writer gets the file in between
            with self._writing(timeout_s) as con:
                migrate(con, self.path)
                self._in_transaction(con, functools.partial(_build_aggregates, con, run_id))
            done.append(run_id)
        return done

    def build_aggregates_at_end(self, run_id: str) -> bool:
        """``build_aggregates`` for a run that just ended; never raises (the dashboard
        rebuilds lazily what could not be written now)."""
        try:
            return bool(self.build_aggregates([run_id], timeout_s=5.0))
        except (StoreBusy, duckdb.Error, OSError):
            return False

    # -- requests: write path (journal_line -> sync_journal -> ingest_journal) -----------

    def served_by_sandbox(self, run_id: str) -> bool:
        """The sandbox names every provider '... (simulated)': such a run is never passed off as real."""
        found = self._read(
            "SELECT count(*) AS n FROM requests WHERE run_id = ? AND provider LIKE '%(simulated)%'",
            [run_id],
        )
        return not found.is_empty() and int(found.item()) > 0

    def update_checks(
        self, run_id: str, updates: Sequence[tuple[int, int, bool | None, float | None, str | None]]
    ) -> int:
        """Set passed/score/check_detail for (request_idx, session) rows of a run (re-scoring).

        Rows that are still only in the journal are ingested first, so a re-score
        never misses a result.
        """
        self.ingest_journal(run_id)
        frame = pl.DataFrame(
            {
                "request_idx": [u[0] for u in updates],
                "session": [u[1] for u in updates],
                "passed": [u[2] for u in updates],
                "score": [u[3] for u in updates],
                "check_detail": [u[4] for u in updates],
            },
            schema={"request_idx": pl.Int64, "session": pl.Int64, "passed": pl.Boolean,
                    "score": pl.Float64, "check_detail": pl.String},
        )
        self._ensure_ready()
        with self._writing() as con:
            con.register("_orbench_checks", frame)
            try:
                return int(self._in_transaction(con, lambda: (_drop_aggregates(con, [run_id]), con.execute(
                    "UPDATE requests SET passed = c.passed, score = c.score, "
                    "check_detail = c.check_detail FROM _orbench_checks AS c "
                    "WHERE requests.run_id = ? AND requests.request_idx = c.request_idx "
                    "AND requests.session = c.session", [run_id]).fetchall()[0][0])[1]))
            finally:
                con.unregister("_orbench_checks")

    def add_judge_cost(self, run_id: str, calls: int, prompt_tokens: int,
                       completion_tokens: int, cost_usd: Decimal) -> None:
        """Book what judge checks cost, apart from the benchmarked requests."""
        self._write(
            "UPDATE runs SET judge_calls = coalesce(judge_calls, 0) + ?, "
            "judge_prompt_tokens = coalesce(judge_prompt_tokens, 0) + ?, "
            "judge_completion_tokens = coalesce(judge_completion_tokens, 0) + ?, "
            "judge_cost_usd = coalesce(judge_cost_usd, 0) + CAST(? AS DECIMAL(38,18)) WHERE run_id = ?",
            [calls, prompt_tokens, completion_tokens, str(cost_usd), run_id],
        )

    def journal_line(self, row: RequestRow) -> None:
        """Journal one finished row at once (no fsync: survives kill -9, see Journal.write_line)."""
        self._journal(row.run_id).write_line(journal.encode_row(row))

    def sync_journal(self, run_id: str) -> None:
        """fsync a run's journal (the batch half of ``journal_line``)."""
        self._journal(run_id).sync()

    def insert_rows(self, rows: Sequence[RequestRow]) -> int:
        """Merge rows the journal could not take (a full disk: ``bench.sink``'s held rows),
        and the unread tail of their runs' journals.

        Idempotent, so rows that were (or were not) journaled first are both safe.
        Raises StoreBusy if the file stays locked (the journal keeps the rows).
        """
        if not rows:
            return 0
        frame = journal.rows_frame(list(rows))
        files = [f for r in frame["run_id"].unique().sort() for f in self._journal_files(r)]
        recovered = self._ensure_ready()
        with self._writing() as con:
            return recovered + self._in_transaction(  # type: ignore[no-any-return]
                con, lambda: _merge_rows(con, frame) + self._ingest(con, files)
            )

    def ingest_journal(self, run_id: str | None = None) -> int:
        """Insert journaled rows not yet in the database (one run, or all); idempotent."""
        files = self._journal_files(run_id)
        if not files:
            return 0
        recovered = self._ensure_ready()
        with self._writing() as con:
            return recovered + self._in_transaction(con, lambda: self._ingest(con, files))  # type: ignore[no-any-return]

    # -- requests: read path -------------------------------------------------------

    def finished_keys(self, run_id: str) -> set[int]:
        """request_idx values that must never be sent again, from the database and the journal.

        Settled rows (``records.is_settled``): answered, maybe paid. The journal
        counts too: after a crash it may hold results the database lacks, and a
        resume must not pay for them twice.
        """
        stored = self._read(
            f"SELECT request_idx FROM requests WHERE run_id = ? AND {_SETTLED_SQL}", [run_id]
        )
        journaled, _, _ = journal.read_journal(journal.journal_path(self.journal_dir, run_id))
        final = journaled.filter(_settled_expr())
        return set(stored["request_idx"].to_list()) | set(final["request_idx"].to_list())

    def in_flight_rows(self, run_id: str) -> pl.DataFrame:
        """Rows a crash left ``started`` (sent, no result): their money is still to be known.

        Call ingest_journal(run_id) first.
        """
        return self._read(
            "SELECT request_idx, session, rev, endpoint, generation_id, max_cost_usd, spend_usd, cost_usd "
            "FROM requests WHERE run_id = ? AND outcome = 'started' ORDER BY request_idx",
            [run_id],
        )

    def book_in_flight(self, run_id: str, request_idx: int, session: int, cost_usd: Decimal) -> None:
        """The real cost of a send a crash cut short (from /generation): it replaces the worst case."""
        sql = ("UPDATE requests SET cost_usd = CAST(? AS DECIMAL(38,18)), cost_source = 'generation', "
               "spend_usd = CAST(? AS DECIMAL(38,18)) "
               "WHERE run_id = ? AND request_idx = ? AND session = ? AND outcome = 'started'")
        self._ensure_ready()
        with self._writing() as con:
            self._in_transaction(con, lambda: (_drop_aggregates(con, [run_id]), con.execute(
                sql, [str(cost_usd), str(cost_usd), run_id, request_idx, session]).fetchall()))

    def run_spend(self, run_id: str) -> Decimal:
        """Money a run has put at risk so far: every send, every earlier session's send, every judge call.

        Reported cost, else list cost; a send whose cost is unknown (crashed or
        cancelled in flight) at its worst case. Database rows only: call
        ingest_journal(run_id) first after a crash.
        """
        frame = self._read(_RUN_SPEND, {"run_id": run_id})
        return Decimal(frame.item()) if not frame.is_empty() and frame.item() is not None else Decimal(0)

    def superseded_frame(self, run_id: str) -> pl.DataFrame:
        """Rows of earlier sessions that a re-send replaced (kept for their money)."""
        return self._read(
            f"SELECT {_COLS}, superseded_at FROM superseded_requests WHERE run_id = ? "
            "ORDER BY request_idx, session", [run_id])

    def lock_run(self, run_id: str) -> journal.RunLock:
        """One run, one writer: hold this for the whole run or resume (RunLocked if taken)."""
        return journal.RunLock.acquire(self.journal_dir, run_id)

    def next_session(self, run_id: str) -> int:
        """Session number for the next resume of a run (1 for the first resume)."""
        stored = self._read("SELECT max(session) AS s FROM requests WHERE run_id = ?", [run_id])
        journaled, _, _ = journal.read_journal(journal.journal_path(self.journal_dir, run_id))
        found = [v for v in (stored.item() if not stored.is_empty() else None,
                             journaled["session"].max()) if v is not None]  # fmt: skip
        return max([0, *found]) + 1  # type: ignore[type-var]

    def requests_frame(
        self,
        run_id: str,
        *,
        include_warmup: bool = True,
        outcomes: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Stored rows of a run ordered by request_idx (money as Decimal, started_at UTC)."""
        cols = list(columns or REQUEST_COLUMNS)
        bad = set(cols) - set(REQUEST_COLUMNS)
        if bad:
            raise ConfigError(f"unknown request column(s): {', '.join(sorted(bad))}")
        where, params = ["run_id = $run_id"], {"run_id": run_id}
        if not include_warmup:
            where.append("NOT is_warmup")
        if outcomes is not None:
            where.append("list_contains($outcomes, outcome)")
            params["outcomes"] = list(outcomes)  # type: ignore[assignment]
        sql = f"SELECT {_quoted(cols)} FROM requests WHERE {' AND '.join(where)} ORDER BY request_idx"
        return self._read(sql, params)

    # -- catalog and credits -------------------------------------------------------

    def save_catalog_snapshot(
        self, models: Sequence[Any], base_url: str, simulated: bool = False
    ) -> str:
        """Store one catalog fetch (model-level prices) and return its snapshot id.

        Duck-typed: each model has .id, .canonical_slug, .pricing (Decimal fields
        PRICE_FIELDS) and .variable/.context_length (on the model or its pricing).
        """
        taken_at = utcnow()
        snapshot_id = f"cat-{taken_at:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        prices = _price_frame(snapshot_id, models)
        self._ensure_ready()
        with self._writing() as con:

            def insert() -> None:
                con.execute(
                    "INSERT INTO catalog_snapshots VALUES (?, ?, ?, ?, ?)",
                    [snapshot_id, taken_at, redact_url(base_url), simulated, len(models)],
                ).fetchall()
                con.register("_orbench_prices", prices)
                con.execute(
                    f"INSERT INTO catalog_prices ({_quoted(prices.columns)}) "
                    f"SELECT {_quoted(prices.columns)} FROM _orbench_prices"
                ).fetchall()
                con.unregister("_orbench_prices")

            self._in_transaction(con, insert)
        return snapshot_id

    def catalog_prices(self, snapshot_id: str) -> pl.DataFrame:
        return self._read(
            "SELECT * FROM catalog_prices WHERE snapshot_id = ? ORDER BY model_id, provider NULLS FIRST",
            [snapshot_id],
        )

    def catalog_snapshots(self) -> pl.DataFrame:
        return self._read("SELECT * FROM catalog_snapshots ORDER BY taken_at DESC")

    def save_credit_snapshot(
        self,
        *,
        source: str,
        label: str | None = None,
        limit_usd: Decimal | None = None,
        limit_remaining_usd: Decimal | None = None,
        usage_usd: Decimal | None = None,
        total_credits_usd: Decimal | None = None,
        total_usage_usd: Decimal | None = None,
        run_id: str | None = None,
        taken_at: datetime | None = None,
    ) -> None:
        """Record a balance reading from /key or /credits (money as Decimal)."""
        money = [limit_usd, limit_remaining_usd, usage_usd, total_credits_usd, total_usage_usd]
        self._write(
            "INSERT INTO credit_snapshots (taken_at, source, label, limit_usd, limit_remaining_usd, "
            "usage_usd, total_credits_usd, total_usage_usd, run_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [taken_at or utcnow(), source, label, *map(_money, money), run_id],
        )

    def credit_snapshots(self) -> pl.DataFrame:
        return self._read("SELECT * FROM credit_snapshots ORDER BY taken_at")

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run one parameterized read-only query (for the dashboard's data module)."""
        return self._read(sql, params)

    # -- internals -----------------------------------------------------------------

    def _ensure_ready(self) -> int:
        """Init once per Store (writers only); returns the journaled rows it recovered."""
        return 0 if self._ready else self._init()[1]

    def _journal(self, run_id: str) -> journal.Journal:
        with self._guard:
            if run_id not in self._journals:
                path = journal.journal_path(self.journal_dir, run_id)
                self._journals[run_id] = journal.Journal(path)
            return self._journals[run_id]

    def _journal_files(self, run_id: str | None) -> list[Path]:
        if run_id is not None:
            path = journal.journal_path(self.journal_dir, run_id)
            return [path] if path.exists() else []
        return sorted(self.journal_dir.glob("*.jsonl")) if self.journal_dir.is_dir() else []

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
                con = duckdb.connect(str(self.path), read_only=read_only, config=_CONFIG)
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
    def _in_transaction(con: duckdb.DuckDBPyConnection, work: Any) -> Any:
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
            return self._in_transaction(con, lambda: con.execute(sql, params).fetchall())  # type: ignore[no-any-return]

    def _read(self, sql: str, params: Any = None) -> pl.DataFrame:
        if not self.path.exists():
            return _empty_result(sql, params)
        try:
            with self._connection(read_only=True, timeout_s=self.read_timeout_s) as con:
                try:
                    return con.sql(sql, params=params).pl()
                except duckdb.CatalogException:
                    if _has_table(con, MIGRATIONS_TABLE):
                        raise
            return _empty_result(sql, params)  # created but not yet migrated
        except duckdb.IOException:
            if not self.path.exists():  # removed between the check and the open
                return _empty_result(sql, params)
            raise

    # -- the merge -----------------------------------------------------------------

    def _ingest(self, con: duckdb.DuckDBPyConnection, files: list[Path]) -> int:
        inserted = 0
        for path in files:
            run_id, size = path.stem, path.stat().st_size
            done = _ingested_bytes(con, run_id)
            if size == done:
                continue
            part, end, bad = journal.read_journal(path, done if size > done else 0)
            self.skipped_journal_lines += bad
            inserted += _merge_rows(con, part)
            _set_ingested(con, run_id, end)
        return inserted


def _settled_expr() -> pl.Expr:
    outcome = pl.col("outcome")
    return outcome.is_not_null() & (
        outcome.is_in(sorted(FINISHED_OUTCOMES))
        | ((outcome == "cancelled") & (pl.col("token_source") == "usage")).fill_null(False)
    )


def _ranked(frame: pl.DataFrame) -> pl.DataFrame:
    """Best first per key: settled, newest session, newest revision, stored before batch, last written."""
    settled = _settled_expr().fill_null(False)
    return frame.with_columns(
        _settled=settled,
        # A settled row is never replaced: among settled rows the first session's wins;
        # among unsettled ones the newest session's (a resume's re-send lands).
        _sess=pl.when(settled).then(-pl.col("session")).otherwise(pl.col("session")),
    ).sort(["_settled", "_sess", "rev", "_stored", "_seq"], descending=True, nulls_last=True)


def _one_per_key(frame: pl.DataFrame) -> pl.DataFrame:
    """Per (run_id, request_idx): the row that ranks highest (see the merge)."""
    if frame.select(pl.struct("run_id", "request_idx").n_unique()).item() == frame.height:
        return frame  # the usual batch: nothing to choose
    return (
        _ranked(frame.with_row_index("_seq").with_columns(_stored=pl.lit(False)))
        .unique(["run_id", "request_idx"], keep="first", maintain_order=True)
        .drop("_seq", "_stored", "_settled", "_sess")
    )


def _merge_rows(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> int:
    """Design point 3: the highest-ranking row per key wins; losers of other sessions are kept.

    Returns rows written (new keys plus replacements).
    """
    if frame.is_empty():
        return 0
    _drop_aggregates(con, frame["run_id"].unique().to_list())
    batch = frame.with_columns(pl.col("rev").fill_null(0)).with_row_index("_seq").with_columns(
        pl.col("_seq").cast(pl.Int64))
    keys = batch.select("run_id", "request_idx").unique()
    con.register("_orbench_keys", keys)
    try:
        stored = con.sql(_STORED_RANKS).pl()
    finally:
        con.unregister("_orbench_keys")
    ranks = batch.select(_RANK_COLUMNS + ["_seq"]).with_columns(_stored=pl.lit(False))
    if stored.height:
        stored = stored.select(
            [pl.col(c).cast(ranks.schema[c]) for c in _RANK_COLUMNS]
        ).with_columns(pl.col("rev").fill_null(0), _seq=pl.lit(-1, pl.Int64), _stored=pl.lit(True))
        ranks = pl.concat([ranks, stored.select(ranks.columns)])
    ranked = _ranked(ranks).with_columns(
        _first=pl.int_range(pl.len()).over(["run_id", "request_idx"]) == 0,
        _win_session=pl.col("session").first().over(["run_id", "request_idx"]),
    )
    winners = ranked.filter(pl.col("_first") & ~pl.col("_stored"))
    losers = ranked.filter(
        ~pl.col("_first") & (pl.col("session") != pl.col("_win_session"))
        & (pl.col("t_start_ms").is_not_null() | (pl.col("outcome") == "started"))
    ).unique(["run_id", "request_idx", "session"], keep="first", maintain_order=True)
    if losers.height:
        _supersede(con, batch, losers)
    if winners.is_empty():
        return 0
    replace = winners.join(stored.select("run_id", "request_idx"), on=["run_id", "request_idx"],
                           how="semi") if stored.height else winners.head(0)
    rows = batch.join(winners.select("_seq"), on="_seq", how="semi").drop("_seq")
    if replace.height:
        con.register("_orbench_replace", replace.select("run_id", "request_idx"))
        try:
            con.execute(_MERGE_DELETE_REPLACED)
        finally:
            con.unregister("_orbench_replace")
    con.register("_orbench_batch", rows)
    try:
        con.execute(_MERGE_INSERT)
    finally:
        con.unregister("_orbench_batch")
    return rows.height


def _supersede(con: duckdb.DuckDBPyConnection, batch: pl.DataFrame, losers: pl.DataFrame) -> None:
    """Keep rows of earlier (or other) sessions that lost the merge: they may have been paid for."""
    sup = losers.select("run_id", "request_idx", "session", "rev", pl.col("_stored").alias("stored"))
    from_batch = batch.join(losers.filter(~pl.col("_stored")).select("_seq"), on="_seq", how="semi")
    con.register("_orbench_sup", sup)
    con.register("_orbench_sup_rows", from_batch.drop("_seq"))
    try:
        con.execute(_SUPERSEDE_CLEAR)
        con.execute(_SUPERSEDE_STORED)
        con.execute(_SUPERSEDE_BATCH)
    finally:
        con.unregister("_orbench_sup")
        con.unregister("_orbench_sup_rows")


def _ingested_bytes(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    rows = con.execute(
        "SELECT ingested_bytes FROM _orbench_journal WHERE run_id = ?", [run_id]
    ).fetchall()
    return int(rows[0][0]) if rows else 0


def _set_ingested(con: duckdb.DuckDBPyConnection, run_id: str, offset: int) -> None:
    updated = con.execute(
        "UPDATE _orbench_journal SET ingested_bytes = ?, updated_at = now() WHERE run_id = ?",
        [offset, run_id],
    ).fetchall()
    if updated[0][0] == 0:
        con.execute(
            "INSERT INTO _orbench_journal (run_id, ingested_bytes, updated_at) VALUES (?, ?, now())",
            [run_id, offset],
        ).fetchall()


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchall()
    return bool(rows[0][0])


def _price_frame(snapshot_id: str, models: Sequence[Any]) -> pl.DataFrame:
    """Model-level price rows (provider NULL), money as exact text for DuckDB to cast."""
    records = []
    for m in models:
        pricing = getattr(m, "pricing", None)
        record: dict[str, Any] = {
            "snapshot_id": snapshot_id,
            "model_id": m.id,
            "canonical_slug": getattr(m, "canonical_slug", None),
            "provider": None,
        }
        for name in PRICE_FIELDS:
            record[name] = _money(getattr(pricing, name, None))
        for name in ("variable", "context_length"):
            record[name] = getattr(m, name, getattr(pricing, name, None))
        records.append(record)
    schema = {
        "snapshot_id": pl.String, "model_id": pl.String, "canonical_slug": pl.String,
        "provider": pl.String, **{n: pl.String for n in PRICE_FIELDS},
        "variable": pl.Boolean, "context_length": pl.Int64,
    }  # fmt: skip
    return pl.DataFrame(records, schema=schema)

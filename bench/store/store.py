"""The DuckDB store: runs, per-request rows, catalog prices and credit balances.

Concurrency design
------------------
DuckDB lets one process open a file read-write, or any number read-only, never
both; a conflicting open fails at once with ``IOException: Could not set lock``.
orbench needs a run to write while the dashboard (another process) reads, two
runs in two processes to share a file, and a crash or ``kill -9`` to lose at most
the requests in flight. So nothing holds a connection:

1. **Journal first.** ``journal_line`` appends each finished row to
   ``<db dir>/journal/<db stem>/<run_id>.jsonl`` (``bench.store.journal``) the moment it ends, and
   the run's writer thread (``bench.store.sink``) fsyncs it (``sync_journal``). From then
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
to download. SQL lives in bench.store and bench.results only, always with
parameters; identifiers interpolated into SQL come from fixed whitelists.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import duckdb
import polars as pl

from bench.errors import ConfigError
from bench.records import REQUEST_COLUMNS, RequestRow
from bench.store import journal
from bench.store.connection import _quoted
from bench.store.merge import _COLS, _SETTLED_SQL, _settled_expr, ingested_bytes, merge_rows, set_ingested
from bench.store.migrations import migrate
from bench.store.monitors import MonitorTables
from bench.store.runs import RunTables, _drop_aggregates
from bench.store.snapshots import SnapshotTables

DEFAULT_WRITE_TIMEOUT_S = 30.0
DEFAULT_READ_TIMEOUT_S = 5.0


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

class Store(RunTables, SnapshotTables, MonitorTables):
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

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One short write transaction on the migrated file (the team store's pull and bookkeeping)."""
        self._ensure_ready()
        with self._writing() as con:
            con.begin()
            try:
                yield con
                con.commit()
            except BaseException:
                con.rollback()
                raise

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

    # -- requests: write path ------------------------------------------------------

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

            def update() -> Any:
                _drop_aggregates(con, [run_id])
                return con.execute(
                    "UPDATE requests SET passed = c.passed, score = c.score, "
                    "check_detail = c.check_detail FROM _orbench_checks AS c "
                    "WHERE requests.run_id = ? AND requests.request_idx = c.request_idx "
                    "AND requests.session = c.session", [run_id]).fetchall()[0][0]

            try:
                return int(self._in_transaction(con, update))
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
        """Merge rows the journal could not take (a full disk: ``bench.store.sink``'s held rows),
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
            return recovered + self._in_transaction(
                con, lambda: merge_rows(con, frame) + self._ingest(con, files)
            )

    def ingest_journal(self, run_id: str | None = None) -> int:
        """Insert journaled rows not yet in the database (one run, or all); idempotent."""
        files = self._journal_files(run_id)
        if not files:
            return 0
        recovered = self._ensure_ready()
        with self._writing() as con:
            return recovered + self._in_transaction(con, lambda: self._ingest(con, files))

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

            def update() -> None:
                _drop_aggregates(con, [run_id])
                con.execute(sql, [str(cost_usd), str(cost_usd), run_id, request_idx, session]).fetchall()

            self._in_transaction(con, update)

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
        found = [cast(int, v) for v in (stored.item() if not stored.is_empty() else None,  # both BIGINT
                                        journaled["session"].max()) if v is not None]  # fmt: skip
        return max([0, *found]) + 1

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
        params: dict[str, Any]
        where, params = ["run_id = $run_id"], {"run_id": run_id}
        if not include_warmup:
            where.append("NOT is_warmup")
        if outcomes is not None:
            where.append("list_contains($outcomes, outcome)")
            params["outcomes"] = list(outcomes)
        sql = f"SELECT {_quoted(cols)} FROM requests WHERE {' AND '.join(where)} ORDER BY request_idx"
        return self._read(sql, params)

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run one parameterized read-only query (for the dashboard's data module)."""
        return self._read(sql, params)

    def query_many(self, queries: Sequence[tuple[str, Mapping[str, Any]]]) -> list[pl.DataFrame]:
        """Several read-only queries on one connection (one open instead of one each: a monitor's
        tick reads its history in four queries, and each open of a large file costs tens of ms)."""
        if not self.path.exists():
            return [self._read(sql, params) for sql, params in queries]
        with self._connection(read_only=True, timeout_s=self.read_timeout_s) as con:
            try:
                return [con.sql(sql, params=dict(params)).pl() for sql, params in queries]
            except duckdb.CatalogException:
                pass  # not migrated yet: the blank schema's answers
        return [self._read(sql, params) for sql, params in queries]

    # -- internals -----------------------------------------------------------------

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

    # -- the merge -----------------------------------------------------------------

    def _ingest(self, con: duckdb.DuckDBPyConnection, files: list[Path]) -> int:
        inserted = 0
        for path in files:
            run_id, size = path.stem, path.stat().st_size
            done = ingested_bytes(con, run_id)
            if size == done:
                continue
            part, end, bad = journal.read_journal(path, done if size > done else 0)
            self.skipped_journal_lines += bad
            inserted += merge_rows(con, part)
            set_ingested(con, run_id, end)
        return inserted

"""Pushing: this machine's runs into the team's log, by psycopg COPY, idempotently.

``push`` sends what the server does not have yet: the journal lines past each run's pushed
offset, rows changed in place since (re-scores, booked in-flight costs), run states, sweeps,
catalog and credit snapshots. Entries go through a temporary table (COPY) into ``orbench_log``
with ``ON CONFLICT DO NOTHING`` under one transaction-level advisory lock, so a retry after a
crash, or eight machines at once, duplicate nothing and never deadlock. The bookkeeping (how far
each journal is pushed) is written to the local DuckDB after the server committed: a crash in
between only means the next push sends entries the server already has, and adds none.

``Pusher`` is a run's background thread: it follows the journal every 2 s while the run
goes, never blocks it (not even at its end: the tail goes up while the summary prints), and
reconnects after the server comes back.
"""

from __future__ import annotations

import atexit
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from bench.records import REQUEST_COLUMNS
from bench.store import journal
from bench.store.store import Store
from bench.store.team import entries
from bench.store.team.schema import APPEND_LOCK, LOG_TABLE, TeamUnreachable, check_schema, connect
from bench.store.team.url import TeamDB

BATCH = 50_000
"""Entries per server transaction."""
_INSERT = f"""
INSERT INTO {LOG_TABLE} (entry_key, kind, origin, run_id, payload)
SELECT entry_key, kind, origin, run_id, payload FROM _orbench_push ORDER BY ord
ON CONFLICT (entry_key) DO NOTHING
"""
_MONEY = list(journal.MONEY_COLUMNS)


@dataclass
class PushResult:
    """What one push did: entries looked at (``sent``) and new to the server (``new``), per kind."""

    sent: dict[str, int] = field(default_factory=dict)
    new: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, sent: int, new: int) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + sent
        self.new[kind] = self.new.get(kind, 0) + new

    @property
    def total_new(self) -> int:
        return sum(self.new.values())


def _escaped(col: str) -> pl.Expr:
    """COPY text format: backslash, tab, newline and carriage return escaped; NULL as \\N."""
    e = pl.col(col).cast(pl.String)
    for raw, esc in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        e = e.str.replace_all(raw, esc, literal=True)
    return e.fill_null("\\N")


def send(con: Any, batch: pl.DataFrame) -> int:
    """Append entries (in order) that the server does not hold yet; returns how many were new."""
    batch = batch.unique("entry_key", keep="first", maintain_order=True)
    new = 0
    for start in range(0, batch.height, BATCH):
        part = batch.slice(start, BATCH).with_row_index("ord")
        text = part.select(pl.concat_str([pl.col("ord").cast(pl.String),
                                          *[_escaped(c) for c in entries.ENTRY_SCHEMA]], separator="\t"))
        data = ("\n".join(text.to_series().to_list()) + "\n").encode()
        with con.transaction():
            con.execute("CREATE TEMP TABLE _orbench_push (ord BIGINT, entry_key TEXT, kind TEXT, origin TEXT, "
                        "run_id TEXT, payload TEXT) ON COMMIT DROP")
            with con.cursor() as cur, cur.copy("COPY _orbench_push FROM STDIN") as cp:
                cp.write(data)
            # One appender at a time from here to commit: entries commit in seq order (see schema).
            con.execute("SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK])
            new += max(0, con.execute(_INSERT).rowcount)
    return new


# -- what this machine has and has sent ------------------------------------------------


def local_runs(store: Store, run_ids: list[str] | None = None) -> pl.DataFrame:
    """Runs measured here (not pulled), every column the team needs."""
    sql = "SELECT * FROM runs WHERE team_seq IS NULL"
    if run_ids is None:
        return store.query(sql + " ORDER BY run_id")
    return store.query(sql + " AND list_contains($ids, run_id) ORDER BY run_id", {"ids": run_ids})


def pushed_offsets(store: Store, team: TeamDB) -> dict[str, int]:
    frame = store.query("SELECT run_id, max(journal_bytes) AS b FROM _orbench_team_pushed WHERE team = ? "
                        "GROUP BY run_id", [team.key])
    return {r: int(b) for r, b in frame.iter_rows()}


def sent_keys(store: Store, team: TeamDB) -> set[str]:
    frame = store.query("SELECT entry_key FROM _orbench_team_sent WHERE team = ?", [team.key])
    return set(frame["entry_key"].to_list())


def record_pushed(store: Store, team: TeamDB, offsets: dict[str, int], keys: list[str]) -> None:
    """Bookkeeping, after the server committed (a crash before it costs a resend, never a row)."""
    if not offsets and not keys:
        return
    with store.transaction() as con:
        if offsets:
            con.execute("DELETE FROM _orbench_team_pushed WHERE team = ? AND list_contains(?, run_id)",
                        [team.key, list(offsets)])
            frame = pl.DataFrame({"team": team.key, "run_id": list(offsets), "journal_bytes": list(offsets.values())},
                                 schema={"team": pl.String, "run_id": pl.String, "journal_bytes": pl.Int64})
            con.register("_orbench_offsets", frame)
            con.execute("INSERT INTO _orbench_team_pushed SELECT team, run_id, journal_bytes, now() "
                        "FROM _orbench_offsets")
            con.unregister("_orbench_offsets")
        if keys:
            con.register("_orbench_keys_sent", pl.DataFrame({"k": keys}, schema={"k": pl.String}))
            con.execute("INSERT INTO _orbench_team_sent SELECT ?, k, now() FROM _orbench_keys_sent "
                        "ANTI JOIN _orbench_team_sent AS s ON s.team = ? AND s.entry_key = k", [team.key, team.key])
            con.unregister("_orbench_keys_sent")


IN_FLIGHT_BOOKED = "cost_source = 'generation'"
"""Rows a resume changed in place before its run (``Store.book_in_flight``): what a run's own pusher
reconciles at its end (a full reconcile is ``orbench team push``'s, and ``orbench check`` pushes its run)."""


def _stored_rows_sql(where: str) -> str:
    cols = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' if c in _MONEY or c == "started_at" else f'"{c}"'
                     for c in REQUEST_COLUMNS)
    return (f"SELECT {cols} FROM requests WHERE list_contains($ids, run_id) AND ({where}) "
            "ORDER BY run_id, request_idx")


def _wire(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select([pl.col(c).cast(t) for c, t in journal.WIRE_SCHEMA.items()])


def stored_rows(store: Store, run_ids: list[str], where: str = "true") -> pl.DataFrame:
    """Request rows as a wire frame (money as text), for the entries of rows changed in place."""
    return _wire(store.query(_stored_rows_sql(where), {"ids": run_ids}))


def _server_request_keys(con: Any, run_ids: list[str]) -> set[str]:
    rows = con.execute(f"SELECT entry_key FROM {LOG_TABLE} WHERE kind = 'request' AND run_id = ANY(%s)",
                       [run_ids]).fetchall()
    return {r[0] for r in rows}


# -- push ---------------------------------------------------------------------------------


def push(store: Store, team: TeamDB, run_ids: list[str] | None = None, *, origin: str,
         reconcile: str = "true", con: Any = None) -> PushResult:
    """Send what the server does not have yet (all local runs, or ``run_ids``) and record it.

    ``reconcile`` (SQL over ``requests``) picks the stored rows compared with the server's keys,
    for changes made in place; the journal's lines go up whatever it says."""
    own = con is None
    con = con or connect(team)
    try:
        check_schema(con, team)
        return _push(con, store, team, run_ids, origin, reconcile)
    finally:
        if own:
            con.close()


def _push(con: Any, store: Store, team: TeamDB, run_ids: list[str] | None, origin: str,
          reconcile: str) -> PushResult:
    result = PushResult()
    runs = local_runs(store, run_ids)
    ids = runs["run_id"].to_list()
    offsets = pushed_offsets(store, team)
    done: dict[str, int] = {}
    for run_id, run_origin in runs.select("run_id", "origin").iter_rows():
        path = journal.journal_path(store.journal_dir, run_id)
        offset = offsets.get(run_id, 0)
        while True:  # a big journal goes up in slices
            batch, end = entries.journal_entries(path, offset, run_origin or origin)
            if end == offset:
                break
            result.add("request", batch.height, send(con, batch))
            offset = done[run_id] = end
    if ids:
        for start in range(0, len(ids), 50):
            part = ids[start:start + 50]
            rows = stored_rows(store, part, reconcile)
            if rows.is_empty():
                continue
            origins = dict(runs.select("run_id", "origin").iter_rows())
            changed = _row_entries_by_origin(rows, origins, origin)
            have = _server_request_keys(con, part)
            changed = changed.filter(~pl.col("entry_key").is_in(list(have)))
            result.add("request", changed.height, send(con, changed))
    sent = sent_keys(store, team)
    keys = _push_state(con, store, runs, sent, origin, result)
    if run_ids is None:  # everything: the monitors' incidents too (a tick pushes its own, push_incidents)
        incidents = entries.incident_entries(store.incidents(), origin).filter(~pl.col("entry_key").is_in(list(sent)))
        result.add("incident", incidents.height, send(con, incidents) if incidents.height else 0)
        keys += incidents["entry_key"].to_list()
    record_pushed(store, team, done, keys)
    return result


def push_incidents(store: Store, team: TeamDB, monitor: str, *, origin: str) -> int:
    """A monitor's incidents (after its tick decided), those the server does not have; returns how many."""
    todo = entries.incident_entries(store.incidents(monitor), origin)
    sent = sent_keys(store, team)
    todo = todo.filter(~pl.col("entry_key").is_in(list(sent)))
    if todo.is_empty():
        return 0
    con = connect(team, timeout_s=2)
    try:
        check_schema(con, team)
        new = send(con, todo)
    finally:
        con.close()
    record_pushed(store, team, {}, todo["entry_key"].to_list())
    return new


def _row_entries_by_origin(rows: pl.DataFrame, origins: dict[str, Any], origin: str) -> pl.DataFrame:
    parts = [entries.row_entries(rows.filter(pl.col("run_id") == rid), o or origin)
             for rid, o in origins.items() if rid in set(rows["run_id"].to_list())]
    return pl.concat(parts) if parts else entries.empty()


def _push_state(con: Any, store: Store, runs: pl.DataFrame, sent: set[str], origin: str,
                result: PushResult) -> list[str]:
    """Run states, sweeps, catalog and credit snapshots not sent yet; returns the keys now on the server."""
    sweep_ids = [s for s in runs["sweep_id"].unique().to_list() if s is not None]
    snaps = [s for s in runs["catalog_snapshot_id"].unique().to_list()
             if s is not None and entries.catalog_key(s) not in sent]
    sweeps, headers, prices, credits = store.query_many([
        ("SELECT * FROM sweeps WHERE list_contains($ids, sweep_id)", {"ids": sweep_ids}),
        ("SELECT * FROM catalog_snapshots WHERE list_contains($ids, snapshot_id)", {"ids": snaps}),
        ("SELECT * FROM catalog_prices WHERE list_contains($ids, snapshot_id) "
         "ORDER BY snapshot_id, model_id, provider NULLS FIRST", {"ids": snaps}),
        ("SELECT * FROM credit_snapshots WHERE run_id IS NULL OR list_contains($ids, run_id)",
         {"ids": runs["run_id"].to_list()}),
    ])
    todo = state_batch(runs, sent, origin, sweeps, headers, prices, credits)
    for kind in todo["kind"].unique().sort().to_list():
        part = todo.filter(pl.col("kind") == kind)
        result.add(kind, part.height, 0)
    new = send(con, todo) if todo.height else 0
    result.new["state"] = new
    return todo["entry_key"].to_list()


def state_batch(runs: pl.DataFrame, sent: set[str], origin: str, sweeps: pl.DataFrame, headers: pl.DataFrame,
                prices: pl.DataFrame, credits: pl.DataFrame) -> pl.DataFrame:
    """The entries of runs' rows, their sweeps, catalog snapshots (header + prices) and credit snapshots,
    less the keys in ``sent``: the rows as read, no reads here."""
    batch = [entries.run_entries(runs, origin), entries.sweep_entries(sweeps, origin)]
    for header in headers.iter_rows(named=True):
        snap = header["snapshot_id"]
        if entries.catalog_key(snap) not in sent:
            batch.append(entries.catalog_entries(header, prices.filter(pl.col("snapshot_id") == snap), origin))
    if runs.height:
        batch.append(entries.credit_entries(credits, origin, skip=sorted(sent)))
    return pl.concat(batch).filter(~pl.col("entry_key").is_in(list(sent)))


# -- the background pusher of a run -------------------------------------------------------


_PENDING: set[Pusher] = set()
_PENDING_LOCK = threading.Lock()
_AT_EXIT: list[bool] = []
EXIT_WAIT_S = 60.0
"""How long a process that ends waits for its runs' last pushes (then ``orbench team push`` catches up)."""


def wait_pushers(timeout_s: float | None = None) -> list[str]:
    """Wait for the runs' pushers still finishing; returns their one-line failures."""
    with _PENDING_LOCK:
        pending = list(_PENDING)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    failures = []
    for pusher in pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        error = pusher.wait(left)
        if error:
            failures.append(error)
    return failures


class Pusher:
    """Follows one run's journal into the team store while the run goes (``start``/``stop``).

    Never raises into the run and never makes it wait on the server: it pushes from its own
    thread, at once (the run's row, its catalog and credits) and then every ``interval_s``; a
    server that is down is retried every few seconds. ``stop`` returns at once: the thread then
    pushes what is left, while the caller reads its summary; ``wait`` (or ``wait_pushers``, which
    an ending process calls too) waits for that. Whatever fails is left for ``orbench team push``
    (``team status`` shows the lag).
    """

    def __init__(self, store: Store, team: TeamDB, run_id: str, origin: str, *, interval_s: float = 2.0) -> None:
        self.store, self.team, self.run_id, self.origin = store, team, run_id, origin
        self.interval_s = interval_s
        self.error: str | None = None
        """The last failure, one redacted line (None while the server answers)."""
        self.pushed = 0
        self._offset: int | None = None
        self._state_keys: list[str] = []
        self._con: Any = None
        self._retry_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="orbench-team-push", daemon=True)

    def start(self) -> Pusher:
        with _PENDING_LOCK:
            _PENDING.add(self)
            if not _AT_EXIT:  # a process that ends still sends its runs' last rows (bounded)
                _AT_EXIT.append(True)
                atexit.register(wait_pushers, EXIT_WAIT_S)
        self._thread.start()
        return self

    def _loop(self) -> None:
        try:
            self.tick()
            while not self._stop.wait(self.interval_s):
                self.tick()
            self._final()
        finally:
            with _PENDING_LOCK:
                _PENDING.discard(self)

    def tick(self) -> None:
        """One pass: new journal lines (and the run's state when it changed) to the server.

        The first pass sends everything the run has so far (``_first_pass``: its row, catalog,
        credits, sweep, rows a resume booked, the journal), so that the end has only the tail left."""
        if time.monotonic() < self._retry_at:
            return
        try:
            if self._con is None:
                self._con = connect(self.team, timeout_s=2)
                check_schema(self._con, self.team)
            if self._offset is None:
                self._offset = self._first_pass(self._con)
            else:
                # One read per tick, not a chase to the end: a run journals faster than any slice goes
                # up, and each pass has fixed costs (a decode, a transaction) the run's loop shares the
                # GIL with. What arrives meanwhile goes next tick, or at stop.
                path = journal.journal_path(self.store.journal_dir, self.run_id)
                batch, end = entries.journal_entries(path, self._offset, self.origin)
                if end != self._offset:
                    self.pushed += send(self._con, batch)
                    self._offset = end
            self.error = None
        except Exception as exc:  # noqa: BLE001 - the run goes on; the journal keeps every row
            self.error = str(exc) if isinstance(exc, TeamUnreachable) else f"{type(exc).__name__}: {exc}"
            self.error = self.error.replace(self.team.url, self.team.redacted).splitlines()[0]
            self._drop_connection()
            self._retry_at = time.monotonic() + 2.0

    def _first_pass(self, con: Any) -> int:
        """Everything the run has so far (its row, catalog, credits, sweep, rows a resume booked, the
        journal) from one read of the local file: while the run goes, the pusher opens the file this
        once (each open waits its turn with the run's writer), then reads only the journal."""
        q = {"id": self.run_id, "team": self.team.key}
        of_run = "(SELECT {} FROM runs WHERE run_id = $id)"
        runs, offset, sent, sweeps, headers, prices, credits, booked = self.store.query_many([
            ("SELECT * FROM runs WHERE run_id = $id AND team_seq IS NULL", {"id": self.run_id}),
            ("SELECT max(journal_bytes) AS b FROM _orbench_team_pushed WHERE team = $team AND run_id = $id", q),
            ("SELECT entry_key FROM _orbench_team_sent WHERE team = $team AND (entry_key LIKE 'catalog:%' "
             "OR entry_key LIKE 'credit:%')", {"team": self.team.key}),
            (f"SELECT * FROM sweeps WHERE sweep_id = {of_run.format('sweep_id')}", {"id": self.run_id}),
            (f"SELECT * FROM catalog_snapshots WHERE snapshot_id = {of_run.format('catalog_snapshot_id')}",
             {"id": self.run_id}),
            (f"SELECT * FROM catalog_prices WHERE snapshot_id = {of_run.format('catalog_snapshot_id')} "
             "ORDER BY model_id, provider NULLS FIRST", {"id": self.run_id}),
            ("SELECT * FROM credit_snapshots WHERE run_id IS NULL OR run_id = $id", {"id": self.run_id}),
            (_stored_rows_sql(IN_FLIGHT_BOOKED), {"ids": [self.run_id]}),
        ])
        start = int(offset["b"][0]) if offset.height and offset["b"][0] is not None else 0
        state = state_batch(runs, set(sent["entry_key"].to_list()), self.origin, sweeps, headers, prices, credits)
        self.pushed += send(con, state)  # the run row first: readers see a run in progress
        parts = []
        if booked.height:  # rows a resume booked in place before this session
            changed = entries.row_entries(_wire(booked), runs["origin"][0] if runs.height else self.origin)
            have = _server_request_keys(con, [self.run_id])
            parts.append(changed.filter(~pl.col("entry_key").is_in(list(have))))
        path = journal.journal_path(self.store.journal_dir, self.run_id)
        batch, end = entries.journal_entries(path, start, self.origin)
        parts.append(batch)
        self.pushed += send(con, pl.concat(parts))
        self._state_keys = state["entry_key"].to_list()
        return end

    def _finish(self, con: Any, offset: int) -> None:
        """The tail after a first pass: journal lines since, the run's final row, its credit snapshots
        and rows booked in place, in one read of the local file and one server transaction (the run's
        end waits on this, so it is kept to that)."""
        path = journal.journal_path(self.store.journal_dir, self.run_id)
        tail, end = entries.journal_entries(path, offset, self.origin)
        runs, credits, booked = self.store.query_many([
            ("SELECT * FROM runs WHERE run_id = $id", {"id": self.run_id}),
            ("SELECT * FROM credit_snapshots WHERE run_id = $id", {"id": self.run_id}),
            (_stored_rows_sql(IN_FLIGHT_BOOKED), {"ids": [self.run_id]}),
        ])
        state = pl.concat([entries.run_entries(runs, self.origin), entries.credit_entries(credits, self.origin)])
        parts = [tail, state]
        if booked.height:  # a resume's booked rows the server may lack (the first pass sent them unless it failed)
            changed = entries.row_entries(_wire(booked), runs["origin"][0] if runs.height else self.origin)
            have = _server_request_keys(con, [self.run_id])
            parts.append(changed.filter(~pl.col("entry_key").is_in(list(have))))
        self.pushed += send(con, pl.concat(parts))
        record_pushed(self.store, self.team, {self.run_id: end}, self._state_keys + state["entry_key"].to_list())

    def _drop_connection(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            except Exception:  # noqa: BLE001 - a dead connection may refuse to close
                pass
            self._con = None

    def stop(self) -> None:
        """The run ended: push what is left (journal, run state, credits) from the thread; returns at once."""
        self._stop.set()

    def wait(self, timeout_s: float | None = None) -> str | None:
        """Wait for the last push; its failure (one line), if any."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return f"run {self.run_id}: still pushing to {self.team.redacted}; `orbench team push` completes it"
        return self.error

    def _final(self) -> None:
        self._retry_at = 0.0
        for _ in range(2):  # a connection from before a server restart is dead: once more on a new one
            try:
                con = self._con or connect(self.team, timeout_s=2)
                self._con = con
                if self._offset is None:  # no first pass (the server was down until now): all of it
                    push(self.store, self.team, [self.run_id], origin=self.origin, con=con,
                         reconcile=IN_FLIGHT_BOOKED)
                else:
                    self._finish(con, self._offset)
                self.error = None
                break
            except Exception as exc:  # noqa: BLE001 - left for `orbench team push`
                self.error = (str(exc).replace(self.team.url, self.team.redacted).splitlines() or ["failed"])[0]
                self._drop_connection()
        self._drop_connection()

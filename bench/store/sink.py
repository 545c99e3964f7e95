"""Where finished rows go: journaled at once, moved into DuckDB in small batches.

``add()`` is called on the event loop for every row (and every later revision of
a row). The row is written to the run's journal immediately (a finished, paid
result must survive a ``kill -9`` a moment later: once ``os.write`` returns, the
kernel has it). A background thread fsyncs the journal and ingests its new lines
into DuckDB with a short-lived connection every ``interval_s``, so the dashboard
(another process) can read in between and a locked database never stalls the run.

With ``heartbeat_run`` the same thread also stamps that run's heartbeat in the
database every ``HEARTBEAT_INTERVAL_S`` (at the first tick, then on schedule), so
another process (the dashboard) can tell a live run from a dead one. It is one
short write every few seconds, never one per request, and a missed beat is harmless.

When the journal cannot be written (a full disk), ``add()`` never raises: the row
is held in memory, ``failure`` says why in one line (the runner then takes no new
requests), and ``close()`` writes the held rows straight into DuckDB. Nothing that
was recorded is lost, and the journal holds only whole lines.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.records import RequestRow
from bench.store.journal import JournalWriteError

HEARTBEAT_INTERVAL_S = 5.0
"""How often a running run says it is alive; readers call it dead after ~3 missed beats."""
INGEST_TICKS = 8
"""Journal lines move into DuckDB every this many ticks (2 s at the default 0.25 s tick), and at close.

The journal is what keeps a paid result (written at once, fsynced every tick); the database copy only
feeds live views. Each move opens DuckDB read-write and merges every revision since the last one: at
every tick that was a fifth of the client's CPU at 64 streams (three revisions a request), which the
event loop's requests then waited for on two cores."""


class StoreSink:
    def __init__(self, store: Any, *, interval_s: float = 0.25, heartbeat_run: str | None = None,
                 heartbeat_s: float = HEARTBEAT_INTERVAL_S, ingest_interval_s: float | None = None) -> None:
        self.store = store
        self.interval_s = interval_s  # fsync cadence of the journal
        self.ingest_interval_s = interval_s * INGEST_TICKS if ingest_interval_s is None else ingest_interval_s
        self._next_ingest = 0.0  # monotonic time of the next move into DuckDB
        self.heartbeat_run = heartbeat_run
        self.heartbeat_s = heartbeat_s
        self._next_beat = 0.0  # monotonic time of the next heartbeat; 0 = at the first tick
        self._runs: set[str] = set()
        self._pending = False  # rows journaled since the last move
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.added = 0
        self.error: BaseException | None = None
        self.failure: str | None = None
        """One line when the journal could not be written; rows are then held in ``held``."""
        self.held: list[RequestRow] = []
        self.lost: list[RequestRow] = []  # held rows that could not be written anywhere at close
        self._thread = threading.Thread(target=self._loop, name="orbench-writer", daemon=True)
        self._thread.start()

    def add(self, row: RequestRow) -> None:
        if self.failure is None:
            try:
                self.store.journal_line(row)
            except JournalWriteError as exc:
                self.failure = str(exc)
        if self.failure is not None:
            with self._lock:
                self.held.append(_copy(row))
                self.added += 1
            return
        with self._lock:
            self._runs.add(row.run_id)
            self.added += 1
            self._pending = True

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            closing = self._closed
            self._move()
            if closing:
                return
            self._beat()

    def _beat(self) -> None:
        now = time.monotonic()
        if self.heartbeat_run is None or now < self._next_beat:
            return
        self._next_beat = now + self.heartbeat_s
        try:
            self.store.beat(self.heartbeat_run)
        except BaseException:  # noqa: BLE001 - a busy file skips one beat; readers allow three
            pass

    def _move(self) -> None:
        # Only when something was journaled since the last pass: an idle tick must not
        # fsync or open the database read-write (that costs ~50 ms of CPU and locks
        # the dashboard out while long streams are still in flight). Every tick fsyncs;
        # the database gets the rows every ``ingest_interval_s`` and at close.
        now = time.monotonic()
        ingest = self._closed or now >= self._next_ingest
        with self._lock:
            if not self._pending:
                return
            if ingest:
                self._pending = False
            runs = sorted(self._runs)
        if ingest:
            self._next_ingest = now + self.ingest_interval_s
        for run_id in runs:
            try:
                self.store.sync_journal(run_id)
                if ingest:
                    self.store.ingest_journal(run_id)
            except BaseException as exc:  # noqa: BLE001 - keep the run going; rows are journaled
                # StoreBusy or anything else: nothing is lost, the rows wait in the
                # journal; try again next tick (and the next open ingests them anyway).
                self.error = exc
                with self._lock:
                    self._pending = True

    def close(self) -> None:
        """Move everything journaled into the database, write held rows there directly, then stop."""
        self._closed = True
        self._wake.set()
        self._thread.join()
        if self.held:
            held, self.held = self.held, []
            try:
                self.store.insert_rows(held)
            except BaseException as exc:  # noqa: BLE001 - say so; the caller reports the loss
                self.error = exc
                self.lost = held


def _copy(row: RequestRow) -> RequestRow:
    """A snapshot: the runner goes on enriching its row object after handing it over."""
    clone = RequestRow(**row.__dict__)
    if row.chunk_gaps_ms is not None:
        clone.chunk_gaps_ms = list(row.chunk_gaps_ms)
    return clone

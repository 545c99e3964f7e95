"""Where finished rows go: journaled at once, moved into DuckDB in small batches.

``add()`` is called on the event loop for every finished request. The row is
written to the run's journal immediately (a finished, paid result must survive a
``kill -9`` a moment later: once ``os.write`` returns, the kernel has it). A
background thread fsyncs the journal and ingests its new lines into DuckDB with a
short-lived connection every ``interval_s``, so the dashboard (another process)
can read in between and a locked database never stalls the run.
"""

from __future__ import annotations

import threading

from bench.records import RequestRow


class StoreSink:
    def __init__(self, store: object, *, interval_s: float = 0.25) -> None:
        self.store = store
        self.interval_s = interval_s
        self._runs: set[str] = set()
        self._pending = False  # rows journaled since the last move
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.added = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="orbench-writer", daemon=True)
        self._thread.start()

    def add(self, row: RequestRow) -> None:
        self.store.journal_line(row)  # type: ignore[attr-defined]
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

    def _move(self) -> None:
        # Only when something was journaled since the last pass: an idle tick must not
        # fsync or open the database read-write (that costs ~50 ms of CPU and locks
        # the dashboard out while long streams are still in flight).
        with self._lock:
            if not self._pending:
                return
            self._pending = False
            runs = sorted(self._runs)
        for run_id in runs:
            try:
                self.store.sync_journal(run_id)  # type: ignore[attr-defined]
                self.store.ingest_journal(run_id)  # type: ignore[attr-defined]
            except BaseException as exc:  # noqa: BLE001 - keep the run going; rows are journaled
                # StoreBusy or anything else: nothing is lost, the rows wait in the
                # journal; try again next tick (and the next open ingests them anyway).
                self.error = exc
                with self._lock:
                    self._pending = True

    def close(self) -> None:
        """Move everything that is journaled into the database, then stop."""
        self._closed = True
        self._wake.set()
        self._thread.join()

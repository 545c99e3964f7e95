"""Where finished rows go: journaled at once, written to DuckDB in small batches.

``add()`` is called on the event loop for every finished request. The row is
appended to the run's journal immediately (a finished, paid result must survive a
``kill -9`` a moment later); a background thread moves batches into DuckDB with
short-lived connections so the dashboard (another process) can read in between.
"""

from __future__ import annotations

import threading
import time

from bench.records import RequestRow


class StoreSink:
    def __init__(self, store: object, *, batch_size: int = 50, interval_s: float = 0.25) -> None:
        self.store = store
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._pending: list[RequestRow] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.written = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="orbench-writer", daemon=True)
        self._thread.start()

    def add(self, row: RequestRow) -> None:
        self.store.journal_rows(row.run_id, [row])  # type: ignore[attr-defined]
        with self._lock:
            self._pending.append(row)
            if len(self._pending) >= self.batch_size:
                self._wake.set()

    def _take(self) -> list[RequestRow]:
        with self._lock:
            batch, self._pending = self._pending, []
        return batch

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            batch = self._take()
            if batch:
                self._write(batch)
            if self._closed:
                rest = self._take()
                if rest:
                    self._write(rest)
                return

    def _write(self, batch: list[RequestRow]) -> None:
        try:
            self.store.insert_rows(batch)  # type: ignore[attr-defined]
            self.written += len(batch)
        except BaseException as exc:  # noqa: BLE001 - rows stay in the journal
            # Nothing is lost: the rows are journaled and the next open ingests them.
            self.error = exc
            time.sleep(0.05)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join()

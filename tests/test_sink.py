"""The run's row sink: journal at once, database in the background, nothing when idle."""

from __future__ import annotations

import time
from pathlib import Path

from bench.records import RequestRow
from bench.store.sink import StoreSink
from bench.store.store import Store


def row(i: int) -> RequestRow:
    return RequestRow("run-s", i, "m", "default", "openrouter", "c", 0, False, outcome="ok", ttft_ms=1.0)


def test_idle_ticks_leave_the_database_alone_and_rows_arrive_in_batches(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    store = Store(db)
    sink = StoreSink(store, interval_s=0.05)
    time.sleep(0.3)  # six idle ticks
    assert not db.exists()  # nothing opened, nothing created
    sink.add(row(0))
    journal = store.journal_dir / "run-s.jsonl"
    assert journal.read_text().count("\n") == 1  # journaled before add() returned
    deadline = time.monotonic() + 5
    while sink.error is None and time.monotonic() < deadline:
        if db.exists() and store.requests_frame("run-s").height == 1:
            break
        time.sleep(0.02)
    assert store.requests_frame("run-s").height == 1
    time.sleep(0.1)  # let the writer's pass (and its checkpoint on close) finish
    mtime = db.stat().st_mtime_ns
    cpu = time.process_time()
    time.sleep(1.0)  # twenty idle ticks: no fsync, no database open (each costs tens of ms of CPU)
    assert time.process_time() - cpu < 0.2
    assert db.stat().st_mtime_ns == mtime
    for i in range(1, 5):
        sink.add(row(i))
    sink.close()
    assert sorted(store.requests_frame("run-s")["request_idx"].to_list()) == [0, 1, 2, 3, 4]

"""The store's concurrency design with real, separate processes on one DuckDB file.

Two writers and a read-only reader run at once; a writer is killed with SIGKILL
mid-run. The children are small scripts run by the same interpreter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.store import journal
from bench.store.store import Store

ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import json, sys, time
from bench.errors import StoreBusy
from bench.records import RequestRow
from bench.store.store import Store

# The runner's path (bench.store.sink): journal each row, fsync the batch, then ingest the journal;
# a busy file leaves the rows in the journal for the next ingest.
db, run_id, n, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = Store(db)
store.init()
inserted, lagging = 0, set()
for start in range(0, n, batch):
    for i in range(start, min(n, start + batch)):
        store.journal_line(RequestRow(run_id=run_id, request_idx=i, model="acme/alpha", provider_variant="default",
                                      endpoint="openrouter", case_id="c", repeat=0, is_warmup=False, outcome="ok",
                                      ttft_ms=float(i), chunk_gaps_ms=[1.0, 2.0]))
    store.sync_journal(run_id)
    print(min(n, start + batch), flush=True)
    try:
        inserted += store.ingest_journal(run_id)
        lagging.discard(run_id)
    except StoreBusy:
        lagging.add(run_id)
if lagging:  # what the sink's close does: one more move; rows still busy stay lagging
    try:
        inserted += store.ingest_journal(run_id)
        lagging.clear()
    except StoreBusy:
        pass
print(json.dumps({"inserted": inserted, "lagging": sorted(lagging)}), flush=True)
"""

READER = """
import json, sys, time
from pathlib import Path
from bench.errors import StoreBusy
from bench.store.store import Store

db, stop = sys.argv[1], Path(sys.argv[2])
store = Store(db, read_timeout_s=2.0)
reads = busy = 0
counts, errors = [], []
while not stop.exists():
    try:
        n = store.query("SELECT count(*) AS n FROM requests")["n"].item()
        counts.append(int(n))
        reads += 1
    except StoreBusy:
        busy += 1
    except Exception as exc:  # the test asserts there are none
        errors.append(f"{type(exc).__name__}: {exc}")
    time.sleep(0.1)  # a dashboard polling hard (10/s), not a busy loop
print(json.dumps({"reads": reads, "busy": busy, "errors": errors, "counts": counts}))
"""


def spawn(script: Path, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def scripts(tmp_path: Path) -> tuple[Path, Path]:
    writer, reader = tmp_path / "writer.py", tmp_path / "reader.py"
    writer.write_text(WRITER)
    reader.write_text(READER)
    return writer, reader


def test_two_writers_and_a_reader_share_one_file(tmp_path: Path) -> None:
    writer, reader = scripts(tmp_path)
    db, stop = tmp_path / "data" / "orbench.duckdb", tmp_path / "stop"
    read = spawn(reader, db, stop)  # starts before the file exists
    writers = [spawn(writer, db, run_id, 2000, 20) for run_id in ("run-w1", "run-w2")]
    outs = [w.communicate(timeout=120) for w in writers]
    stop.touch()
    read_out, read_err = read.communicate(timeout=30)
    for w, (out, err) in zip(writers, outs):
        assert w.returncode == 0, err
        # "inserted" may be < 2000: the other writer's init() can ingest our journal.
        assert json.loads(out.splitlines()[-1])["lagging"] == []
    assert read.returncode == 0, read_err
    seen = json.loads(read_out)
    assert seen["errors"] == [] and seen["reads"] > 0
    assert seen["counts"] == sorted(seen["counts"])  # a reader never sees rows vanish
    print(f"reader: {seen['reads']} reads, {seen['busy']} StoreBusy")
    store = Store(db)
    totals = store.query(
        "SELECT count(*) AS n, count(DISTINCT (run_id, request_idx)) AS keys, "
        "count(DISTINCT run_id) AS runs FROM requests"
    ).row(0, named=True)
    assert totals == {"n": 4000, "keys": 4000, "runs": 2}


def test_kill_9_mid_run_loses_nothing_journaled(tmp_path: Path) -> None:
    writer, _ = scripts(tmp_path)
    db = tmp_path / "data" / "orbench.duckdb"
    proc = spawn(writer, db, "run-k", 20000, 20)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait for ~10 acknowledged batches
        line = proc.stdout.readline()
        if not line or (line.strip().isdigit() and int(line) >= 200):
            break
    time.sleep(0.037)  # land somewhere inside a later batch
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    path = journal.journal_path(db.parent / "journal" / db.stem, "run-k")
    journaled = [r.request_idx for r in journal.read_rows(path)]
    assert len(journaled) >= 200
    store = Store(db)
    store.init()  # the next open recovers whatever the database lacks
    assert store.ingest_journal("run-k") == 0
    stored = store.requests_frame("run-k", columns=["request_idx"])["request_idx"].to_list()
    assert len(stored) == len(set(stored))  # exactly once
    assert set(stored) == set(journaled)

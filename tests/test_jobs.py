"""Runs that survive a reload: the process-level job registry and the heartbeat listing.

Dashboard-started runs: two AppTest sessions in one process stand for two tabs (or a
tab before and after a reload): the second sees the first's run and cancels it.
CLI runs: a real ``orbench run --sandbox`` subprocess writes its heartbeat into a
real DuckDB file; the Run page lists it as running, then not (finished); one killed
with SIGKILL is listed as not responding with the command that resumes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from streamlit.testing.v1 import AppTest
from test_dashboard import APP, texts

from bench.records import RequestRow
from bench.sandbox import start_sandbox
from bench.store.sink import StoreSink
from bench.store.store import Store
from dashboard import jobs

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "data" / "suites" / "smoke.yaml"


@pytest.fixture(autouse=True)
def fresh_registry(cli_db: Path) -> Iterator[None]:
    """Every test starts with an empty registry and leaves no run behind."""
    jobs.registry.clear()
    yield
    for job in jobs.registry().jobs():
        job.cancel()
        job.wait(30)
    jobs.registry.clear()


def run_page(db: Path, monkeypatch: pytest.MonkeyPatch, base_url: str) -> AppTest:
    """A new session (a new tab, or a reloaded one) on the Run page."""
    monkeypatch.setenv("ORBENCH_DB", str(db))
    monkeypatch.setenv("OPENROUTER_BASE_URL", base_url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("app_pages/run.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def wait_for(what: Callable[[], Any], timeout_s: float, message: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(message)


def cancel_buttons(at: AppTest) -> list[Any]:
    return [b for b in at.button if str(b.key or "").startswith("run-cancel-")]


def all_text(at: AppTest) -> str:
    kinds = ("markdown", "caption", "warning", "error", "success", "code", "subheader")
    return " ".join(str(e.value) for kind in kinds for e in getattr(at, kind))


# ------------------------------------------------------------------- dashboard-started runs
def test_registry_second_session_sees_progress_and_cancels(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Tab A starts a slow run; tab B, opened afterwards, shows its progress and cancels it."""
    db = tmp_path / "reload.duckdb"
    with start_sandbox(seed=3, time_scale=1.0) as sb:
        a = run_page(db, monkeypatch, sb.base_url)
        a.number_input(key="run-repeats").set_value(50).run()
        a.number_input(key="run-concurrency").set_value(1).run()
        a.button(key="run-start").click().run()
        job = jobs.registry().jobs()[0]
        wait_for(lambda: job.snapshot().done >= 2, 60, "the run made no progress")
        assert "run_job" not in a.session_state  # the job is not kept in a session any more

        b = run_page(db, monkeypatch, sb.base_url)  # a new session: nothing in its session_state
        s = job.snapshot()
        assert s.phase == "running" and s.run_id is not None
        assert jobs.registry().get(s.run_id) is job  # keyed by run id
        assert any(s.run_id in m for m in texts(b, "markdown")), texts(b, "markdown")
        assert b.get("progress"), "no progress bar in the second session"
        assert b.button(key="run-start").disabled  # one dashboard run at a time, whichever tab
        [cancel] = cancel_buttons(b)
        cancel.click().run()
        final = job.wait(30)
        assert final.phase == "cancelled", final
        b.run()
        assert any("ended cancelled" in e for e in texts(b, "error")), texts(b, "error")
        a.run()  # the first tab sees the same ending
        assert any("ended cancelled" in e for e in texts(a, "error")), texts(a, "error")
    assert Store(db).get_run(s.run_id).status == "cancelled"  # type: ignore[union-attr]  # None fails the test


def test_registry_files_jobs_by_run_id_and_keeps_the_newest_ended(tmp_path: Path) -> None:
    from bench.config import Settings
    from bench.run.spec import RunSpec

    reg = jobs.JobRegistry(keep_ended=1)
    with start_sandbox(seed=4, time_scale=0.0) as sb:
        settings = Settings(base_url=sb.base_url, db_path=tmp_path / "r.duckdb", sandbox=True)
        done = []
        for _ in range(3):
            job = reg.start(settings, RunSpec(suite_path=SMOKE, repeats=1, concurrency=8))
            assert job.wait(60).phase == "finished"
            done.append(job)
        reg.start(settings, RunSpec(suite_path=SMOKE, repeats=1, concurrency=8)).wait(60)
    kept = reg.jobs()
    assert len(kept) == 2 and kept[1] is done[-1]  # the newest ended one, then the one started last
    assert reg.get(done[0].snapshot().run_id or "") is None  # pruned: also gone from the run-id map
    assert reg.get(done[-1].snapshot().run_id or "") is done[-1]


# ------------------------------------------------------------------- CLI runs, read from the database
def start_cli_run(db: Path, repeats: int, concurrency: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", str(SMOKE), "--sandbox", "--db", str(db),
         "--repeat", str(repeats), "--concurrency", str(concurrency), "--no-warmup"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def running(db: Path) -> list[dict[str, Any]]:
    return Store(db, read_timeout_s=2).running_runs().to_dicts() if db.exists() else []


def test_cli_run_is_listed_running_then_gone_when_finished(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "cli.duckdb"
    proc = start_cli_run(db, repeats=3, concurrency=1)
    try:
        [row] = wait_for(lambda: [r for r in running(db) if r["heartbeat_at"]], 60, "no heartbeat")
        with start_sandbox(seed=5, time_scale=0.0) as sb:
            at = run_page(db, monkeypatch, sb.base_url)
            shown = all_text(at)
            assert row["run_id"] in shown and "heartbeat" in shown, shown
            assert f"pid {proc.pid}" in shown
            assert not any("Not responding" in w for w in texts(at, "warning"))
            assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
            at.run()
            assert "No run started from the CLI is in progress" in all_text(at)
            assert row["run_id"] not in all_text(at)
    finally:
        proc.kill()
        proc.wait()
    assert Store(db).get_run(row["run_id"]).status == "finished"  # type: ignore[union-attr]  # None fails the test


def test_killed_cli_run_is_listed_not_responding_with_resume(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "killed.duckdb"
    proc = start_cli_run(db, repeats=50, concurrency=1)
    try:
        [row] = wait_for(lambda: [r for r in running(db) if r["heartbeat_at"]], 60, "no heartbeat")
        wait_for(lambda: running(db)[0]["done"] >= 1, 60, "no request finished")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with start_sandbox(seed=6, time_scale=0.0) as sb:
        at = run_page(db, monkeypatch, sb.base_url)
    assert any("Not responding (crashed?)" in w for w in texts(at, "warning")), texts(at, "warning")
    command = f"orbench run --resume {row['run_id']} --sandbox --db {db}"
    assert command in [str(c.value) for c in at.code], [c.value for c in at.code]


def test_stale_heartbeat_from_another_host_is_not_responding(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """No pid to check on another machine: three missed beats (15 s) decide."""
    db = tmp_path / "stale.duckdb"
    store = Store(db)
    store.init()
    for run_id in ("run-fresh", "run-stale"):
        store.create_run(run_id, name=run_id, status="running", simulated=True, plan=[])
        store.beat(run_id)
    con = duckdb.connect(str(db))
    con.execute("UPDATE runs SET heartbeat_host = 'another-host'")
    con.execute("UPDATE runs SET heartbeat_at = now() - INTERVAL 20 SECOND WHERE run_id = 'run-stale'")
    con.close()
    with start_sandbox(seed=7, time_scale=0.0) as sb:
        at = run_page(db, monkeypatch, sb.base_url)
    warnings = [w for w in texts(at, "warning") if "Not responding" in w]
    assert len(warnings) == 1
    assert [str(c.value) for c in at.code] == [f"orbench run --resume run-stale --sandbox --db {db}"]


def test_sink_beats_on_its_schedule_not_per_row(tmp_path: Path) -> None:
    """Many rows in 0.6 s: the heartbeat is written at the first tick and then not again."""
    store = Store(tmp_path / "beat.duckdb")
    store.init()
    store.create_run("run-b", status="running", plan=[])
    sink = StoreSink(store, interval_s=0.02, heartbeat_run="run-b", heartbeat_s=60)
    wait_for(lambda: store.running_runs()["heartbeat_at"][0] is not None, 5, "no first beat")
    first = store.running_runs()["heartbeat_at"][0]
    for i in range(200):
        sink.add(RequestRow("run-b", i, "m", "default", "openrouter", "c", 0, False, outcome="ok"))
        time.sleep(0.003)
    sink.close()
    assert store.running_runs()["heartbeat_at"][0] == first
    assert store.running_runs()["done"][0] == 200

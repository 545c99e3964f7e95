"""The database as an interface: the views ``requests_current`` and ``runs_summary`` (m009).

A real ``python -m bench run`` subprocess against a loopback fake server is killed
with SIGKILL mid-run, then resumed through the CLI; the views are read with plain
DuckDB SQL, as another tool would read them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from bench.results.summary import run_summary
from bench.store.store import Store
from tests._rows import write_rows
from tests.conftest import invoke
from tests.fake_openrouter import start_fake

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-or-v1-THIS-IS-A-SECRET-0123456789abcdef"


@pytest.fixture
def env(cli_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    monkeypatch.setenv("ORBENCH_BASE_URL_KEY_ENV", "OPENROUTER_API_KEY")  # the fake is not openrouter.ai
    return cli_db


def _suite(tmp: Path, repeats: int = 6) -> Path:
    p = tmp / "v.yaml"
    p.write_text("name: v\nmodels: [acme/alpha, acme/beta]\n"
                 f"repeats: {repeats}\ndefaults: {{max_tokens: 8, temperature: 0}}\n"
                 "cases:\n  - {id: c0, prompt: 'Say one thing.'}\n  - {id: c1, prompt: 'Say another.'}\n")
    return p


def _sql(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _journal_results(db: Path) -> int:
    d = db.parent / "journal"
    return sum(1 for p in d.rglob("*.jsonl") for line in p.read_text().splitlines()
               if '"outcome":"started"' not in line) if d.exists() else 0


def _kill_mid_run(db: Path, suite: Path, base_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    env.update(OPENROUTER_API_KEY=SECRET, ORBENCH_BASE_URL_KEY_ENV="OPENROUTER_API_KEY",
               ORBENCH_DB=str(db), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), "--base-url", base_url,
                             "--concurrency", "2"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while _journal_results(db) < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_requests_current_holds_the_planned_count_after_kill_9_and_resume(env: Path, tmp_path: Path) -> None:
    server = start_fake(ttft_s=0.15, token_gap_s=0.002)
    _kill_mid_run(env, _suite(tmp_path), server.base_url)
    Store(env).init()  # the next writer recovers the journal, as any orbench command would
    planned = 2 + 2 * 2 * 6  # a warm-up per model, then models x cases x repeats
    run_id = _sql(env, "SELECT run_id FROM runs")[0][0]
    assert _sql(env, "SELECT planned FROM runs")[0][0] == planned
    (n, recorded, warm), = _sql(env, "SELECT count(*), count(*) FILTER (WHERE recorded), "
                                     "count(*) FILTER (WHERE is_warmup) FROM requests_current")
    assert n == planned and warm == 2
    assert 7 <= recorded < planned  # the crash left requests that were never sent: still listed
    unsent = _sql(env, "SELECT outcome, ttft_ms, model, case_id FROM requests_current WHERE NOT recorded")
    assert all(o is None and t is None and m in ("acme/alpha", "acme/beta") and c in ("c0", "c1")
               for o, t, m, c in unsent)
    (sent, not_sent, warmups), = _sql(env, "SELECT sent, not_sent, warmups FROM runs_summary")
    assert sent + not_sent + warmups == planned

    code, _, err = invoke("run", "--resume", run_id, "--base-url", server.base_url, "--json")
    assert code == 0, err
    rows = _sql(env, "SELECT request_idx, recorded, outcome, is_warmup, in_latency_stats FROM requests_current "
                     "ORDER BY request_idx")
    assert [r[0] for r in rows] == list(range(planned))  # one row per planned request, no duplicate
    assert all(r[1] and r[2] == "ok" for r in rows)
    assert all(r[4] == (not r[3]) for r in rows)  # latency statistics: the ok rows that are not warm-ups
    summary = _sql(env, "SELECT planned, requests, warmups, sent, ok, errors, not_sent, status, spend_usd, "
                        "cost_usd, first_request_at <= last_request_at FROM runs_summary")[0]
    assert summary[:8] == (planned, planned, 2, planned - 2, planned - 2, 0, 0, "finished")
    assert summary[8] == Store(env).run_spend(run_id) and summary[8] >= summary[9] > 0
    assert summary[10] is True


def test_requests_current_matches_a_plain_average_only_with_its_flag(env: Path, tmp_path: Path) -> None:
    """``avg(ttft_ms)`` over ``requests`` counts the warm-ups; ``in_latency_stats`` leaves them out."""
    server = start_fake(ttft_s=0.02, token_gap_s=0.001)
    code, _, err = invoke("run", str(_suite(tmp_path, repeats=2)), "--base-url", server.base_url)
    assert code == 0, err
    (all_n, stats_n), = _sql(env, "SELECT count(ttft_ms), count(ttft_ms) FILTER (WHERE in_latency_stats) "
                                  "FROM requests_current")
    assert all_n == 2 + 8 and stats_n == 8
    shown = run_summary(Store(env), _sql(env, "SELECT run_id FROM runs")[0][0])
    assert shown[-1]["group"] == "TOTAL" and shown[-1]["ok"] == shown[-1]["n_ttft"] == stats_n


def test_runs_summary_counts_superseded_money_and_judge_costs(tmp_path: Path) -> None:
    """A re-send replaced a paid crashed send: runs_summary keeps both, as Store.run_spend does."""
    from bench.records import RequestRow

    store = Store(tmp_path / "s.duckdb")
    store.init()
    plan = [{"request_idx": i, "model": "m/a", "provider_variant": "default", "endpoint": "openrouter",
             "case_id": "c", "repeat": i, "is_warmup": False} for i in range(3)]
    run_id = store.create_run(plan=plan, status="running")
    base = dict(run_id=run_id, model="m/a", provider_variant="default", endpoint="openrouter", case_id="c",
                is_warmup=False)
    write_rows(store, [RequestRow(request_idx=0, repeat=0, outcome="started", max_cost_usd=Decimal("0.5"),
                                 spend_usd=Decimal("0.5"), **base)])
    write_rows(store, [RequestRow(request_idx=0, repeat=0, outcome="ok", session=1, cost_usd=Decimal("0.25"),
                                 spend_usd=Decimal("0.25"), judge_calls=1, judge_cost_usd=Decimal("0.01"),
                                 ttft_ms=10.0, **base)])
    store.add_judge_cost(run_id, 1, 10, 5, Decimal("0.02"))
    row = store.query("SELECT * FROM runs_summary").row(0, named=True)
    assert (row["planned"], row["requests"], row["sent"], row["ok"], row["not_sent"]) == (3, 3, 1, 1, 2)
    assert row["superseded_sends"] == 1 and row["judge_calls"] == 2
    assert row["judge_cost_usd"] == Decimal("0.03")
    assert row["spend_usd"] == Decimal("0.5") + Decimal("0.25") + Decimal("0.01") + Decimal("0.02")
    assert row["spend_usd"] == store.run_spend(run_id)
    cur = store.query("SELECT request_idx, superseded_sends, session FROM requests_current ORDER BY 1")
    assert cur.rows() == [(0, 1, 1), (1, 0, None), (2, 0, None)]

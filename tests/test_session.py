"""bench.run.session.run_suite: the one door for a run, against the sandbox on loopback."""

from __future__ import annotations

import asyncio
import copy
from decimal import Decimal
from pathlib import Path

import pytest

from bench.config import Settings
from bench.errors import BudgetRefused
from bench.run import session
from bench.run.spec import RunSpec
from bench.sandbox import start_sandbox
from bench.store.store import Store
from bench.suites.model import Case, Model, Suite
from bench.suites.parse import load_suite

MODEL = "openai/gpt-4o-mini"


def code_suite() -> Suite:
    """A suite built in code, no file behind it (what ``verify`` builds)."""
    return Suite(path=Path("built-in-code"), name="code", models=(Model(MODEL, MODEL, {}, "openrouter", MODEL),),
                 cases=(Case("hi", [{"role": "user", "content": "Say hi."}], max_tokens=8),), repeats=1)


def judged_suite(tmp_path: Path) -> Path:
    path = tmp_path / "judged.yaml"
    path.write_text(f"name: judged\nmodels: [{MODEL}]\nrepeats: 3\nwarmup: false\n"
                    f"judge: {{model: {MODEL}, rubric: 'Says hi.'}}\n"
                    "cases:\n  - id: a\n    prompt: Say hi.\n    max_tokens: 8\n"
                    "    checks:\n      - judge: {rubric: 'Says hi.'}\n", encoding="utf-8")
    return path


def test_run_suite_runs_a_suite_built_in_code_and_changes_neither_input(tmp_path: Path) -> None:
    suite, spec = code_suite(), RunSpec(repeats=2, concurrency=2, warmup=False)
    suite_before, spec_before = copy.deepcopy(suite), copy.deepcopy(spec)
    with start_sandbox(time_scale=0) as sb:
        settings = Settings(base_url=sb.base_url, db_path=tmp_path / "db.duckdb", sandbox=True)
        store = Store(settings.db_path)
        result = asyncio.run(session.run_suite(settings, suite, spec, store=store, env={}))
    assert result.run_id is not None and result.state is not None and result.state.status == "finished"
    rows = store.requests_frame(result.run_id).to_dicts()
    assert len(rows) == 2 and all(r["outcome"] == "ok" for r in rows)
    assert result.prep.suite.repeats == 2 and suite.repeats == 1  # the plan ran on a copy
    assert (suite.repeats, suite.endpoints, suite.cases) == (suite_before.repeats, suite_before.endpoints,
                                                             suite_before.cases)
    assert spec == spec_before


def test_run_suite_dry_run_sends_nothing_and_needs_no_database(tmp_path: Path) -> None:
    with start_sandbox(time_scale=0) as sb:
        settings = Settings(base_url=sb.base_url, db_path=tmp_path / "db.duckdb", sandbox=True)
        result = asyncio.run(session.run_suite(settings, code_suite(), RunSpec(), store=None, env={},
                                               dry_run=True))
        chats = sb.state.chat_requests
    assert result.run_id is None and result.prep.measured == 1 and chats == 0
    assert not (tmp_path / "db.duckdb").exists()


def test_a_trimmed_plan_keeps_the_judge_in_its_worst_case(tmp_path: Path) -> None:
    """A sweep step's plan (``requests_per_target``) is priced like a run's: answers plus judges."""
    suite = load_suite(judged_suite(tmp_path))
    with start_sandbox(time_scale=0) as sb:
        settings = Settings(base_url=sb.base_url, db_path=tmp_path / "db.duckdb", sandbox=True)
        prep = asyncio.run(session.run_suite(settings, suite, RunSpec(requests_per_target=2), store=None,
                                             env={}, dry_run=True)).prep
    answers = sum((p.max_cost_usd or Decimal(0) for p in prep.plan), Decimal(0))
    assert prep.measured == 2 and prep.estimate_usd is not None
    assert prep.estimate_usd > answers  # the two judge calls are in it
    assert any("2 judge calls" in line for line in prep.bound_lines)


def test_run_suite_refuses_a_plan_over_budget_before_touching_the_database(tmp_path: Path) -> None:
    with start_sandbox(time_scale=0) as sb:
        settings = Settings(base_url=sb.base_url, db_path=tmp_path / "db.duckdb", sandbox=True)
        spec = RunSpec(budget_usd=Decimal("0.0000001"))
        with pytest.raises(BudgetRefused, match="exceeds --budget"):
            asyncio.run(session.run_suite(settings, code_suite(), spec, store=Store(settings.db_path), env={}))
    assert not (tmp_path / "db.duckdb").exists()

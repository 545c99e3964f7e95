"""What keeps ``--dry-run`` on a 100,000-row dataset fast, checked on a real (smaller) plan.

The costs were: a deep copy of every request body through JSON text, the cyclic GC walking
every object the plan had built so far again and again, and asyncio.run formatting the
whole ``Prepared`` (every planned request) in the task's repr. Timing itself is
``scripts/bench_dryrun.py``'s job (a loaded 2-core box makes a wall-clock test flaky);
these check the mechanisms, each of which fails if its fix is taken away.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench.config import Settings
from bench.run import engine, session
from bench.run.plan import CaseRequest, Target, build_body
from bench.run.spec import Prepared, RunSpec
from bench.sandbox import start_sandbox
from bench.suites.model import json_copy
from bench.suites.parse import load_suite

ROWS = 5000
SUITE = """name: dry-run
models: [openai/gpt-4o-mini]
warmup: false
defaults: {max_tokens: 16, temperature: 0}
datasets:
  - path: rows.csv
    id: "q{row}"
    system: Answer briefly.
    prompt: "Question {row}: {question}"
    checks: [{icontains: "{answer}"}]
"""


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dryrun")
    with (folder / "rows.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["question", "answer"])
        out.writerows([f"What is {i} plus {i}?", 2 * i] for i in range(ROWS))
    path = folder / "suite.yaml"
    path.write_text(SUITE, encoding="utf-8")
    return path


def _plan(suite_path: Path, tmp_path: Path) -> Prepared:
    with start_sandbox(time_scale=0) as sb:
        settings = Settings(base_url=sb.base_url, db_path=tmp_path / "orbench.duckdb", sandbox=True)
        suite = load_suite(suite_path)
        return asyncio.run(session.run_suite(settings, suite, RunSpec(), store=None, env={}, dry_run=True)).prep


@pytest.mark.parametrize("value", [
    {"messages": [{"role": "user", "content": "héllo \u2028 \ud800"}], "max_tokens": 16, "temperature": 0.1},
    {"a": [1, 2.5, True, None, {"b": [[], {}]}], "c": float("inf"), "d": -0.0, "e": 10**30},
    # a round trip changes these:
    {"tools": ({"type": "function"},), "n": {1: "int key", None: "null key", 2.5: "float key"}},
])
def test_json_copy_is_a_json_round_trip(value: Any) -> None:
    copied = json_copy(value)
    assert json.dumps(copied) == json.dumps(json.loads(json.dumps(value)))
    assert copied == json.loads(json.dumps(value))


def test_json_copy_shares_nothing_and_refuses_what_json_refuses() -> None:
    case = CaseRequest("c", {"messages": [{"role": "user", "content": "hi"}], "extra": {"k": [1]}}, 3)
    target = Target("m", "openrouter", "m", "default", provider={"order": ["a"]}, params={"top_p": 0.5})
    one, two = build_body(case, target), build_body(case, target)
    one["messages"][0]["content"] = "changed"
    one["extra"]["k"].append(2)
    assert two["messages"][0]["content"] == "hi" and two["extra"] == {"k": [1]}
    assert case.body == {"messages": [{"role": "user", "content": "hi"}], "extra": {"k": [1]}}
    assert two == {"messages": [{"role": "user", "content": "hi"}], "extra": {"k": [1]}, "top_p": 0.5,
                   "model": "m", "stream": True, "provider": {"order": ["a"]}}
    with pytest.raises(TypeError, match="Decimal"):
        json_copy({"price": Decimal("1.5")})


def test_prepare_builds_a_dataset_plan_without_a_gc_pass_and_turns_gc_back_on(
        suite_path: Path, tmp_path: Path) -> None:
    passes: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    assert gc.isenabled()
    gc.callbacks.append(record)
    try:
        prep = _plan(suite_path, tmp_path)
        during = list(passes)
    finally:
        gc.callbacks.remove(record)
    assert len(prep.plan) == ROWS and prep.estimate_usd is not None and prep.estimate_usd > 0
    # sandbox start and stop allocate too, so only the plan's part is asked to be free of passes:
    # 5,000 rows make ~100,000 objects, hundreds of passes with the collector on
    assert len(during) < 20, f"{len(during)} GC passes while planning {ROWS} rows"
    assert gc.isenabled()


def test_gc_paused_keeps_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with engine.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), engine.gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_prepared_and_suite_reprs_stay_short_for_a_big_plan(suite_path: Path, tmp_path: Path) -> None:
    """asyncio.run (3.11) formats the main task with its result; ours is a Prepared."""
    prep = _plan(suite_path, tmp_path)
    text = repr(prep)
    assert len(text) < 300 and f"plan={ROWS} requests" in text and "'dry-run'" in text, text
    assert repr(prep.suite) == f"Suite(path={str(suite_path)!r}, name='dry-run', models=1, cases={ROWS})"

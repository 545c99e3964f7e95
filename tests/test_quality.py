"""Quality checks end to end: known answers give exact pass rates; re-scoring sends nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench.sandbox import start_sandbox
from bench.store.store import Store
from tests.conftest import invoke
from tests.fake_openrouter import start_fake

QUESTIONS = {"q1": ("2+2", "4"), "q2": ("3*3", "9"), "q3": ("10-7", "3"), "q4": ("6/2", "3")}


def answers_for(model_right: set[str]) -> Any:
    def answer(body: dict[str, Any]) -> str:
        text = body["messages"][-1]["content"]
        qid = text.split(":")[0]
        right = QUESTIONS[qid][1]
        return f"The answer is {right}." if qid in model_right else "The answer is 42."
    return answer


def suite_text(expect_q1: str = "4") -> str:
    cases = []
    for qid, (expr, right) in QUESTIONS.items():
        value = expect_q1 if qid == "q1" else right
        cases.append(f"  - id: {qid}\n    prompt: '{qid}: what is {expr}?'\n"
                     f"    checks:\n      - numeric: {value}\n")
    return ("name: arithmetic\nmodels: [openai/gpt-4o-mini, meta-llama/llama-3.3-70b-instruct]\n"
            "repeats: 2\nwarmup: false\ndefaults: {max_tokens: 20}\ncases:\n" + "".join(cases))


@pytest.fixture
def env(cli_db: Path) -> Path:
    return cli_db


def pass_rates(summary: dict[str, Any]) -> dict[str, float]:
    return {g["model"]: g["pass_rate"] for g in summary["groups"]}


def test_known_answers_give_exact_pass_rates_and_rescoring_sends_nothing(env: Path, tmp_path: Path) -> None:
    answers = {"openai/gpt-4o-mini": answers_for({"q1", "q2", "q3", "q4"}),
               "meta-llama/llama-3.3-70b-instruct": answers_for({"q1", "q2"})}
    suite = tmp_path / "arith.yaml"
    suite.write_text(suite_text())
    with start_sandbox(time_scale=0.01, answers=answers) as sb:
        code, out, err = invoke("run", str(suite), "--base-url", sb.base_url, "--json",
                                "--fail-on", "pass_rate<0.9")
        assert code == 3, err  # llama passes 50 % of its answers
        rates = pass_rates(json.loads(out))
        assert rates == {"openai/gpt-4o-mini": 1.0, "meta-llama/llama-3.3-70b-instruct": 0.5,
                         "TOTAL": 0.75}
        sent = sb.state.chat_requests
        assert sent == 16

        # the check for q1 changes: now "5" is expected, so q1 fails for everyone
        suite.write_text(suite_text(expect_q1="5"))
        code, out, err = invoke("check", str(suite), "--run", "latest", "--json",
                                "--fail-on", "pass_rate<0.2")
        assert code == 0, err
        rates = pass_rates(json.loads(out))
        assert rates == {"openai/gpt-4o-mini": 0.75, "meta-llama/llama-3.3-70b-instruct": 0.25,
                         "TOTAL": 0.5}
        assert sb.state.chat_requests == sent  # nothing was sent to any model

        code, _, err = invoke("check", str(suite), "--run", "latest", "--fail-on", "pass_rate<0.5")
        assert code == 3, err  # the gates print as `orbench run` prints them (one implementation)
        assert "gates: 2 passed, 1 failed" in err
        assert "  FAIL meta-llama/llama-3.3-70b-instruct [default]: pass_rate = 0.25 (pass_rate<0.5)" in err

    rows = Store(env).requests_frame(Store(env).resolve_run("latest")).to_dicts()
    failed = [r for r in rows if r["case_id"] == "q1"]
    assert all(r["passed"] is False for r in failed)
    detail = json.loads(failed[0]["check_detail"])
    assert detail[0]["kind"] == "numeric" and "5" in detail[0]["reason"]
    code, out, _ = invoke("export", "latest", "--format", "csv")
    header = out.splitlines()[0].split(",")
    assert "passed" in header and "score" in header
    code, out, _ = invoke("export", "latest", "--format", "json", "--summary")
    assert all("pass_rate" in g for g in json.loads(out))


def test_a_bad_check_stops_before_any_request(env: Path, tmp_path: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: x\nmodels: [openai/gpt-4o-mini]\ncases:\n  - id: a\n    prompt: hi\n"
                     "    checks:\n      - regex: '([unclosed'\n")
    with start_sandbox(time_scale=0.01) as sb:
        code, _, err = invoke("run", str(suite), "--base-url", sb.base_url)
        assert sb.state.chat_requests == 0
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert "bad.yaml" in line and "cases[0]" in line and "checks[0]" in line
    assert not env.exists()


def test_a_reported_zero_cost_scores_the_same_when_run_and_when_re_scored(env: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The run and ``orbench check`` share one check evaluation (``checks.evaluate_row``): a billed $0
    is a cost of $0, not a missing one replaced by the (higher) list cost."""
    suite = tmp_path / "cost.yaml"
    suite.write_text("name: cost\nmodels: [acme/waived, acme/alpha]\nrepeats: 2\nwarmup: false\n"
                     "defaults: {max_tokens: 8}\ncases:\n  - id: cheap\n    prompt: hello\n"
                     "    checks:\n      - max_cost_usd: 0.000001\n")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-test")
    server = start_fake(ttft_s=0.005, token_gap_s=0.001)
    try:
        code, out, err = invoke("run", str(suite), "--base-url", server.base_url, "--json")
        assert code == 0, err
        run_id = json.loads(out)["run_id"]
        rows = Store(env).requests_frame(run_id).to_dicts()
        waived = [r for r in rows if r["model"] == "acme/waived"]
        assert waived and all(r["cost_usd"] == 0 and r["list_cost_usd"] > Decimal("0.000001") for r in waived)
        ran = {(r["model"], r["request_idx"]): r["passed"] for r in rows}
        assert {m: {p for (mm, _), p in ran.items() if mm == m} for m in ("acme/waived", "acme/alpha")} == {
            "acme/waived": {True}, "acme/alpha": {False}}  # alpha is billed above the limit
        code, out, err = invoke("check", str(suite), "--run", run_id, "--base-url", server.base_url, "--json")
        assert code == 0, err
    finally:
        server.shutdown()
    rescored = {(r["model"], r["request_idx"]): r["passed"] for r in Store(env).requests_frame(run_id).to_dicts()}
    assert rescored == ran

"""``orbench decide`` end to end on real sandbox runs: verdicts from intervals, ranking, exit codes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.results import decide
from bench.results.decide_render import decision_markdown, recommendation_sentence
from bench.sandbox import start_sandbox
from bench.store.store import Store
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "data" / "suites"


def _run(base_url: str, db: Path, suite: Path, *extra: str) -> str:
    code, out, err = invoke("run", str(suite), "--base-url", base_url, "--db", str(db), "--json", *extra)
    assert code == 0, err
    return str(json.loads(out)["run_id"])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A database with the bundled arithmetic and classification suites run on the sandbox."""
    db = tmp_path_factory.mktemp("decide") / "orbench.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("OPENROUTER_", "ORBENCH_")):
                mp.delenv(k)
        with start_sandbox(time_scale=0.01) as sb:
            a = _run(sb.base_url, db, SUITES / "arithmetic.yaml")
            b = _run(sb.base_url, db, SUITES / "classification.yaml")
        yield db, a, b


def _decide(db: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = invoke("decide", *args, "--db", str(db), "--json")
    return code, json.loads(out), err


def _by_model(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["model"]: r for r in doc["ranking"]}


def test_decide_json_has_the_issue_shape_and_pools_runs(two_runs: tuple[Path, str, str]) -> None:
    db, a, b = two_runs
    code, doc, _ = _decide(db, a, b, "--min", "pass_rate=0.5", "--max", "cost_per_request_usd=0.001")
    assert code == 0
    assert {"recommended", "runner_up", "beyond_noise", "ranking"} <= doc.keys()
    assert isinstance(doc["beyond_noise"], bool)
    assert doc["recommended"]["model"] == doc["ranking"][0]["model"]
    assert doc["runner_up"]["model"] == doc["ranking"][1]["model"]
    for r in doc["ranking"]:
        assert {"model", "provider", "verdict", "constraints", "cost_per_request_usd"} <= r.keys()
        assert r["verdict"] in ("meets", "uncertain", "fails")
        assert set(r["constraints"]) == {"pass_rate", "cost_per_request_usd"}
        for c in r["constraints"].values():
            assert {"value", "ci_lo", "ci_hi", "verdict"} <= c.keys()
            assert c["ci_lo"] <= c["value"] <= c["ci_hi"]
    rows = _by_model(doc)
    # 5 models over both suites; gpt-4o-mini ran in both: 4 cases x 3 repeats + 3 cases x 2 repeats
    assert len(rows) == 5 and rows["openai/gpt-4o-mini"]["n"] == 12 + 6
    meets = [r for r in doc["ranking"] if r["verdict"] == "meets"]
    costs = [float(r["cost_per_request_usd"]) for r in meets]
    assert costs == sorted(costs)  # cheapest first among those that meet


def test_decide_uses_the_summary_numbers(two_runs: tuple[Path, str, str]) -> None:
    """A model in one run only gets exactly the cost and pass rate `orbench show` prints."""
    db, a, b = two_runs
    _, doc, _ = _decide(db, a, b)
    code, out, _ = invoke("show", a, "--db", str(db), "--json")
    shown = {g["model"]: g for g in json.loads(out)}
    qwen = _by_model(doc)["qwen/qwen3-32b"]
    assert qwen["cost_per_request_usd"] == shown["qwen/qwen3-32b"]["cost_per_request_usd"]
    assert qwen["cost_per_correct_usd"] == shown["qwen/qwen3-32b"]["cost_per_correct_usd"]
    assert qwen["pass_rate"] == shown["qwen/qwen3-32b"]["pass_rate"]


def test_decide_exits_3_when_the_constraints_leave_nothing(two_runs: tuple[Path, str, str]) -> None:
    db, a, b = two_runs
    code, doc, err = _decide(db, a, b, "--max", "cost_per_request_usd=0.0000001")
    assert code == 3 and "nothing meets" in err
    assert doc["recommended"] is None and doc["runner_up"] is None and doc["beyond_noise"] is False
    assert {r["verdict"] for r in doc["ranking"]} == {"fails"}
    code, out, _ = invoke("decide", a, b, "--db", str(db), "--max", "cost_per_request_usd=0.0000001")
    assert code == 3 and "Nothing meets every constraint" in out


def test_few_samples_make_a_candidate_uncertain(two_runs: tuple[Path, str, str]) -> None:
    """All 6 classification answers of claude pass (100 %), yet 6 cannot show pass_rate >= 0.7."""
    db, _, b = two_runs
    code, doc, _ = _decide(db, b, "--min", "pass_rate=0.7", "--max", "ttft_p95_ms=100000")
    assert code == 3
    claude = _by_model(doc)["anthropic/claude-3.5-haiku"]
    assert claude["verdict"] == "uncertain"
    pr = claude["constraints"]["pass_rate"]
    assert pr["value"] == 1.0 and pr["ci_lo"] < 0.7 < pr["ci_hi"] and pr["verdict"] == "uncertain"
    assert pr["more_requests_needed"] == 3  # Wilson at p = 1: n/(n + 1.96^2) >= 0.7 from n = 9
    p95 = claude["constraints"]["ttft_p95_ms"]
    assert p95["ci_lo"] is None and p95["verdict"] == "uncertain"  # p95 needs 72 samples for an interval
    assert p95["more_requests_needed"] == 72 - 6 and "too few samples" in p95["reason"]


def test_more_requests_needed_shrinks_as_n_grows(tmp_path: Path, cli_db: Path) -> None:
    """Same model, more repeats: fewer requests still needed, then none (the verdict settles)."""
    needed = {}
    with start_sandbox(time_scale=0.01) as sb:
        for repeats in (1, 3, 6):
            db = tmp_path / f"r{repeats}.duckdb"
            run = _run(sb.base_url, db, SUITES / "classification.yaml", "--model", "openai/gpt-4o-mini",
                       "--repeat", str(repeats))
            _, doc, _ = _decide(db, run, "--min", "pass_rate=0.8")
            c = doc["ranking"][0]["constraints"]["pass_rate"]
            assert c["value"] == 1.0 and c["samples"] == 3 * repeats
            needed[repeats] = (c["more_requests_needed"], c["verdict"])
    assert needed[1] == (13, "uncertain") and needed[3] == (7, "uncertain")  # n/(n+3.84) >= 0.8 at n = 16
    assert needed[6] == (0, "meets")


def test_gap_beyond_the_noise_and_the_sentence(tmp_path: Path, cli_db: Path) -> None:
    """gpt-4o-mini costs about a fifth of claude-3.5-haiku per request: a gap no bootstrap can hide."""
    with start_sandbox(time_scale=0.01) as sb:
        run = _run(sb.base_url, cli_db, SUITES / "classification.yaml", "--model", "openai/gpt-4o-mini",
                   "--model", "anthropic/claude-3.5-haiku")
    code, doc, _ = _decide(cli_db, run, "--min", "pass_rate=0.5")
    assert code == 0 and doc["beyond_noise"] is True
    assert doc["recommended"]["model"] == "openai/gpt-4o-mini"
    assert doc["runner_up"]["model"] == "anthropic/claude-3.5-haiku"
    assert doc["gap"]["ci_hi"] < 0  # the recommendation is cheaper, and the whole interval says so
    code, out, _ = invoke("decide", run, "--min", "pass_rate=0.5", "--db", str(cli_db))
    sentence = out.strip().splitlines()[-1]
    assert sentence.startswith("Recommended: openai/gpt-4o-mini [default]")
    assert "Runner-up: anthropic/claude-3.5-haiku [default]" in sentence
    assert "per 1,000 requests" in sentence and "per correct answer" in sentence
    assert "beyond the noise" in sentence and "[SIMULATED" in out


def test_the_python_api_is_the_cli(two_runs: tuple[Path, str, str]) -> None:
    """The dashboard's call gives the very document the CLI prints, and Markdown of it."""
    db, a, b = two_runs
    constraints = decide.parse_constraints(["pass_rate=0.5"], ["e2e_p50_ms=900"])
    decision = decide.decide_runs(Store(str(db)), [a, b], constraints, "latency")
    _, doc, _ = _decide(db, a, b, "--min", "pass_rate=0.5", "--max", "e2e_p50_ms=900", "--objective", "latency")
    assert decision.to_dict() == doc
    assert "e2e_p50_ms" in doc["ranking"][0]
    md = decision_markdown(decision, simulated=True)
    assert md.count("\n| ") == 1 + len(decision.ranking)  # header + one row per candidate
    assert recommendation_sentence(decision) in md


def test_an_unmeasured_metric_fails(tmp_path: Path, cli_db: Path) -> None:
    """No quality checks, no pass rate: --min pass_rate cannot be met (as the CI gates say)."""
    suite = tmp_path / "plain.yaml"
    suite.write_text("name: plain\nmodels: [openai/gpt-4o-mini]\nrepeats: 2\ncases:\n  - id: a\n    prompt: hi\n")
    with start_sandbox(time_scale=0.01) as sb:
        run = _run(sb.base_url, cli_db, suite)
    code, doc, _ = _decide(cli_db, run, "--min", "pass_rate=0.5")
    c = doc["ranking"][0]["constraints"]["pass_rate"]
    assert code == 3 and c["verdict"] == "fails" and "no quality checks" in c["reason"]


@pytest.mark.parametrize(("args", "needle"), [
    (["--max", "ttft_p95_ms"], "--max 'ttft_p95_ms': expected METRIC=VALUE"),
    (["--min", "speed=3"], "--min 'speed=3': unknown metric 'speed'"),
    (["--max", "ttft_p95_ms=fast"], "--max 'ttft_p95_ms=fast': 'fast' is not a number"),
    (["--min", "pass_rate=0.5", "--max", "pass_rate=0.9"], "pass_rate is already limited by --min"),
])
def test_bad_constraints_are_one_line_naming_the_flag(cli_db: Path, args: list[str], needle: str) -> None:
    code, out, err = invoke("decide", "latest", *args)
    assert code == 1 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not cli_db.exists()  # refused before any database is opened


def test_decide_by_origin_puts_two_regions_side_by_side(tmp_path: Path) -> None:
    """The same suite measured from two origins: pooled by default, one candidate per origin with
    --by-origin (each its own n and an "origin" field), and the text names the origin."""
    db = tmp_path / "orbench.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("OPENROUTER_", "ORBENCH_")):
                mp.delenv(k)
        with start_sandbox(time_scale=0.01) as sb:
            eu = _run(sb.base_url, db, SUITES / "arithmetic.yaml", "--origin", "ci-eu-west")
            us = _run(sb.base_url, db, SUITES / "arithmetic.yaml", "--origin", "ci-us-east")
    _, pooled, _ = _decide(db, eu, us)
    _, split, _ = _decide(db, eu, us, "--by-origin")
    assert all("origin" not in r for r in pooled["ranking"])
    assert len(split["ranking"]) == 2 * len(pooled["ranking"])
    for r in pooled["ranking"]:
        sides = [s for s in split["ranking"] if (s["model"], s["provider"]) == (r["model"], r["provider"])]
        assert sorted(s["origin"] for s in sides) == ["ci-eu-west", "ci-us-east"]
        assert sum(s["n"] for s in sides) == r["n"] and all(s["endpoint"] == r["endpoint"] for s in sides)
    assert split["recommended"]["origin"] in ("ci-eu-west", "ci-us-east")
    code, out, _ = invoke("decide", eu, us, "--by-origin", "--db", str(db))
    assert code == 0 and " @ ci-us-east" in out and " @ ci-eu-west" in out

"""``orbench verify`` end to end on the sandbox: the detection matrix, the correction, JSON, JUnit, exit codes."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from bench.results import conformance
from bench.store.store import Store
from tests.conftest import VERIFY_PROVIDERS as PROVIDERS
from tests.conftest import invoke

MODEL = "meta-llama/llama-3.3-70b-instruct"
MISBEHAVING = {"sim-quantized": "accuracy", "sim-toolbreak": "tool_calls", "sim-tokenpad": "usage",
               "sim-ignoremax": "parameters"}


def test_verify_detection_matrix(verified: dict[str, Any]) -> None:
    """Each misbehaving provider deviates on its own dimension and only there; groq conforms."""
    got = {p["provider"]: {d: v["verdict"] for d, v in p["dimensions"].items()} for p in verified["json"]["providers"]}
    for provider, dim in MISBEHAVING.items():
        assert got[provider][dim] == "deviates", (provider, got[provider])
        assert [d for d, v in got[provider].items() if v == "deviates"] == [dim]
    assert "deviates" not in got["groq"].values()
    assert set(got["sim-faithful"].values()) == {"n/a"}


def test_verify_json_shape_and_exit_code(verified: dict[str, Any]) -> None:
    doc = verified["json"]
    assert verified["code"] == 3
    assert set(doc) == {"model", "reference", "providers"}
    assert doc["model"] == MODEL and doc["reference"] == "sim-faithful"
    for p in doc["providers"]:
        assert set(p) == {"provider", "verdict", "dimensions"}
        assert list(p["dimensions"]) == list(conformance.DIMENSIONS)
        for v in p["dimensions"].values():
            assert set(v) == {"verdict", "value", "reference_value", "ci_lo", "ci_hi", "more_requests_needed",
                              "detail"}
            assert v["verdict"] in conformance.VERDICTS
    verdicts = {p["provider"]: p["verdict"] for p in doc["providers"]}
    assert verdicts == {"sim-faithful": "conforms", "groq": "conforms", **dict.fromkeys(MISBEHAVING, "deviates")}
    quantized = next(p for p in doc["providers"] if p["provider"] == "sim-quantized")["dimensions"]["accuracy"]
    assert quantized["value"] < quantized["reference_value"] - 0.08
    assert "Bonferroni" in quantized["detail"]


def test_verify_junit_one_testcase_per_provider_and_dimension(verified: dict[str, Any]) -> None:
    root = ET.fromstring(verified["junit"])
    cases = root.findall(".//testcase")
    assert len(cases) == 6 * len(conformance.DIMENSIONS)
    failed = {(c.get("classname", "").rsplit(".", 1)[-1], c.get("name"))
              for c in cases if c.find("failure") is not None}
    assert failed == {(p, d) for p, d in MISBEHAVING.items()}


def test_verify_is_an_ordinary_run(verified: dict[str, Any]) -> None:
    """Suite verify:MODEL, every provider pinned without fallbacks, the probes' hash stored."""
    store = Store(verified["db"])
    run = store.get_run(verified["run_id"])
    assert run is not None and run.suite_hash and run.status == "finished"
    assert run.settings["verify"]["conformance_hash"]
    plan = run.plan or []
    assert {json.dumps(p["target"]["provider"], sort_keys=True) for p in plan} == {
        json.dumps({"allow_fallbacks": False, "only": [name]}, sort_keys=True)
        for name in [*PROVIDERS.split(","), "sim-faithful"]}
    assert any(p["body"].get("stream") is False for p in plan)  # the non-streamed half of the pairs


def test_verify_correction_spans_every_test(verified: dict[str, Any]) -> None:
    """Every interval is taken at 1 - 2 * 0.05 / K, K the tests of all providers and dimensions."""
    store = Store(verified["db"])
    result = conformance.verify_run(store, verified["run_id"])
    assert result.tests > 5 * 6  # several tests per dimension (parameters one per parameter)
    assert result.level == pytest.approx(1 - 2 * conformance.FAMILY_ERROR / result.tests)
    assert f"Bonferroni over {result.tests} tests" in result.providers[1].dimensions["accuracy"].detail


def test_verify_served_by_another_provider_is_left_out(verified: dict[str, Any]) -> None:
    """An answer served by a provider other than the pinned one counts in nobody's statistics."""
    store = Store(verified["db"])
    run_id = verified["run_id"]
    rows = conformance.verify_rows(store, run_id)
    moved = rows.with_columns(
        pl.when((pl.col("label") == "groq") & pl.col("case_id").str.starts_with("accuracy:"))
        .then(pl.lit("Quantized (simulated)")).otherwise(pl.col("provider")).alias("provider"))
    result = conformance.evaluate(moved, conformance.verify_meta(store, run_id))
    groq = next(p for p in result.providers if p.provider == "groq")
    assert groq.served_by_other == 200
    assert groq.dimensions["accuracy"].verdict == "n/a"


def test_verify_dry_run_prints_worst_case_and_sends_nothing(cli_db: Path) -> None:
    code, out, err = invoke("verify", MODEL, "--sandbox", "--dry-run", "--providers", "groq,sim-faithful")
    assert code == 0 and out == ""
    assert "groq: 380 requests, worst case $" in err
    assert "sim-faithful: 380 requests, worst case $" in err
    assert "agree most" in err  # no author's provider for meta-llama: the plan says how it will choose
    assert "dry run: nothing was sent" in err
    assert not cli_db.exists() or Store(cli_db).list_runs().is_empty()


def test_verify_budget_is_a_hard_stop(cli_db: Path) -> None:
    code, _, err = invoke("verify", MODEL, "--sandbox", "--budget", "0.001", "--providers", "groq,sim-faithful")
    assert code == 1 and "exceeds --budget" in err
    assert not cli_db.exists() or Store(cli_db).list_runs().is_empty()


@pytest.mark.parametrize(("args", "message"), [
    (("--providers", "nope,groq"), "--providers: nope not among"),
    (("--reference", "nope"), "--reference nope: not a provider"),
    (("--endpoint", "mine"), "--endpoint 'mine': expected NAME=URL"),
    (("--requests", "0"), "--requests must be at least 1"),
])
def test_verify_bad_flags_are_one_line(cli_db: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = invoke("verify", MODEL, "--sandbox", "--dry-run", *args)
    assert code == 1 and message in err


def test_verify_requests_scales_the_plan(cli_db: Path) -> None:
    code, _, err = invoke("verify", MODEL, "--sandbox", "--dry-run", "--providers", "groq,sim-faithful",
                          "--requests", "60")
    found = re.search(r"groq: (\d+) requests", err)
    assert code == 0 and found and 55 <= int(found.group(1)) <= 70  # every dimension keeps a few probes


def test_verify_author_provider_is_the_reference(cli_db: Path) -> None:
    code, _, err = invoke("verify", "openai/gpt-4o-mini", "--sandbox", "--dry-run")
    assert code == 0 and "reference: openai: the model author's own provider" in err


def test_verify_suite_and_endpoint_join_the_plan(cli_db: Path, tmp_path: Path) -> None:
    """--suite FILE adds its cases as accuracy probes; --endpoint NAME=URL is verified like a provider."""
    suite = tmp_path / "mine.yaml"
    suite.write_text("name: mine\nmodels: [x/y]\ncases:\n"
                     "  - {id: a, prompt: 'What is 1 plus 1?', checks: [{numeric: 2}]}\n"
                     "  - {id: b, prompt: 'What is 2 plus 2?', checks: [{numeric: 4}]}\n")
    code, _, err = invoke("verify", MODEL, "--sandbox", "--dry-run", "--providers", "groq", "--suite", str(suite),
                          "--endpoint", "mine=http://127.0.0.1:9/v1", "--reference", "groq")
    assert code == 0, err
    assert "accuracy 202" in err
    assert "mine: 382 requests, worst case $0.000000" in err  # your own server costs nothing
    assert "reference: groq: given with --reference" in err


def test_verify_suite_is_rebuilt_for_a_resume(verified: dict[str, Any]) -> None:
    """``orbench run --resume`` of a verify runs its stored plan with the same suite (same hash, same probes)."""
    from bench.run import verify

    run = Store(verified["db"]).get_run(verified["run_id"])
    assert run is not None
    suite = verify.rebuild_suite(run.settings["verify"])
    assert suite.content_hash == run.suite_hash
    assert {p["case_id"] for p in run.plan or []} == {c.id for c in suite.cases}
    code, _, err = invoke("run", "--resume", verified["run_id"], "--base-url", verified["sandbox"].base_url,
                          "--db", str(verified["db"]))
    assert code == 0, err
    assert "changed since the run started" not in err

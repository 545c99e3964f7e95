"""The Decide page and shareable views under AppTest, on real sandbox runs made through the CLI.

Two bundled suites with quality checks (arithmetic, classification) run on a real sandbox on
127.0.0.1 into a DuckDB file; the page must agree with ``orbench decide --json`` on the same
database, say when nothing fits, and take its filters and constraints from the URL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from test_dashboard import chart, charts, texts

from bench.sandbox import start_sandbox
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
SUITES = ROOT / "data" / "suites"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    with start_sandbox(seed=3, time_scale=0.01) as sb:
        yield sb


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, sandbox: Any) -> tuple[Path, list[str]]:
    """arithmetic.yaml and classification.yaml on the sandbox, through ``orbench run``."""
    db = tmp_path_factory.mktemp("decide-page") / "orbench.duckdb"
    ids = []
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("OPENROUTER_", "ORBENCH_")):
                mp.delenv(k)
        for suite in ("arithmetic", "classification"):
            code, out, err = invoke("run", str(SUITES / f"{suite}.yaml"), "--base-url", sandbox.base_url,
                                    "--db", str(db), "--json")
            assert code == 0, err
            ids.append(str(json.loads(out)["run_id"]))
    return db, ids


@pytest.fixture(autouse=True)
def app_env(monkeypatch: pytest.MonkeyPatch, sandbox: Any, two_runs: tuple[Path, list[str]]) -> Iterator[None]:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("OPENROUTER_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("ORBENCH_DB", str(two_runs[0]))
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def open_app(params: dict[str, Any] | None = None, page: str | None = None) -> AppTest:
    """The app as a browser opening ``/?params`` (Decide is the default page)."""
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    if page:
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Simulated" in w for w in texts(at, "warning")), "no simulated banner"
    return at


def cli_decide(db: Path, runs: list[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = invoke("decide", *runs, "--db", str(db), "--json", *args)
    return code, json.loads(out)


def url(at: AppTest, param: str) -> list[str]:
    """A query parameter as the list the browser's URL would repeat (AppTest gives one value as a str)."""
    v = at.query_params[param]
    return [v] if isinstance(v, str) else list(v)


def decide_table(at: AppTest) -> Any:
    for df in at.dataframe:
        if "verdict" in df.value.columns:
            return df.value
    raise AssertionError("no ranking table on the page")


def test_decide_is_the_first_page() -> None:
    at = open_app()
    assert at.title[0].value == "Decide"
    assert decide_table(at).shape[0] >= 2


def test_decide_url_prefills_constraints_and_matches_the_cli(two_runs: tuple[Path, list[str]]) -> None:
    """?run=A&run=B&min_pass_rate=0.5&max_cost_per_request_usd=...&objective=cost: same pick as the CLI."""
    db, runs = two_runs
    params = {"run": runs, "min_pass_rate": "0.5", "max_cost_per_request_usd": "0.001", "objective": "cost"}
    at = open_app(params)
    assert at.number_input(key="decide-min_pass_rate").value == 0.5
    assert at.number_input(key="decide-max_cost_per_request_usd").value == 0.001
    assert at.multiselect(key="decide-runs").value == runs
    code, doc = cli_decide(db, runs, "--min", "pass_rate=0.5", "--max", "cost_per_request_usd=0.001")
    assert code == 0 and doc["recommended"]
    table = decide_table(at)
    assert list(table["candidate"]) == [f"{r['model']} [{r['provider']}]" for r in doc["ranking"]]
    assert [v.split(" ")[-1] for v in table["verdict"]] == [r["verdict"] for r in doc["ranking"]]
    rec = doc["recommended"]
    sentence = texts(at, "success")[0]
    assert sentence.startswith(f"Recommended: {rec['model']} [{rec['provider']}]")
    assert "per 1,000 requests" in sentence
    md = at.code[0].value
    assert md.startswith("### orbench decide: cost (simulated)") and sentence in md


def test_decide_says_when_constraints_leave_nothing(two_runs: tuple[Path, list[str]]) -> None:
    db, runs = two_runs
    at = open_app({"run": runs, "max_cost_per_request_usd": "0.0000000001"})
    assert cli_decide(db, runs, "--max", "cost_per_request_usd=0.0000000001")[0] == 3
    assert not at.success
    assert texts(at, "error")[0].startswith("Nothing meets every constraint")
    assert {v.split(" ")[-1] for v in decide_table(at)["verdict"]} == {"fails"}


def test_decide_uncertain_rows_say_how_many_more_requests(two_runs: tuple[Path, list[str]]) -> None:
    """A tight pass-rate floor on a few dozen answers straddles the interval: uncertain, with a count."""
    _, runs = two_runs
    at = open_app({"run": runs[:1], "min_pass_rate": "0.9"})
    table = decide_table(at)
    uncertain = table[table["verdict"].str.endswith("uncertain")]
    assert len(uncertain), table
    assert all("more request" in why for why in uncertain["why"])


def test_decide_frontier_draws_the_limit_lines(two_runs: tuple[Path, list[str]]) -> None:
    _, runs = two_runs
    at = open_app({"run": runs, "max_ttft_p95_ms": "1500", "max_cost_per_request_usd": "0.001"})
    frames = chart(at, "Cost vs latency by verdict")
    rules = [f for f in frames if "limit" in f.columns]
    assert {r["limit"][0] for r in rules} == {"ttft_p95_ms limit", "cost limit"}
    x_rule = next(r for r in rules if "p50_ms" in r.columns)
    assert x_rule["p50_ms"][0] == 1500.0
    dots = max((f for f in frames if "verdict" in f.columns), key=lambda f: f.height)  # not the frontier line
    assert dots.height == decide_table(at).shape[0]


def test_decide_edit_writes_the_url_and_the_objective_reranks(two_runs: tuple[Path, list[str]]) -> None:
    _, runs = two_runs
    at = open_app({"run": runs})
    at.number_input(key="decide-max_error_rate").set_value(0.2).run()
    assert url(at, "max_error_rate") == ["0.2"]
    at.radio(key="decide-objective").set_value("quality").run()
    assert url(at, "objective") == ["quality"]
    assert "highest pass rate" in texts(at, "success")[0]


def test_decide_bad_url_values_are_named_and_ignored(two_runs: tuple[Path, list[str]]) -> None:
    _, runs = two_runs
    at = open_app({"run": runs, "min_pass_rate": "lots", "max_bogus_ms": "3"})
    warnings = texts(at, "warning")
    assert any("min_pass_rate='lots' is not a number" in w for w in warnings), warnings
    assert any("max_bogus_ms: unknown metric 'bogus_ms'" in w for w in warnings), warnings
    assert at.number_input(key="decide-min_pass_rate").value is None
    assert "min_pass_rate" not in at.query_params and "max_bogus_ms" not in at.query_params


def test_decide_more_constraints_from_the_url(two_runs: tuple[Path, list[str]]) -> None:
    """A metric outside the common five (decode_tps_p50) comes back from the URL as an added limit."""
    _, runs = two_runs
    at = open_app({"run": runs, "min_decode_tps_p50": "1"})
    assert at.multiselect(key="decide-more").value == ["min_decode_tps_p50"]
    assert at.number_input(key="decide-min_decode_tps_p50").value == 1.0
    assert "decode_tps_p50>=1" in decide_table(at).columns


def test_filters_carry_across_pages_and_into_the_url(two_runs: tuple[Path, list[str]]) -> None:
    _, runs = two_runs
    at = open_app({"run": runs[1:]}, page="results")
    assert at.multiselect(key="results-runs").value == runs[1:]
    model = at.multiselect(key="results-models").options[0]
    at.multiselect(key="results-models").select(model).run()
    assert url(at, "model") == [model]
    for page, key in (("decide", "decide"), ("quality", "q"), ("export", "export")):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        assert at.multiselect(key=f"{key}-runs").value == runs[1:], page
        assert url(at, "run") == runs[1:] and url(at, "model") == [model], page
    at.switch_page("app_pages/decide.py").run()
    assert at.multiselect(key="decide-models").value == [model]
    candidates = list(decide_table(at)["candidate"])
    assert candidates and all(c.startswith(f"{model} [") for c in candidates), candidates
    assert charts(at)


def test_decide_runs_from_two_origins_side_by_side_match_the_cli(
        two_runs: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs from two origins (a team store's cache): the page offers pooled or side by side (URL by_origin);
    side by side it ranks model x provider x origin exactly as ``orbench decide --by-origin``."""
    import shutil

    import duckdb

    db, runs = two_runs
    copy = tmp_path / "orbench.duckdb"
    shutil.copy(db, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE runs SET origin = CASE WHEN run_id = $a THEN 'ci-eu-west' ELSE 'ci-us-east' END",
                    {"a": runs[0]})
    monkeypatch.setenv("ORBENCH_DB", str(copy))
    at = open_app({"run": runs})
    assert at.radio(key="decide-by-origin").value == "pooled"
    pooled = list(decide_table(at)["candidate"])
    at = open_app({"run": runs, "by_origin": "side by side"})
    table = decide_table(at)
    code, doc = cli_decide(copy, runs, "--by-origin")
    assert list(table["candidate"]) == [f"{r['model']} [{r['provider']}] @ {r['origin']}" for r in doc["ranking"]]
    assert len(table) > len(pooled) and {c.rsplit(" @ ", 1)[1] for c in table["candidate"]} == {
        "ci-eu-west", "ci-us-east"}

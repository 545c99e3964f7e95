"""The Providers page (verify) and Decide's verify filter under AppTest, on a real sandbox verify."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from test_dashboard import texts

from bench.sandbox import start_sandbox
from bench.store.store import Store
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
MODEL = "meta-llama/llama-3.3-70b-instruct"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    with start_sandbox(seed=5, time_scale=0.01) as sb:
        yield sb


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory, sandbox: Any) -> tuple[Path, str]:
    """A verify of three providers against sim-faithful, and a plain run of two of them (for Decide)."""
    tmp = tmp_path_factory.mktemp("providers-page")
    db = tmp / "orbench.duckdb"
    suite = tmp / "two.yaml"
    suite.write_text(f"name: two\nmodels: [{MODEL}]\nproviders:\n  quant: {{only: [sim-quantized]}}\n"
                     "  groq: {only: [groq]}\ncases:\n  - id: q\n    prompt: What is 2 plus 2?\n"
                     "    max_tokens: 8\n    checks: [{numeric: 4}]\n")
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("OPENROUTER_", "ORBENCH_")):
                mp.delenv(k)
        code, _, err = invoke("run", str(suite), "--base-url", sandbox.base_url, "--db", str(db), "--repeat", "3")
        assert code == 0, err
        code, out, err = invoke("verify", MODEL, "--base-url", sandbox.base_url, "--db", str(db), "--providers",
                                "sim-quantized,sim-ignoremax,groq", "--reference", "sim-faithful", "--json")
        assert code == 3, err
    runs = Store(db).list_runs()
    return db, str(runs.filter(runs["suite_name"] == f"verify:{MODEL}")["run_id"][0])


@pytest.fixture(autouse=True)
def app_env(monkeypatch: pytest.MonkeyPatch, sandbox: Any, verified: tuple[Path, str]) -> Iterator[None]:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("OPENROUTER_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("ORBENCH_DB", str(verified[0]))
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def open_page(params: dict[str, Any] | None = None, page: str = "providers") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def matrix(at: AppTest) -> Any:
    for df in at.dataframe:
        if "accuracy" in df.value.columns:
            return df.value
    raise AssertionError("no provider x dimension matrix on the page")


def test_providers_page_shows_the_matrix_and_names_the_deviating(verified: tuple[Path, str]) -> None:
    at = open_page()
    table = matrix(at)
    rows = {r["provider"]: r for r in table.to_dict("records")}
    assert set(rows) == {"sim-faithful", "sim-quantized", "sim-ignoremax", "groq"}
    assert rows["sim-quantized"]["accuracy"].startswith("deviates")
    assert rows["sim-ignoremax"]["parameters"].startswith("deviates")
    assert rows["groq"]["verdict"] == "conforms"
    assert "sim-ignoremax, sim-quantized" in texts(at, "error")[0]
    assert at.query_params["verify"] == [verified[1]] or at.query_params["verify"] == verified[1]


def test_providers_drill_down_from_the_url_shows_the_failing_answers(verified: tuple[Path, str]) -> None:
    """?vprovider=sim-quantized&dimension=accuracy: wrong answers beside the reference's right ones."""
    at = open_page({"verify": verified[1], "vprovider": "sim-quantized", "dimension": "accuracy"})
    assert at.selectbox(key="providers-provider").value == "sim-quantized"
    assert at.selectbox(key="providers-dimension").value == "accuracy"
    codes = [c.value for c in at.code]
    assert len(codes) >= 4 and len(codes) % 2 == 0  # each failing answer beside the reference's
    assert any("failing answer" in m.value for m in at.markdown)


def test_providers_drill_down_shows_an_ignored_max_tokens(verified: tuple[Path, str]) -> None:
    at = open_page({"verify": verified[1], "vprovider": "sim-ignoremax", "dimension": "parameters"})
    captions = [c.value for c in at.caption]
    assert any("param-max-tokens" in c and "finish stop" in c for c in captions), captions


def test_decide_leaves_out_providers_that_failed_the_last_verify(verified: tuple[Path, str]) -> None:
    db, verify_id = verified
    plain = [r for r in Store(db).list_runs()["run_id"].to_list() if r != verify_id]
    kept = open_page({"run": plain}, page="decide")
    left = open_page({"run": plain, "skip_failed": "leave out"}, page="decide")

    def candidates(at: AppTest) -> list[str]:
        return [str(c) for df in at.dataframe if "candidate" in df.value.columns for c in df.value["candidate"]]

    assert any("[quant]" in c for c in candidates(kept)) or any("sim-quantized" in c for c in candidates(kept))
    assert not any("sim-quantized" in c or "[quant]" in c for c in candidates(left))
    assert any("[groq]" in c for c in candidates(left))

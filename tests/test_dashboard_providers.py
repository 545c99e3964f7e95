"""The Providers page (verify) and Decide's verify filter under AppTest, on a real sandbox verify."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from test_dashboard import texts

from tests.conftest import VERIFY_PROVIDERS

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture(autouse=True)
def app_env(monkeypatch: pytest.MonkeyPatch, verified: dict[str, Any]) -> Iterator[None]:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("OPENROUTER_BASE_URL", verified["sandbox"].base_url)
    monkeypatch.setenv("ORBENCH_DB", str(verified["db"]))
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


def test_providers_page_shows_the_matrix_and_names_the_deviating(verified: dict[str, Any]) -> None:
    at = open_page()
    table = matrix(at)
    rows = {r["provider"]: r for r in table.to_dict("records")}
    assert set(rows) == {"sim-faithful", "groq", *VERIFY_PROVIDERS.split(",")}
    assert rows["sim-quantized"]["accuracy"].startswith("deviates")
    assert rows["sim-ignoremax"]["parameters"].startswith("deviates")
    assert rows["sim-faithful"]["verdict"] == "conforms"
    assert "4 of 5 providers deviate" in texts(at, "error")[0]
    assert at.query_params["verify"] in ([verified["run_id"]], verified["run_id"])


def test_providers_drill_down_from_the_url_shows_the_failing_answers(verified: dict[str, Any]) -> None:
    """?vprovider=sim-quantized&dimension=accuracy: wrong answers beside the reference's right ones."""
    at = open_page({"verify": verified["run_id"], "vprovider": "sim-quantized", "dimension": "accuracy"})
    assert at.selectbox(key="providers-provider").value == "sim-quantized"
    assert at.selectbox(key="providers-dimension").value == "accuracy"
    codes = [c.value for c in at.code]
    assert len(codes) >= 4 and len(codes) % 2 == 0  # each failing answer beside the reference's
    assert any("failing answer" in m.value for m in at.markdown)


def test_providers_drill_down_shows_an_ignored_max_tokens(verified: dict[str, Any]) -> None:
    at = open_page({"verify": verified["run_id"], "vprovider": "sim-ignoremax", "dimension": "parameters"})
    captions = [c.value for c in at.caption]
    assert any("param-max-tokens" in c and "finish stop" in c for c in captions), captions


def test_decide_leaves_out_providers_that_failed_the_last_verify(verified: dict[str, Any]) -> None:
    plain = verified["plain"]
    kept = open_page({"run": plain}, page="decide")
    left = open_page({"run": plain, "skip_failed": "leave out"}, page="decide")

    def candidates(at: AppTest) -> list[str]:
        return [str(c) for df in at.dataframe if "candidate" in df.value.columns for c in df.value["candidate"]]

    assert any("[quant]" in c for c in candidates(kept)) or any("sim-quantized" in c for c in candidates(kept))
    assert not any("sim-quantized" in c or "[quant]" in c for c in candidates(left))
    assert any("[groq]" in c for c in candidates(left))

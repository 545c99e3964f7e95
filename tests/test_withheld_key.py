"""A 401 from a URL orbench sent no key to (OPENROUTER_API_KEY goes only to openrouter.ai) says so in one line.

A real HTTP server on 127.0.0.1 answers 401 to everything, as a gateway wanting a key does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._loopback import LoopbackServer
from tests.conftest import invoke

KEY = "sk-or-v1-withheld-test-key-0123456789"
BODY = b'{"error":{"code":401,"message":"No auth credentials found"}}'


@pytest.fixture
def gateway() -> Iterator[LoopbackServer]:
    with LoopbackServer([(0.0, BODY)], status="401 Unauthorized", content_type="application/json") as server:
        yield server


def suite(tmp_path: Path) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text("name: s\nmodels: [openai/gpt-4o-mini]\ncases:\n  - {id: a, prompt: hi}\n")
    return p


@pytest.mark.parametrize("command", ["run", "models", "credits"])
def test_a_401_where_no_key_was_sent_says_why_and_how_to_send_one(
        tmp_path: Path, cli_db: Path, gateway: LoopbackServer, monkeypatch: pytest.MonkeyPatch,
        command: str) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    args = [command, *([str(suite(tmp_path))] if command == "run" else []), "--base-url", gateway.base_url]
    code, out, err = invoke(*args)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"Error: {gateway.base_url} answered 401: orbench sent no key there, because OPENROUTER_API_KEY goes "
        "only to openrouter.ai; to send it, set ORBENCH_BASE_URL_KEY_ENV=OPENROUTER_API_KEY")
    assert KEY not in out + err


def test_a_401_where_the_key_was_sent_still_says_it_was_rejected(
        cli_db: Path, gateway: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    monkeypatch.setenv("ORBENCH_BASE_URL_KEY_ENV", "OPENROUTER_API_KEY")
    code, out, err = invoke("models", "--base-url", gateway.base_url)
    assert code == 1 and "the API key was rejected" in err and "sent no key" not in err
    assert KEY not in out + err


def test_the_dashboard_says_the_same_line(tmp_path: Path, gateway: LoopbackServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    for k in ("ORBENCH_BASE_URL_KEY_ENV", "OPENROUTER_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OPENROUTER_BASE_URL", gateway.base_url)
    monkeypatch.setenv("ORBENCH_DB", str(tmp_path / "orbench.duckdb"))
    st.cache_data.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py"), default_timeout=60)
    at.secrets["OPENROUTER_API_KEY"] = KEY
    at.switch_page("app_pages/credits.py").run()
    assert not at.exception
    errors = [str(e.value) for e in at.error]
    assert any(f"{gateway.base_url} answered 401: orbench sent no key there, because OPENROUTER_API_KEY goes only "
               "to openrouter.ai; to send it, set ORBENCH_BASE_URL_KEY_ENV=OPENROUTER_API_KEY" in e
               for e in errors), errors
    assert KEY not in repr(at.main) + repr(at.sidebar)

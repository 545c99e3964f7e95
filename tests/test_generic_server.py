"""A generic OpenAI-compatible server on its own: no OpenRouter key, catalog or API calls.

The server is tests/_openai_compat.py on 127.0.0.1 (vLLM-shaped: no prices, usage only on
request). OPENROUTER_BASE_URL points at a closed loopback port, so any attempt to reach
"OpenRouter" fails loudly instead of leaving the machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.config import Settings
from bench.run import engine
from bench.store.store import Store
from bench.suites.parse import load_suite
from tests._openai_compat import MODELS, OpenAICompatServer
from tests.conftest import invoke

DEAD_OPENROUTER = "http://127.0.0.1:9/api/v1"  # the discard port: nothing listens
OPENROUTER_ONLY = ("/key", "/auth/key", "/credits", "/generation", "/endpoints")


@pytest.fixture(autouse=True)
def no_openrouter(cli_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENROUTER_BASE_URL", DEAD_OPENROUTER)
    return cli_db


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as s:
        yield s


def endpoint_suite(tmp_path: Path, base_url: str, key_env: str | None = "VLLM_API_KEY") -> Path:
    key = f", api_key_env: {key_env}" if key_env else ""
    p = tmp_path / "vllm.yaml"
    p.write_text(f"name: vllm-only\nendpoints:\n  vllm: {{base_url: '{base_url}'{key}}}\n"
                 f"models: [vllm/{MODELS[0]}]\nrepeats: 2\ndefaults: {{max_tokens: 5}}\n"
                 "cases:\n  - {id: a, prompt: hello}\n  - {id: b, prompt: bye}\n")
    return p


def base_url_suite(tmp_path: Path) -> Path:
    p = tmp_path / "generic.yaml"
    p.write_text(f"name: generic\nmodels: [{MODELS[0]}, {MODELS[1]}]\ndefaults: {{max_tokens: 5}}\n"
                 "cases:\n  - {id: a, prompt: hello}\n")
    return p


def test_suite_endpoints_only_need_no_openrouter_key_or_catalog(
        tmp_path: Path, server: OpenAICompatServer, no_openrouter: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "vllm-secret-token-123")
    code, out, err = invoke("run", str(endpoint_suite(tmp_path, server.base_url)), "--json")
    assert code == 0, err
    assert f"endpoint vllm: key from $VLLM_API_KEY → {server.base_url}" in err
    assert "cannot reach" not in err and "OPENROUTER_API_KEY" not in err
    run_id = json.loads(out)["run_id"]
    store = Store(no_openrouter)
    assert store.get_run(run_id)["simulated"] is False
    rows = store.requests_frame(run_id).to_dicts()
    assert len(rows) == 5 and {r["outcome"] for r in rows} == {"ok"}  # 2 cases x 2 + 1 warm-up
    assert all(r["completion_tokens"] == 5 and r["token_source"] == "usage" for r in rows)
    assert server.authorizations() == {"Bearer vllm-secret-token-123"}
    assert set(server.paths()) == {"POST /v1/chat/completions"}  # no /models, no /key


def test_require_key_only_when_openrouter_itself_is_used(tmp_path: Path) -> None:
    """The default base URL (openrouter.ai) wants a key only for a run that sends it something."""
    suite = load_suite(endpoint_suite(tmp_path, "http://127.0.0.1:1/v1"))
    spec = engine.RunSpec(suite_path=suite.path)
    engine.require_key(Settings(), suite, engine.build_targets(suite, spec))  # no error
    spec = engine.RunSpec(suite_path=suite.path, models=["openai/gpt-4o-mini"])
    with pytest.raises(Exception, match="set OPENROUTER_API_KEY, or use --sandbox"):
        engine.require_key(Settings(), suite, engine.build_targets(suite, spec))


def test_base_url_to_a_generic_server_is_openai_compatible_mode(
        tmp_path: Path, server: OpenAICompatServer, no_openrouter: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-must-not-travel-0000")
    code, out, err = invoke("run", str(base_url_suite(tmp_path)), "--base-url", server.base_url,
                            "--json", "--no-warmup")
    assert code == 0, err
    assert "OpenAI-compatible server" in err and "openrouter: no key" in err
    run_id = json.loads(out)["run_id"]
    store = Store(no_openrouter)
    assert store.get_run(run_id)["simulated"] is False
    rows = store.requests_frame(run_id).to_dicts()
    assert sorted(r["model"] for r in rows) == sorted(MODELS)
    assert all(r["outcome"] == "ok" and r["completion_tokens"] == 5 for r in rows)
    chats = [r for r in server.requests if r["path"] == "/v1/chat/completions"]
    assert all(c["body"]["stream_options"] == {"include_usage": True} for c in chats)
    assert not any(p.endswith(OPENROUTER_ONLY) for p in server.paths()), server.paths()
    assert server.authorizations() == {""}  # the OpenRouter key stays home


def test_models_lists_a_generic_server(server: OpenAICompatServer) -> None:
    code, out, err = invoke("models", "--base-url", server.base_url, "--json")
    assert code == 0, err
    assert sorted(m["id"] for m in json.loads(out)) == sorted(MODELS)


def test_lookup_generation_on_a_generic_server_is_one_line(tmp_path: Path, server: OpenAICompatServer) -> None:
    code, _, err = invoke("run", str(base_url_suite(tmp_path)), "--base-url", server.base_url,
                          "--lookup-generation")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "--lookup-generation" in err
    assert not any(p.endswith("/chat/completions") for p in server.paths())


def test_key_for_a_generic_base_url_is_named_explicitly(
        tmp_path: Path, server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "vllm-named-key-456")
    monkeypatch.setenv("ORBENCH_BASE_URL_KEY_ENV", "VLLM_API_KEY")
    code, _, err = invoke("run", str(base_url_suite(tmp_path)), "--base-url", server.base_url, "--no-warmup")
    assert code == 0, err
    assert f"openrouter: key from $VLLM_API_KEY → {server.base_url}" in err
    assert server.authorizations() == {"Bearer vllm-named-key-456"}

"""TLS trust: a custom CA named in SSL_CERT_FILE / SSL_CERT_DIR / ORBENCH_CA_BUNDLE / --ca-bundle, and --insecure.

Real pieces only: a CA made with openssl for this module, an HTTPS front on 127.0.0.1
in front of the real sandbox, and orbench's own client and CLI.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.api.client import OpenRouterClient, RetryPolicy
from bench.api.http import build_http_client
from bench.config import Settings
from bench.errors import ConfigError, NetworkError
from bench.sandbox import start_sandbox
from tests._netkit import CA, TLSFront, hashed_dir, make_ca
from tests.conftest import invoke

BODY = {"model": "openai/gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def https_url(ca: CA) -> Iterator[str]:
    """``https://localhost:PORT/api/v1``: the sandbox behind TLS signed by ``ca``."""
    with start_sandbox(time_scale=0) as sb:
        front = TLSFront(ca, int(sb.base_url.split(":")[2].split("/")[0]))
        try:
            yield f"https://localhost:{front.port}/api/v1"
        finally:
            front.stop()


@pytest.fixture(autouse=True)
def _no_ca_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("SSL_CERT_FILE", "SSL_CERT_DIR", "ORBENCH_CA_BUNDLE"):
        monkeypatch.delenv(k, raising=False)


def models_and_chat(settings: Settings) -> tuple[int, str]:
    async def go() -> tuple[int, str]:
        client = OpenRouterClient(build_http_client(settings, 2), retry=RetryPolicy(max_attempts=1))
        async with client:
            models = await client.models()
            result = await client.chat(BODY)
            return len(models), result.content

    return asyncio.run(go())


def test_tls_ca_in_ssl_cert_file_serves_models_and_chat(ca: CA, https_url: str) -> None:
    settings = Settings.from_env({"OPENROUTER_BASE_URL": https_url, "SSL_CERT_FILE": str(ca.cert)})
    n, content = models_and_chat(settings)
    assert n > 10 and content


def test_tls_ca_in_ssl_cert_dir_works(ca: CA, https_url: str, tmp_path: Path) -> None:
    env = {"OPENROUTER_BASE_URL": https_url, "SSL_CERT_DIR": str(hashed_dir(ca, tmp_path / "certs"))}
    assert models_and_chat(Settings.from_env(env))[0] > 10


def test_tls_without_the_ca_fails_with_a_clear_message(https_url: str) -> None:
    """certifi does not know our CA: a NetworkError saying so, and how to fix it."""
    settings = Settings.from_env({"OPENROUTER_BASE_URL": https_url})
    with pytest.raises(NetworkError) as info:
        models_and_chat(settings)
    text = str(info.value)
    assert "certificate verify failed" in text and "--ca-bundle" in text and "\n" not in text


def test_tls_orbench_ca_bundle_wins_over_ssl_cert_file(ca: CA, https_url: str, tmp_path: Path) -> None:
    other = make_ca(tmp_path)  # a different, valid CA that did not sign the server
    env = {"OPENROUTER_BASE_URL": https_url, "SSL_CERT_FILE": str(other.cert), "ORBENCH_CA_BUNDLE": str(ca.cert)}
    settings = Settings.from_env(env)
    assert settings.ca_source == "ORBENCH_CA_BUNDLE"
    assert models_and_chat(settings)[0] > 10
    with pytest.raises(NetworkError, match="certificate verify failed"):
        models_and_chat(Settings.from_env({"OPENROUTER_BASE_URL": https_url, "SSL_CERT_FILE": str(other.cert)}))


def test_tls_a_missing_bundle_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    settings = Settings.from_env({"SSL_CERT_FILE": str(tmp_path / "nope.pem")})
    with pytest.raises(ConfigError, match=r"^SSL_CERT_FILE=.*nope\.pem: no such file"):
        build_http_client(settings)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="ORBENCH_CA_BUNDLE=.*not a usable CA bundle"):
        build_http_client(Settings.from_env({"ORBENCH_CA_BUNDLE": str(junk)}))


def test_tls_cli_ca_bundle_flag(ca: CA, https_url: str, cli_db: Path) -> None:
    code, out, err = invoke("models", "--base-url", https_url, "--ca-bundle", str(ca.cert), "--json")
    assert code == 0, err
    assert out.lstrip().startswith("[")


def test_tls_cli_without_ca_fails_in_one_line(https_url: str, cli_db: Path) -> None:
    code, out, err = invoke("models", "--base-url", https_url, "--json")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "certificate verify failed" in err


def test_tls_cli_insecure_works_and_warns_once(https_url: str, cli_db: Path) -> None:
    code, out, err = invoke("models", "--base-url", https_url, "--insecure", "--json")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "--insecure" in line]
    assert len(warnings) == 1 and "NOT verified" in warnings[0]


def test_tls_insecure_is_never_read_from_the_environment() -> None:
    assert not Settings.from_env({"ORBENCH_INSECURE": "1", "PYTHONHTTPSVERIFY": "0"}).insecure
    assert not any(k.endswith("INSECURE") for k in os.environ if k.startswith("ORBENCH"))


def test_tls_orbench_run_over_an_https_sandbox_trusting_ssl_cert_file(
        ca: CA, cli_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``models`` and ``run`` end to end against a sandbox that itself serves HTTPS (no front)."""
    with start_sandbox(time_scale=0, ssl_context=ca.server_context()) as sb:
        url = sb.base_url.replace("127.0.0.1", "localhost")
        assert url.startswith("https://")
        code, _, err = invoke("models", "--base-url", url, "--json")
        assert code == 1 and "certificate verify failed" in err  # certifi does not know our CA
        monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))
        code, out, err = invoke("models", "--base-url", url, "--json")
        assert code == 0, err
        suite = tmp_path / "s.yaml"
        suite.write_text("name: tls\nmodels: [openai/gpt-4o-mini]\nrepeats: 4\ndefaults: {max_tokens: 8}\n"
                         "cases:\n  - id: a\n    prompt: hi\n")
        code, out, err = invoke("run", str(suite), "--base-url", url, "--concurrency", "2", "--json")
        assert code == 0, err
    from bench.store.store import Store

    store = Store(cli_db)
    rows = store.requests_frame(store.resolve_run("latest")).to_dicts()
    measured = [r for r in rows if not r["is_warmup"]]
    assert [r["outcome"] for r in rows] == ["ok"] * 5
    assert all(r["conn_reused"] and r["connect_ms"] is None for r in measured)  # prewarmed, TLS included


def test_tls_a_certificate_failure_is_not_retried_and_says_why(https_url: str) -> None:
    """The same certificate fails every attempt: one attempt, no backoff, and the message says so."""
    settings = Settings.from_env({"OPENROUTER_BASE_URL": https_url})
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    async def go() -> None:
        retry = RetryPolicy(max_attempts=4, sleep=sleep)
        async with OpenRouterClient(build_http_client(settings, 2), retry=retry) as c:
            await c.chat(BODY)

    with pytest.raises(NetworkError) as info:
        asyncio.run(go())
    assert info.value.attempts == 1 and slept == []
    assert "not retried: the server's certificate is not trusted" in str(info.value)

"""Proxies from the environment are honoured at every concurrency (HTTP_PROXY, HTTPS_PROXY, NO_PROXY).

A real proxy on 127.0.0.1 (tests/_netkit.py) counts what goes through it; the target
is the real sandbox, plain or behind TLS signed by a CA made for this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bench.api.client import OpenRouterClient, RetryPolicy
from bench.api.http import build_http_client
from bench.config import Settings, environment_proxies
from bench.errors import ConfigError
from bench.records import ChatResult
from bench.sandbox import start_sandbox
from tests._netkit import CA, LoopbackProxy, TLSFront, make_ca

BODY = {"model": "openai/gpt-4o-mini", "max_tokens": 6, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with start_sandbox(time_scale=0.05) as sb:
        yield sb.base_url


@pytest.fixture
def proxy() -> Iterator[LoopbackProxy]:
    p = LoopbackProxy()
    yield p
    p.stop()


def chats(settings: Settings, concurrency: int, n: int, prewarm: int = 0) -> tuple[list[ChatResult], int]:
    async def go() -> tuple[list[ChatResult], int]:
        client = OpenRouterClient(build_http_client(settings, concurrency), retry=RetryPolicy(max_attempts=1))
        gate = asyncio.Semaphore(concurrency)

        async def one() -> ChatResult:
            async with gate:
                return await client.chat(BODY)

        async with client:
            warm = await client.prewarm(prewarm) if prewarm else 0
            return list(await asyncio.gather(*(one() for _ in range(n)))), warm

    return asyncio.run(go())


@pytest.mark.parametrize("concurrency", [1, 16])
def test_proxy_http_proxy_carries_every_request(sandbox_url: str, proxy: LoopbackProxy, concurrency: int) -> None:
    """24 of 24 through the proxy, at concurrency 1 (one httpx pool) and 16 (the sharded pools)."""
    env = {"OPENROUTER_BASE_URL": sandbox_url, "HTTP_PROXY": f"http://127.0.0.1:{proxy.port}"}
    results, _ = chats(Settings.from_env(env), concurrency, 24)
    assert len(results) == 24 and all(r.content for r in results)
    forwarded = [line for line in proxy.requests if line.endswith("/api/v1/chat/completions")]
    assert len(forwarded) == 24


@pytest.fixture(scope="module")
def tls_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CA, TLSFront]]:
    """The sandbox behind HTTPS (``https://localhost:PORT``) signed by a CA made for this module."""
    ca = make_ca(tmp_path_factory.mktemp("ca"))
    with start_sandbox(time_scale=0.05) as sb:
        front = TLSFront(ca, int(sb.base_url.split(":")[2].split("/")[0]))
        yield ca, front
        front.stop()


def tunnel_settings(tls_target: tuple[CA, TLSFront], proxy: LoopbackProxy) -> Settings:
    ca, front = tls_target
    return Settings.from_env({"OPENROUTER_BASE_URL": f"https://localhost:{front.port}/api/v1",
                              "HTTPS_PROXY": f"127.0.0.1:{proxy.port}", "SSL_CERT_FILE": str(ca.cert)})


def test_proxy_https_proxy_tunnels_every_connection(tls_target: tuple[CA, TLSFront], proxy: LoopbackProxy) -> None:
    """HTTPS through CONNECT at concurrency 16: every TLS connection the server saw came via the proxy."""
    front = tls_target[1]
    before = front.connections
    results, _ = chats(tunnel_settings(tls_target, proxy), 16, 24)
    assert len(results) == 24 and all(r.content for r in results)
    assert proxy.tunnels and set(proxy.tunnels) == {f"localhost:{front.port}"}
    assert front.connections - before == len(proxy.tunnels)  # nothing bypassed the proxy


def test_proxy_tunnel_reports_connection_facts_and_prewarms(tls_target: tuple[CA, TLSFront],
                                                            proxy: LoopbackProxy) -> None:
    """httpx's transport: cold first (connect incl. CONNECT + TLS), reused after; prewarm(16) -> 16 reused."""
    settings = tunnel_settings(tls_target, proxy)
    serial, _ = chats(settings, 1, 3)
    assert [r.conn_reused for r in serial] == [False, True, True]
    assert serial[0].connect_ms is not None and serial[0].connect_ms > 0
    assert [r.connect_ms for r in serial[1:]] == [None, None]
    tunnels = len(proxy.tunnels)
    results, warm = chats(settings, 16, 16, prewarm=16)
    assert warm == 16 and len(proxy.tunnels) - tunnels == 16  # its GET requests opened them
    assert [r.conn_reused for r in results] == [True] * 16 and len(proxy.tunnels) - tunnels == 16


def test_proxy_no_proxy_hosts_keep_the_lean_transport(sandbox_url: str, proxy: LoopbackProxy) -> None:
    env = {"OPENROUTER_BASE_URL": sandbox_url, "HTTP_PROXY": f"http://127.0.0.1:{proxy.port}",
           "NO_PROXY": "localhost,127.0.0.1"}
    results, _ = chats(Settings.from_env(env), 16, 24)
    assert len(results) == 24 and proxy.requests == [] and proxy.tunnels == []
    assert sum(1 for r in results if r.conn_reused is False) <= 16  # pooled: at most one cold connect per slot


def test_proxy_forwarding_reports_a_cold_connection(sandbox_url: str, proxy: LoopbackProxy) -> None:
    """ALL_PROXY serves http:// when HTTP_PROXY is unset; the facts come from httpcore's trace."""
    env = {"OPENROUTER_BASE_URL": sandbox_url, "ALL_PROXY": f"http://127.0.0.1:{proxy.port}"}
    first, _ = chats(Settings.from_env(env), 1, 1)
    assert first[0].conn_reused is False and first[0].connect_ms is not None and first[0].connect_ms > 0
    assert len(proxy.requests) == 1


def test_proxy_socks_without_socksio_is_a_config_error() -> None:
    settings = Settings.from_env({"ALL_PROXY": "socks5://127.0.0.1:1080"})
    with pytest.raises(ConfigError, match="ALL_PROXY|socks"):
        build_http_client(settings)


def test_proxy_environment_mapping_matches_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our reading of the variables is httpx's own (get_environment_proxies) for the same environment."""
    from httpx._utils import get_environment_proxies  # the reference we copy; private, so only in a test

    env = {"HTTP_PROXY": "proxy:3128", "https_proxy": "http://p2:8080", "HTTPS_PROXY": "http://ignored:1",
           "ALL_PROXY": "socks5://s:1080", "NO_PROXY": "localhost, 127.0.0.1,::1,.corp.example,http://x.y"}
    for k in [k for k in __import__("os").environ if k.lower().endswith("_proxy")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert dict(environment_proxies(env)) == get_environment_proxies()
    assert environment_proxies({**env, "no_proxy": "*"}) == ()
    assert dict(environment_proxies({"http_proxy": "", "HTTP_PROXY": "http://p:1"})) == {}
    assert "http://" not in dict(environment_proxies({"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}))

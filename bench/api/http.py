"""The one long-lived ``httpx.AsyncClient`` of a run, and the transports mounted in it.

``build_http_client`` picks per URL: the lean transport (``bench.api.transport``) for
direct connections, httpx's own for proxies (sharded into pools of ``POOL_SHARD_SIZE``
above that many connections), with one TLS context and explicit timeouts. Both report
whether a connection was reused and how long a new one took to set up.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from bench import __version__
from bench.api.transport import LeanTransport, tls_context
from bench.config import Settings
from bench.errors import ConfigError


# ---------------------------------------------------------------- the httpx client
def build_http_client(
    settings: Settings,
    concurrency: int = 1,
    *,
    fresh_connections: bool = False,
    connect_timeout_s: float = 10.0,
    read_timeout_s: float = 120.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """One long-lived HTTP/1.1 client per run, sized for ``concurrency`` streams.

    ``fresh_connections`` turns keep-alive off (llama.cpp sometimes drops a reused
    connection after a stream). ``read_timeout_s`` is the default stall timeout.
    Never sends response-caching headers: a cache hit would fake the measurement.

    TLS trust and proxies come from ``settings`` (see bench/config.py), never from
    the environment here. URLs a proxy serves go through httpx's own transport with
    that proxy (sharded above ``POOL_SHARD_SIZE`` connections); the rest, NO_PROXY
    hosts included, through our lean transport. A ``transport`` passed in (a test's
    MockTransport) serves every URL, as httpx does with an explicit transport.
    """
    max_conn = max(concurrency * 2, 16) if concurrency > 0 else None
    limits = httpx.Limits(
        max_connections=max_conn,
        max_keepalive_connections=0 if fresh_connections else max_conn,
    )
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    if transport is None:
        # A configured CA is loaded now, so a bad one fails here with the setting's name;
        # certifi's default (~16 ms of CPU) only at the first https connect.
        ssl_context = (tls_context(settings.ca_bundle, insecure=settings.insecure,
                                   source=settings.ca_source or "--ca-bundle")
                       if settings.ca_bundle or settings.insecure else None)
        # Our lean HTTP/1.1 transport: ~10x less CPU per SSE event than httpcore,
        # which is what keeps TTFT honest at 100+ concurrent streams (bench/api/transport.py).
        transport = LeanTransport(max_conn, keepalive=not fresh_connections, ssl_context=ssl_context)
        mounts = {pattern: None if proxy is None else _proxy_transport(proxy, max_conn, limits, ssl_context)
                  for pattern, proxy in settings.proxies}
    timeout = httpx.Timeout(connect=connect_timeout_s, read=read_timeout_s, write=30.0, pool=60.0)
    return httpx.AsyncClient(
        base_url=settings.base_url,
        headers=_default_headers(settings),
        timeout=timeout,
        limits=limits,
        http1=True,
        http2=False,
        transport=transport,
        mounts=mounts,  # pattern -> None keeps the default (lean) transport: NO_PROXY hosts
        trust_env=False,  # settings already hold what the environment says
    )


def _proxy_transport(proxy: str, max_conn: int | None, limits: httpx.Limits,
                     ssl_context: ssl.SSLContext | None) -> httpx.AsyncBaseTransport:
    ssl_context = ssl_context or tls_context()
    try:
        if max_conn is not None and max_conn > POOL_SHARD_SIZE:
            return ShardedTransport(max_conn, fresh_connections=limits.max_keepalive_connections == 0,
                                    proxy=proxy, ssl_context=ssl_context)
        return HttpxTransport(verify=ssl_context, limits=limits, http1=True, http2=False,
                              proxy=proxy, trust_env=False)
    except (ImportError, ValueError) as exc:  # socks5:// without socksio, an unknown proxy scheme
        scheme = proxy.split("://", 1)[0]
        raise ConfigError(f"the {scheme}:// proxy from the *_PROXY variables cannot be used: {exc}") from None


POOL_SHARD_SIZE = 16


class ShardedTransport(httpx.AsyncBaseTransport):
    """Several HTTP/1.1 connection pools of ``POOL_SHARD_SIZE`` instead of one big pool.

    httpcore 1.0's pool re-scans every connection for every idle connection (and
    every queued request) each time a request starts or ends: with 128 warm
    connections that is ~16k checks, tens of ms with the event loop blocked, which
    lands in the clocks of every other stream. Measured at 128 streams x 50 events
    (loopback, warm pool): client CPU 5.1 s -> 1.1 s per round. Each request goes to
    the least busy shard, so keep-alive connections are still reused; the total
    connection cap stays ``max_connections``. Used for URLs served by a proxy: every
    shard goes through ``proxy``.
    """

    def __init__(self, max_connections: int, *, fresh_connections: bool = False, proxy: str | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        n = -(-max_connections // POOL_SHARD_SIZE)
        per = -(-max_connections // n)
        limits = httpx.Limits(max_connections=per, max_keepalive_connections=0 if fresh_connections else per)
        verify = ssl_context or tls_context()
        self.shards = [HttpxTransport(verify=verify, limits=limits, http1=True, http2=False, proxy=proxy,
                                      trust_env=False) for _ in range(n)]
        self.in_flight = [0] * n

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loads = self.in_flight
        i = loads.index(min(loads))
        loads[i] += 1
        try:
            response = await self.shards[i].handle_async_request(request)
        except BaseException:
            loads[i] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, loads, i)
        return response

    async def prewarm(self, url: httpx.URL, n: int, *, timeout: float | None = None) -> int:
        """``n`` concurrent GET requests (spread over the shards); returns the idle connections after."""
        await warm_requests(self, url, n, timeout)
        return sum(shard.idle_connections(url) for shard in self.shards)

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its shard slot back when closed (no per-chunk wrapper)."""

    def __init__(self, inner: httpx.AsyncByteStream, loads: list[int], index: int) -> None:
        self._inner = inner
        self._loads: list[int] | None = loads
        self._index = index

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._inner.__aiter__()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._loads is not None:
                self._loads[self._index] -= 1
                self._loads = None


def _default_headers(settings: Settings) -> dict[str, str]:
    headers = {"User-Agent": f"orbench/{__version__}"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    if settings.referer:
        headers["HTTP-Referer"] = settings.referer
    if settings.title:
        headers["X-OpenRouter-Title"] = settings.title
        headers["X-Title"] = settings.title  # legacy name, still read by OpenRouter
    return headers


# ------------------------------------------------------------------ httpx's own transport
class HttpxTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (the proxy path), reporting the connection facts LeanTransport reports.

    httpcore has no "was this connection reused" flag, but its ``trace`` extension
    reports ``connect_tcp`` and ``start_tls``, which happen only on a new connection
    (for a tunnel: TCP to the proxy, CONNECT, then TLS to the target).
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        trace = _ConnTrace(request.extensions.get("trace"))
        request.extensions = {**request.extensions, "trace": trace}
        response = await super().handle_async_request(request)
        response.extensions["orbench_conn_reused"] = trace.started is None
        response.extensions["orbench_connect_ms"] = trace.connect_ms()
        return response

    def idle_connections(self, url: httpx.URL) -> int:
        """Idle pooled connections that could serve ``url``."""
        import httpcore

        origin = httpcore.URL(str(url)).origin
        pool = self._pool  # noqa: SLF001 - httpx keeps its httpcore pool here, no public accessor
        return sum(1 for c in pool.connections if c.is_idle() and c.can_handle_request(origin))

    async def prewarm(self, url: httpx.URL, n: int, *, timeout: float | None = None) -> int:
        """httpcore connects only for a request: ``n`` concurrent GET requests to ``url``."""
        await warm_requests(self, url, n, timeout)
        return self.idle_connections(url)


class _ConnTrace:
    """An httpcore ``trace`` callback noting when a new connection was set up (chains any other)."""

    __slots__ = ("inner", "started", "ended")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.started: int | None = None
        self.ended: int | None = None

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        if name.endswith(".connect_tcp.started") and self.started is None:
            self.started = time.perf_counter_ns()
        elif name.endswith((".connect_tcp.complete", ".start_tls.complete")):
            self.ended = time.perf_counter_ns()
        if self.inner is not None:
            await self.inner(name, info)

    def connect_ms(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return (self.ended - self.started) / 1e6


async def warm_requests(transport: httpx.AsyncBaseTransport, url: httpx.URL, n: int,
                        timeout: float | None) -> None:
    """``n`` GET requests at once, so that a pool that connects per request opens ``n`` connections.

    GET of the base URL itself (a small 404 or index page, no key sent), not HEAD: a
    server that wrongly sends a body with a HEAD answer (our sandbox does) would leave
    it on the connection for httpcore to read as the next response.
    """
    async def one() -> None:
        request = httpx.Request("GET", url, extensions={"timeout": dict.fromkeys(
            ("connect", "read", "write", "pool"), timeout)})
        response = await transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()

    outcomes = await asyncio.gather(*(one() for _ in range(max(n, 0))), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, httpx.TransportError):
            raise outcome

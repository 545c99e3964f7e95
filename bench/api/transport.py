"""A lean HTTP/1.1 transport for httpx, built for many concurrent SSE streams.

Why: httpcore + h11 cost ~100-150 us of CPU per received SSE event under
concurrency (stack-notes section 7), so one process topped out near 4k events/s
and the event loop's queueing landed in every stream's TTFT. This transport parses
HTTP/1.1 directly on asyncio streams (status line, headers, chunked or sized
bodies), a few microseconds per event, and plugs into ``httpx.AsyncClient`` so the
client code, its timeouts and its error types stay httpx's.

Scope: HTTP/1.1 over TCP or TLS, keep-alive pooling per origin, connect/read/write/
pool timeouts from the request's httpx timeout. No proxies, no HTTP/2, no
``Expect: 100-continue``: ``build_http_client`` mounts httpx's own transport for
every URL that a proxy serves (``bench.api.http``).

Framing is as strict as h11's: a bad status line, header line, Content-Length,
Transfer-Encoding or chunk size is an ``httpx.RemoteProtocolError`` and the
connection is closed; a connection with bytes left over after a response is
closed, never pooled (the next request would read them as its own response).
Outgoing header values with CR, LF or NUL are refused (``httpx.LocalProtocolError``).

Each response says how it got its connection: ``extensions["orbench_conn_reused"]``
(taken from the idle pool) and ``extensions["orbench_connect_ms"]`` (DNS + TCP +
TLS setup when it was not, else None). ``prewarm`` opens idle connections ahead
of a measured phase so that no measured request pays a connect.

A pooled connection the server has closed is not reused: before reuse the socket is
polled (as urllib3 and httpcore do) and a readable idle socket is dropped
(``extensions["orbench_closed_idle"]`` counts them). A send on a reused connection
that fails before any response byte raises ``DroppedConnection``, saying whether the
server can have read the request; the client resends it at once on a fresh
connection (``extensions={"orbench_fresh_connection": True}``).

A server that closes every connection after its response, without saying so (llama.cpp's
``llama-server`` sends ``Keep-Alive: timeout=5`` and then closes), would make every reuse a race
between that poll and a send on a dead socket. After ``CLOSES_BEFORE_NO_REUSE`` pooled connections
in a row are closed by the server with no successful reuse between, its connections are closed after
each response instead of pooled (each request opens its own: ``orbench_conn_reused`` false, as it
was); every ``REUSE_PROBE_EVERY``-th response is pooled again, to notice a server that keeps them now.
"""

from __future__ import annotations

import asyncio
import os.path
import ssl
import time
from collections import defaultdict

import httpx

from bench.api.http1 import (
    HEADER_LIMIT,
    Framing,
    Http1Body,
    Http1Connection,
    Origin,
    StampingProtocol,
    origin_of,
    parse_head,
    request_head,
    request_timeout,
    response_framing,
)
from bench.errors import ConfigError


def tls_context(ca_bundle: str | None = None, *, insecure: bool = False,
                source: str = "--ca-bundle") -> ssl.SSLContext:
    """The client TLS context, as httpx would build it (``create_ssl_context``).

    ``ca_bundle`` is a PEM file or a directory of hashed certificates (what
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name), else certifi's bundle. ``source``
    names the setting in the error when the bundle cannot be loaded.
    """
    if insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_bundle:
        try:
            if os.path.isdir(ca_bundle):
                ctx = ssl.create_default_context(capath=ca_bundle)
            else:
                ctx = ssl.create_default_context(cafile=ca_bundle)
        except FileNotFoundError:
            raise ConfigError(f"{source}={ca_bundle}: no such file or directory") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{source}={ca_bundle}: not a usable CA bundle ({exc})") from None
    else:
        import certifi

        ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class DroppedConnection(httpx.RemoteProtocolError):
    """A reused keep-alive connection failed before any byte of a response came back.

    ``server_read`` is False when the server cannot have read the request: the write
    itself failed, or the connection was reset (Linux resets a socket that gets data
    after its close, or is closed with data unread). True when it may have (a plain
    close after the request went out): resending then is a retry under the budget's rules.
    """

    def __init__(self, message: str, *, request: httpx.Request, server_read: bool) -> None:
        super().__init__(message, request=request)
        self.server_read = server_read


class CertificateError(httpx.ConnectError):
    """The server's TLS certificate is not trusted: the same on every attempt, so never retried."""


CLOSES_BEFORE_NO_REUSE = 3
REUSE_PROBE_EVERY = 32


class LeanTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=LeanTransport(...))``."""

    def __init__(self, max_connections: int | None = None, *, keepalive: bool = True,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[Origin, list[Http1Connection]] = defaultdict(list)
        self._peer_closes: dict[Origin, int] = defaultdict(int)  # pooled connections the server closed, in a row
        self._unpooled: dict[Origin, int] = {}  # origins that close after each response -> responses since a probe
        self._slots = asyncio.Semaphore(max_connections) if max_connections else None
        self._keepalive = keepalive
        self._ssl = ssl_context

    # ----------------------------------------------------------------- pool
    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = tls_context()
        return self._ssl

    async def _acquire_slot(self, request: httpx.Request) -> None:
        if self._slots is None:
            return
        try:
            async with asyncio.timeout(request_timeout(request, "pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time", request=request) from None

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def _pop_idle(self, origin: Origin) -> tuple[Http1Connection | None, int]:
        """An idle connection the server has not closed, and how many closed ones were dropped."""
        idle = self._idle[origin]
        dropped = 0
        while idle:
            conn = idle.pop()
            if conn.usable() and not conn.dropped_by_peer():
                return conn, dropped
            dropped += 1
            if conn.served:
                self._peer_closed(origin)
            conn.close()
        return None, dropped

    def _peer_closed(self, origin: Origin) -> None:
        """A connection that had served a response was closed by the server before its next use."""
        self._peer_closes[origin] += 1
        if self._peer_closes[origin] >= CLOSES_BEFORE_NO_REUSE:
            self._unpooled.setdefault(origin, 0)

    def _reused_ok(self, origin: Origin) -> None:
        self._peer_closes[origin] = 0
        self._unpooled.pop(origin, None)

    def _pool_this(self, origin: Origin) -> bool:
        """Pool a connection after its response (False for a server that closes them: see the module)."""
        if origin not in self._unpooled:
            return True
        self._unpooled[origin] += 1
        if self._unpooled[origin] >= REUSE_PROBE_EVERY:
            self._unpooled[origin] = 0
            return True
        return False

    async def _open(self, origin: Origin, timeout: float | None,
                    request: httpx.Request | None = None) -> Http1Connection:
        """A new connection (TCP, and TLS for https), timed from the first syscall to the handshake's end."""
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=HEADER_LIMIT, loop=loop)
        protocol = StampingProtocol(reader)
        started = time.perf_counter_ns()
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    lambda: protocol, host, port,
                    ssl=self._ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(
                f"TLS to {host}:{port}: certificate verify failed ({exc.verify_message}); if a corporate CA "
                "or a TLS-inspecting proxy signs it, name that CA with --ca-bundle or ORBENCH_CA_BUNDLE "
                "(or SSL_CERT_FILE)", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}", request=request) from None
        connect_ms = (time.perf_counter_ns() - started) / 1e6
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return Http1Connection(reader, writer, origin, protocol, connect_ms)

    def _give_back(self, conn: Http1Connection, reusable: bool) -> None:
        if reusable and self._keepalive and conn.usable() and self._pool_this(conn.origin):
            conn.served = True
            self._idle[conn.origin].append(conn)
        else:
            conn.close()
        self._release_slot()

    async def prewarm(self, url: httpx.URL, n: int, *, timeout: float | None = None,
                      parallel: int = 32) -> int:
        """Open idle connections to ``url``'s origin until ``n`` wait in the pool; returns how many do.

        Connects only (TCP + TLS), no HTTP request; at most ``parallel`` at once.
        Connections that fail are not retried: the measured requests will say why.
        """
        if not self._keepalive or n <= 0:
            return 0
        origin = origin_of(url)
        idle = self._idle[origin]
        for conn in [c for c in idle if not c.usable()]:
            idle.remove(conn)
            conn.close()
        gate = asyncio.Semaphore(parallel)

        async def one() -> None:
            async with gate:
                idle.append(await self._open(origin, timeout))

        outcomes = await asyncio.gather(*(one() for _ in range(n - len(idle))), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, httpx.TransportError):
                raise outcome
        return sum(1 for c in idle if c.usable())

    # ------------------------------------------------------------- request
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = origin_of(url)
        body = await request.aread()
        data = request_head(request) + body
        await self._acquire_slot(request)
        conn, closed_idle = (None, 0) if request.extensions.get("orbench_fresh_connection") \
            else self._pop_idle(origin)
        reused = conn is not None
        if conn is None:
            try:
                conn = await self._open(origin, request_timeout(request, "connect"), request)
            except BaseException:
                self._release_slot()
                raise
        received = conn.protocol.received
        try:
            status, reason, headers, framing = await self._exchange(request, conn, data)
        except httpx.TransportError as exc:
            if not reused or conn.protocol.received != received or isinstance(exc, httpx.TimeoutException):
                self._give_back(conn, False)
                raise
            server_read = not (isinstance(exc, httpx.WriteError) or isinstance(exc.__context__, ConnectionResetError)
                               or conn.reset_by_peer())
            self._peer_closed(origin)
            self._give_back(conn, False)
            raise DroppedConnection(f"the server closed a reused connection before answering ({exc})",
                                    request=request, server_read=server_read) from None
        except BaseException:
            self._give_back(conn, False)
            raise
        if reused:
            self._reused_ok(origin)
        stream = Http1Body(self, conn, request, framing)
        return httpx.Response(status, headers=headers, stream=stream, request=request,
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason,
                                          "orbench_body": stream,  # arrival stamps, see Http1Body
                                          "orbench_conn_reused": reused,
                                          "orbench_closed_idle": closed_idle,
                                          "orbench_connect_ms": None if reused else conn.connect_ms})

    async def _exchange(self, request: httpx.Request, conn: Http1Connection,
                        data: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]], Framing]:
        try:
            conn.writer.write(data)
            async with asyncio.timeout(request_timeout(request, "write")):
                await conn.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("sending the request timed out", request=request) from None
        except OSError as exc:
            raise httpx.WriteError(f"sending the request failed: {exc}", request=request) from None
        while True:
            status, reason, headers, version = parse_head(await self._read_head(request, conn), request)
            if not 100 <= status < 200 or status == 101:
                break  # informational responses (100 Continue, 103 Early Hints) are skipped, as h11 does
        return status, reason, headers, response_framing(request, status, headers, version)

    async def _read_head(self, request: httpx.Request, conn: Http1Connection) -> bytes:
        try:
            async with asyncio.timeout(request_timeout(request, "read")):
                return await conn.reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise httpx.ReadTimeout("waiting for the response headers timed out", request=request) from None
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                                request=request) from None
            raise httpx.RemoteProtocolError("incomplete response headers", request=request) from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError("response headers too large", request=request) from None
        except OSError as exc:
            raise httpx.ReadError(f"reading the response failed: {exc}", request=request) from None

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

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
every URL that a proxy serves (``proxy_transport`` below).

Framing is as strict as h11's: a bad status line, header line, Content-Length,
Transfer-Encoding or chunk size is an ``httpx.RemoteProtocolError`` and the
connection is closed; a connection with bytes left over after a response is
closed, never pooled (the next request would read them as its own response).
Outgoing header values with CR, LF or NUL are refused (``httpx.LocalProtocolError``).

Each response says how it got its connection: ``extensions["orbench_conn_reused"]``
(taken from the idle pool) and ``extensions["orbench_connect_ms"]`` (DNS + TCP +
TLS setup when it was not, else None). ``prewarm`` opens idle connections ahead
of a measured phase so that no measured request pays a connect.
"""

from __future__ import annotations

import asyncio
import os.path
import re
import ssl
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

from bench.errors import ConfigError

_NO_BODY_STATUS = {204, 304}
_LIMIT = 1 << 20  # longest header block / chunk-size line we accept
_PIECE = 65536  # largest part we hand out from one sized body or big chunk
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")  # h11's chunk_header
_PLAIN_CHUNK_LINE = re.compile(rb"[0-9A-Fa-f]{1,16}\r\n")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")  # a header field name (checked in responses)
_BAD_VALUE = re.compile(rb"[\r\n\0]")

Origin = tuple[str, str, int]


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


def _timeout(request: httpx.Request, kind: str) -> float | None:
    t = request.extensions.get("timeout") or {}
    value = t.get(kind)
    return None if value is None else float(value)


def _origin(url: httpx.URL) -> Origin:
    scheme = url.scheme
    return (scheme, url.host, url.port or (443 if scheme == "https" else 80))


class _StampingProtocol(asyncio.StreamReaderProtocol):
    """Remembers when each read from the socket happened (perf_counter_ns).

    When 128 streams receive their first token in the same millisecond, the event
    loop first runs every socket's ``data_received`` (cheap) and only then resumes
    the 128 parsing tasks one by one; stamping here keeps the last stream's TTFT
    from absorbing the other 127 streams' parsing time.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self.received = 0
        self.marks: deque[tuple[int, int]] = deque()  # (bytes received so far, time)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.marks.append((self.received, time.perf_counter_ns()))
        super().data_received(data)

    def arrival_ns(self, consumed: int) -> int | None:
        """When the read that delivered byte number ``consumed`` happened."""
        marks = self.marks
        while len(marks) > 1 and marks[0][0] < consumed:
            marks.popleft()
        return marks[0][1] if marks and marks[0][0] >= consumed else None


class _Conn:
    __slots__ = ("reader", "writer", "origin", "protocol", "connect_ms")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 origin: Origin, protocol: _StampingProtocol, connect_ms: float) -> None:
        self.reader = reader
        self.writer = writer
        self.origin = origin
        self.protocol = protocol
        self.connect_ms = connect_ms

    def unread(self) -> int:
        """Bytes received but not handed out (left over after a response, if idle)."""
        return len(self.reader._buffer)  # noqa: SLF001 - no public API

    def consumed(self) -> int:
        """Bytes the reader has handed out so far (received minus still buffered)."""
        return self.protocol.received - self.unread()

    def usable(self) -> bool:
        """Still open, and nothing arrived while idle (a stray byte would frame the next response)."""
        return not self.writer.is_closing() and not self.reader.at_eof() and not self.unread()

    def close(self) -> None:
        self.writer.close()


class _Framing:
    """How a response body is delimited, decided from its head (h11's rules)."""

    __slots__ = ("chunked", "length", "close_after")

    def __init__(self, chunked: bool, length: int | None, close_after: bool) -> None:
        self.chunked = chunked
        self.length = length  # None with chunked or a body delimited by the connection's end
        self.close_after = close_after


class LeanTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=LeanTransport(...))``."""

    def __init__(self, max_connections: int | None = None, *, keepalive: bool = True,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[Origin, list[_Conn]] = defaultdict(list)
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
            async with asyncio.timeout(_timeout(request, "pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time", request=request) from None

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def _pop_idle(self, origin: Origin) -> _Conn | None:
        idle = self._idle[origin]
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    async def _open(self, origin: Origin, timeout: float | None,
                    request: httpx.Request | None = None) -> _Conn:
        """A new connection (TCP, and TLS for https), timed from the first syscall to the handshake's end."""
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_LIMIT, loop=loop)
        protocol = _StampingProtocol(reader)
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
            raise httpx.ConnectError(
                f"TLS to {host}:{port}: certificate verify failed ({exc.verify_message}); if a corporate CA "
                "or a TLS-inspecting proxy signs it, name that CA with --ca-bundle or ORBENCH_CA_BUNDLE "
                "(or SSL_CERT_FILE)", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}", request=request) from None
        connect_ms = (time.perf_counter_ns() - started) / 1e6
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return _Conn(reader, writer, origin, protocol, connect_ms)

    def _give_back(self, conn: _Conn, reusable: bool) -> None:
        if reusable and self._keepalive and conn.usable():
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
        origin = _origin(url)
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
        origin = _origin(url)
        body = await request.aread()
        data = _request_head(request) + body
        await self._acquire_slot(request)
        conn = self._pop_idle(origin)
        reused = conn is not None
        if conn is None:
            try:
                conn = await self._open(origin, _timeout(request, "connect"), request)
            except BaseException:
                self._release_slot()
                raise
        try:
            status, reason, headers, framing = await self._exchange(request, conn, data)
        except BaseException:
            self._give_back(conn, False)
            raise
        stream = _Body(self, conn, request, framing)
        return httpx.Response(status, headers=headers, stream=stream, request=request,
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason,
                                          "orbench_body": stream,  # arrival stamps, see _Body
                                          "orbench_conn_reused": reused,
                                          "orbench_connect_ms": None if reused else conn.connect_ms})

    async def _exchange(self, request: httpx.Request, conn: _Conn,
                        data: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]], _Framing]:
        try:
            conn.writer.write(data)
            async with asyncio.timeout(_timeout(request, "write")):
                await conn.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("sending the request timed out", request=request) from None
        except OSError as exc:
            raise httpx.WriteError(f"sending the request failed: {exc}", request=request) from None
        while True:
            status, reason, headers, version = _parse_head(await self._read_head(request, conn), request)
            if not 100 <= status < 200 or status == 101:
                break  # informational responses (100 Continue, 103 Early Hints) are skipped, as h11 does
        return status, reason, headers, _framing(request, status, headers, version)

    async def _read_head(self, request: httpx.Request, conn: _Conn) -> bytes:
        try:
            async with asyncio.timeout(_timeout(request, "read")):
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


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers; a CR, LF or NUL that would split the message is refused (as h11 does)."""
    raw = request.headers.raw
    head = b"\r\n".join([f"{request.method} {request.url.raw_path.decode('ascii')} HTTP/1.1".encode(),
                          *[name + b": " + value for name, value in raw]]) + b"\r\n\r\n"
    # One count over the block instead of a check per header: each line adds exactly one CRLF.
    lines = len(raw) + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
        for name, value in raw:
            if _BAD_VALUE.search(name + value):
                # never the value itself: it may be the API key
                raise httpx.LocalProtocolError(f"Illegal header value for {name[:40]!r}: CR, LF or NUL in it",
                                               request=request)
        raise httpx.LocalProtocolError("CR, LF or NUL in the request line", request=request)
    return head


def _parse_head(block: bytes,
                request: httpx.Request) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
    lines = block[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise httpx.RemoteProtocolError(f"not an HTTP/1.x response: {lines[0][:60]!r}", request=request)
    if len(parts[1]) != 3 or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"bad status code {parts[1][:10]!r}", request=request)
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise httpx.RemoteProtocolError(f"malformed header line {line[:60]!r}", request=request)
        headers.append((name, value.strip(b" \t")))
    return int(parts[1]), (parts[2] if len(parts) > 2 else b""), headers, parts[0]


def _framing(request: httpx.Request, status: int, headers: list[tuple[bytes, bytes]],
             version: bytes) -> _Framing:
    """Chunked, sized or until close (RFC 9112 section 6.3), rejecting what h11 rejects."""
    lengths: set[bytes] = set()
    codings = b""
    connection = b""
    for name, value in headers:
        key = name.lower()
        if key == b"content-length":
            lengths.update(v.strip(b" \t") for v in value.split(b","))
        elif key == b"transfer-encoding":
            codings = (codings + b"," + value) if codings else value
        elif key == b"connection":
            connection += b"," + value.lower()
    close_after = b"close" in connection or (version == b"HTTP/1.0" and b"keep-alive" not in connection)
    if request.method == "HEAD" or status in _NO_BODY_STATUS or 100 <= status < 200:
        return _Framing(False, 0, close_after)
    if codings:
        if codings.strip(b" \t").lower() != b"chunked":
            raise httpx.RemoteProtocolError(f"unsupported Transfer-Encoding {codings[:40]!r}", request=request)
        # with both, Transfer-Encoding wins and the connection must not be reused (RFC 9112 6.3)
        return _Framing(True, None, close_after or bool(lengths))
    if lengths:
        value = lengths.pop()
        if lengths or not _DIGITS.fullmatch(value):
            raise httpx.RemoteProtocolError("bad Content-Length", request=request)
        return _Framing(False, int(value), close_after)
    return _Framing(False, None, True)


class _Body(httpx.AsyncByteStream):
    """The response body: chunked, sized or until close; returns the connection when done."""

    def __init__(self, transport: LeanTransport, conn: _Conn, request: httpx.Request,
                 framing: _Framing) -> None:
        self._transport = transport
        self._conn: _Conn | None = conn
        self._request = request
        self._read_timeout = _timeout(request, "read")
        self._chunked = framing.chunked
        self._length = framing.length
        self._close_after = framing.close_after
        self._complete = False
        self.arrival_ns: int | None = None  # when the bytes of the last yielded part were read
        self._watchdog: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._timed_out = False
        self._last = 0.0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        # One watchdog timer per body instead of an asyncio.timeout per read: a
        # timer per SSE event cost ~20% of the client's CPU at 128 streams.
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._task = asyncio.current_task()
        self._last = loop.time()
        self._timed_out = False
        watchdog = (loop.call_at(self._last + self._read_timeout, self._check_idle)
                    if self._read_timeout is not None else None)
        self._watchdog = watchdog
        try:
            if self._chunked:
                parts = self._chunks(conn.reader)
            elif self._length is not None:
                parts = self._sized(conn.reader, self._length)
            else:
                parts = self._until_close(conn.reader)
            async for part in parts:
                yield part
            self._complete = True
        except asyncio.CancelledError:
            if self._timed_out and self._task is not None:
                self._task.uncancel()
                raise httpx.ReadTimeout("no data from the server in time", request=self._request) from None
            raise
        except asyncio.IncompleteReadError:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body",
                                            request=self._request) from None
        except (ConnectionError, OSError) as exc:
            raise httpx.ReadError(f"the connection broke: {exc}", request=self._request) from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError("malformed chunked body: chunk-size line too long",
                                            request=self._request) from None
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
            if self._complete:
                self._release(reusable=self._reusable())

    def _check_idle(self) -> None:
        assert self._read_timeout is not None
        due = self._last + self._read_timeout
        if self._loop.time() >= due:
            self._timed_out = True
            self._watchdog = None
            if self._task is not None:
                self._task.cancel()
        else:
            self._watchdog = self._loop.call_at(due, self._check_idle)

    def _reusable(self) -> bool:
        # Bytes already buffered past the end of this response belong to no request.
        return (self._complete and not self._close_after and (self._chunked or self._length is not None)
                and self._conn is not None and not self._conn.unread())

    def _bad_chunk(self, what: str) -> httpx.RemoteProtocolError:
        return httpx.RemoteProtocolError(f"malformed chunked body: {what}", request=self._request)

    async def _chunks(self, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
        loop = self._loop
        match = _CHUNK_LINE.fullmatch
        plain = _PLAIN_CHUNK_LINE.fullmatch
        while True:
            line = await reader.readline()
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            if plain(line) is not None:  # the usual "5b\r\n": int() ignores the CRLF
                size = int(line, 16)
            else:
                m = match(line)  # with extensions, whitespace or a bare LF; int() alone took "-5" and "0x5"
                if m is None:
                    raise self._bad_chunk(f"bad chunk size line {line[:40]!r}")
                size = int(m.group(1), 16)
            if size == 0:
                await self._trailers(reader)
                return
            if size <= _PIECE:
                data = await reader.readexactly(size + 2)
                if data[-2:] != b"\r\n":
                    raise self._bad_chunk("no CRLF after the chunk data")
                self._last = loop.time()
                self.arrival_ns = self._conn_arrival()
                yield data[:-2]
                continue
            while size > 0:  # a big chunk: in pieces, so one chunk never sits whole in memory
                data = await reader.readexactly(min(size, _PIECE))
                size -= len(data)
                self._last = loop.time()
                self.arrival_ns = self._conn_arrival()
                yield data
            if await reader.readexactly(2) != b"\r\n":
                raise self._bad_chunk("no CRLF after the chunk data")

    async def _trailers(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):
                return
            if not line.endswith(b"\n"):  # closed inside the trailers: the data is all here, the connection is done
                self._close_after = True
                return

    async def _sized(self, reader: asyncio.StreamReader, remaining: int) -> AsyncIterator[bytes]:
        while remaining > 0:
            data = await reader.read(min(remaining, _PIECE))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            self._last = self._loop.time()
            self.arrival_ns = self._conn_arrival()
            remaining -= len(data)
            yield data

    async def _until_close(self, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
        while True:
            data = await reader.read(_PIECE)
            if not data:
                return
            self._last = self._loop.time()
            self.arrival_ns = self._conn_arrival()
            yield data

    def _conn_arrival(self) -> int | None:
        conn = self._conn
        return None if conn is None else conn.protocol.arrival_ns(conn.consumed())

    def _release(self, reusable: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._transport._give_back(conn, reusable)

    async def aclose(self) -> None:
        # A body not read to the end leaves the connection mid-message: close it.
        self._release(reusable=self._reusable())


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

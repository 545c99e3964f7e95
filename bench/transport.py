"""A lean HTTP/1.1 transport for httpx, built for many concurrent SSE streams.

Why: httpcore + h11 cost ~100-150 us of CPU per received SSE event under
concurrency (stack-notes section 7), so one process topped out near 4k events/s
and the event loop's queueing landed in every stream's TTFT. This transport parses
HTTP/1.1 directly on asyncio streams (status line, headers, chunked or sized
bodies), a few microseconds per event, and plugs into ``httpx.AsyncClient`` so the
client code, its timeouts and its error types stay httpx's.

Scope: HTTP/1.1 over TCP or TLS, keep-alive pooling per origin, connect/read/write/
pool timeouts from the request's httpx timeout. No proxies, no HTTP/2, no
``Expect: 100-continue``: ``build_http_client`` falls back to httpx's own transport
when a proxy is configured in the environment.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

_NO_BODY_STATUS = {204, 304}
_LIMIT = 1 << 20  # longest header block / chunk-size line we accept


def _timeout(request: httpx.Request, kind: str) -> float | None:
    t = request.extensions.get("timeout") or {}
    value = t.get(kind)
    return None if value is None else float(value)


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
    __slots__ = ("reader", "writer", "origin", "protocol")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 origin: tuple[str, str, int], protocol: _StampingProtocol) -> None:
        self.reader = reader
        self.writer = writer
        self.origin = origin
        self.protocol = protocol

    def consumed(self) -> int:
        """Bytes the reader has handed out so far (received minus still buffered)."""
        return self.protocol.received - len(self.reader._buffer)  # noqa: SLF001 - no public API

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=LeanTransport(...))``."""

    def __init__(self, max_connections: int | None = None, *, keepalive: bool = True,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], list[_Conn]] = defaultdict(list)
        self._slots = asyncio.Semaphore(max_connections) if max_connections else None
        self._keepalive = keepalive
        self._ssl = ssl_context

    # ----------------------------------------------------------------- pool
    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            try:
                import certifi

                ctx = ssl.create_default_context(cafile=certifi.where())
            except ImportError:  # pragma: no cover - certifi comes with httpx
                ctx = ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl = ctx
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

    async def _connect(self, request: httpx.Request, origin: tuple[str, str, int]) -> _Conn:
        idle = self._idle[origin]
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_LIMIT, loop=loop)
        protocol = _StampingProtocol(reader)
        try:
            async with asyncio.timeout(_timeout(request, "connect")):
                transport, _ = await loop.create_connection(
                    lambda: protocol, host, port,
                    ssl=self._ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}", request=request) from None
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return _Conn(reader, writer, origin, protocol)

    def _give_back(self, conn: _Conn, reusable: bool) -> None:
        if reusable and self._keepalive and conn.usable():
            self._idle[conn.origin].append(conn)
        else:
            conn.close()
        self._release_slot()

    # ------------------------------------------------------------- request
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        port = url.port or (443 if scheme == "https" else 80)
        origin = (scheme, url.host, port)
        body = await request.aread()
        head = [f"{request.method} {url.raw_path.decode('ascii')} HTTP/1.1".encode()]
        for name, value in request.headers.raw:
            head.append(name + b": " + value)
        data = b"\r\n".join(head) + b"\r\n\r\n" + body
        await self._acquire_slot(request)
        try:
            conn = await self._connect(request, origin)
        except BaseException:
            self._release_slot()
            raise
        try:
            status, reason, headers = await self._exchange(request, conn, data)
        except BaseException:
            self._give_back(conn, False)
            raise
        stream = _Body(self, conn, request, status, headers)
        return httpx.Response(status, headers=headers, stream=stream, request=request,
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason,
                                          "orbench_body": stream})  # arrival stamps, see _Body

    async def _exchange(self, request: httpx.Request, conn: _Conn,
                        data: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            conn.writer.write(data)
            async with asyncio.timeout(_timeout(request, "write")):
                await conn.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("sending the request timed out", request=request) from None
        except OSError as exc:
            raise httpx.WriteError(f"sending the request failed: {exc}", request=request) from None
        try:
            async with asyncio.timeout(_timeout(request, "read")):
                block = await conn.reader.readuntil(b"\r\n\r\n")
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
        return _parse_head(block, request)

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


def _parse_head(block: bytes, request: httpx.Request) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    lines = block[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise httpx.RemoteProtocolError(f"not an HTTP response: {lines[0][:60]!r}", request=request)
    try:
        status = int(parts[1])
    except ValueError:
        raise httpx.RemoteProtocolError("bad status code", request=request) from None
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return status, (parts[2] if len(parts) > 2 else b""), headers


class _Body(httpx.AsyncByteStream):
    """The response body: chunked, sized or until close; returns the connection when done."""

    def __init__(self, transport: LeanTransport, conn: _Conn, request: httpx.Request, status: int,
                 headers: list[tuple[bytes, bytes]]) -> None:
        self._transport = transport
        self._conn: _Conn | None = conn
        self._request = request
        self._read_timeout = _timeout(request, "read")
        names = {k.lower(): v for k, v in headers}
        self._chunked = b"chunked" in names.get(b"transfer-encoding", b"").lower()
        length = names.get(b"content-length")
        self._length = int(length) if length is not None and not self._chunked else None
        if request.method == "HEAD" or status in _NO_BODY_STATUS or 100 <= status < 200:
            self._length = 0
            self._chunked = False
        self._close_after = names.get(b"connection", b"").lower() == b"close"
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
        except (ValueError, asyncio.LimitOverrunError):
            raise httpx.RemoteProtocolError("malformed chunked body", request=self._request) from None
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
            if self._complete:
                self._release(reusable=not self._close_after and self._length_known())

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

    def _length_known(self) -> bool:
        return self._chunked or self._length is not None

    async def _chunks(self, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
        loop = self._loop
        while True:
            line = await reader.readline()
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return
            data = await reader.readexactly(size + 2)
            self._last = loop.time()
            self.arrival_ns = self._conn_arrival()
            yield data[:-2]

    async def _sized(self, reader: asyncio.StreamReader, remaining: int) -> AsyncIterator[bytes]:
        while remaining > 0:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            self._last = self._loop.time()
            self.arrival_ns = self._conn_arrival()
            remaining -= len(data)
            yield data

    async def _until_close(self, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
        while True:
            data = await reader.read(65536)
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
        self._release(reusable=self._complete and not self._close_after and self._length_known())

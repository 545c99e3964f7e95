"""HTTP/1.1 on asyncio streams for the lean transport: connections, request and response
heads, and response bodies (chunked, sized or until close).

Framing is as strict as h11's: a bad status line, header line, Content-Length,
Transfer-Encoding or chunk size is an ``httpx.RemoteProtocolError``; outgoing header
values with CR, LF or NUL are refused. The pooling and the transport itself are
``bench.api.transport.LeanTransport``'s.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx

_NO_BODY_STATUS = {204, 304}
HEADER_LIMIT = 1 << 20  # longest header block / chunk-size line we accept
_PIECE = 65536  # largest part we hand out from one sized body or big chunk
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")  # h11's chunk_header
_PLAIN_CHUNK_LINE = re.compile(rb"[0-9A-Fa-f]{1,16}\r\n")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")  # a header field name (checked in responses)
_BAD_VALUE = re.compile(rb"[\r\n\0]")
Origin = tuple[str, str, int]


def request_timeout(request: httpx.Request, kind: str) -> float | None:
    t = request.extensions.get("timeout") or {}
    value = t.get(kind)
    return None if value is None else float(value)


def origin_of(url: httpx.URL) -> Origin:
    scheme = url.scheme
    return (scheme, url.host, url.port or (443 if scheme == "https" else 80))


class StampingProtocol(asyncio.StreamReaderProtocol):
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


class Http1Connection:
    __slots__ = ("reader", "writer", "origin", "protocol", "connect_ms", "fd", "served")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 origin: Origin, protocol: StampingProtocol, connect_ms: float) -> None:
        self.reader = reader
        self.writer = writer
        self.origin = origin
        self.protocol = protocol
        self.connect_ms = connect_ms
        self.served = False  # has answered a request (then pooled): see LeanTransport._peer_closed
        sock = writer.get_extra_info("socket")
        self.fd: int = sock.fileno() if sock is not None else -1

    def dropped_by_peer(self) -> bool:
        """The socket is readable while idle: the server closed it (FIN or RST) or sent stray bytes.

        What urllib3's ``is_connection_dropped`` and httpcore's ``is_readable`` ask the kernel
        before reusing a connection: a FIN that arrived a moment ago is in the socket before
        the event loop has told the stream reader, so ``usable()`` alone would miss it.
        """
        if self.fd < 0:
            return False
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        try:
            return bool(poller.poll(0))
        except OSError:
            return True

    def reset_by_peer(self) -> bool:
        """After an EOF with no response: did a reset follow (the server closed without reading)?

        Linux answers data sent to a closed socket, or a close with unread data, with a reset;
        a server that read the request and then closed sends a plain FIN.
        """
        if self.fd < 0:
            return False
        try:
            os.read(self.fd, 1)
        except ConnectionResetError:
            return True
        except OSError:
            return False
        return False

    def unread(self) -> int:
        """Bytes received but not handed out (left over after a response, if idle)."""
        return len(self.reader._buffer)  # type: ignore[attr-defined]  # noqa: SLF001 - private, no public API

    def consumed(self) -> int:
        """Bytes the reader has handed out so far (received minus still buffered)."""
        return self.protocol.received - self.unread()

    def usable(self) -> bool:
        """Still open, and nothing arrived while idle (a stray byte would frame the next response)."""
        return not self.writer.is_closing() and not self.reader.at_eof() and not self.unread()

    def close(self) -> None:
        self.writer.close()


class Framing:
    """How a response body is delimited, decided from its head (h11's rules)."""

    __slots__ = ("chunked", "length", "close_after")

    def __init__(self, chunked: bool, length: int | None, close_after: bool) -> None:
        self.chunked = chunked
        self.length = length  # None with chunked or a body delimited by the connection's end
        self.close_after = close_after


def request_head(request: httpx.Request) -> bytes:
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


def parse_head(block: bytes,
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


def response_framing(request: httpx.Request, status: int, headers: list[tuple[bytes, bytes]],
             version: bytes) -> Framing:
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
        return Framing(False, 0, close_after)
    if codings:
        if codings.strip(b" \t").lower() != b"chunked":
            raise httpx.RemoteProtocolError(f"unsupported Transfer-Encoding {codings[:40]!r}", request=request)
        # with both, Transfer-Encoding wins and the connection must not be reused (RFC 9112 6.3)
        return Framing(True, None, close_after or bool(lengths))
    if lengths:
        value = lengths.pop()
        if lengths or not _DIGITS.fullmatch(value):
            raise httpx.RemoteProtocolError("bad Content-Length", request=request)
        return Framing(False, int(value), close_after)
    return Framing(False, None, True)


class _Pool(Protocol):
    """What a body needs of its transport: somewhere to give the connection back."""

    def _give_back(self, conn: Http1Connection, reusable: bool) -> None: ...


class Http1Body(httpx.AsyncByteStream):
    """The response body: chunked, sized or until close; returns the connection when done."""

    def __init__(self, transport: _Pool, conn: Http1Connection, request: httpx.Request,
                 framing: Framing) -> None:
        self._transport = transport
        self._conn: Http1Connection | None = conn
        self._request = request
        self._read_timeout = request_timeout(request, "read")
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

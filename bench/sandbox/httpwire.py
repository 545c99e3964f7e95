"""HTTP/1.1 on raw asyncio streams: request parsing and response framing for the sandbox.

Owns the wire format only (no routing, no simulation). Kept to the subset the sandbox
needs: keep-alive, Content-Length and chunked request bodies, Content-Length JSON
responses, and chunked SSE responses where every event goes out as its own chunk so a
client sees the same per-event arrival pattern as from the real API. Writes go straight
to the transport (one ``send`` per event); ``drain`` honours back-pressure.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_HEAD_BYTES = 1 << 20
BASE_HEADERS = (
    ("Server", "orbench-sandbox"),
    ("X-Orbench-Simulated", "true"),
    ("Access-Control-Allow-Origin", "*"),
)
_DECIMAL_MARK = "\x00dec:"
_DECIMAL_RE = re.compile('"\\\\u0000dec:(-?[0-9.]+)"')


class BadRequestLine(Exception):
    """The client sent something that is not HTTP/1.x; the connection is dropped."""


@dataclass
class Request:
    """One parsed request. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    keep_alive: bool = True
    received_perf_ns: int = 0
    received_loop_time: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request; None when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequestLine("truncated request head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequestLine("request head too large") from exc
    method, target, version, headers = _parse_head(head)
    body = await _read_body(reader, headers)
    split = urlsplit(target)
    return Request(
        method=method,
        path=split.path,
        query=parse_qs(split.query),
        headers=headers,
        body=body,
        keep_alive=_wants_keep_alive(version, headers),
    )


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequestLine(f"bad request line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return parts[0].upper(), parts[1], parts[2], headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = int(headers.get("content-length") or 0)
    return await reader.readexactly(length) if length else b""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers expected; eat the final CRLF
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _wants_keep_alive(version: str, headers: dict[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


def dumps(payload: Any) -> bytes:
    """JSON bytes; ``Decimal`` values become plain JSON numbers with their exact digits."""
    text = json.dumps(_mark_decimals(payload), ensure_ascii=False, separators=(",", ":"))
    if _DECIMAL_MARK[1:] in text:
        text = _DECIMAL_RE.sub(r"\1", text)
    return text.encode()


def _mark_decimals(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _DECIMAL_MARK + format(value.normalize(), "f")
    if isinstance(value, dict):
        return {k: _mark_decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_decimals(v) for v in value]
    return value


def response_head(status: int, headers: list[tuple[str, str]], keep_alive: bool) -> bytes:
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in (*BASE_HEADERS, *headers)]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None, keep_alive: bool = True
) -> bytes:
    """A complete Content-Length JSON response, ready to write."""
    body = dumps(payload)
    head = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])]
    return response_head(status, head, keep_alive) + body


def reset_connection(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP RST: no terminating chunk, no FIN handshake."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class ChunkedStream:
    """A chunked response body on one connection: every ``queue``d event is its own HTTP chunk.

    Events due at the same moment are framed separately but handed to the kernel in one
    ``flush`` (one ``send``), which keeps zero-delay streams cheap; a paced stream flushes
    whenever it is about to wait, so every event leaves at its deadline.
    """

    MAX_QUEUED = 64

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._transport = writer.transport
        self._pending: list[bytes] = []

    def start(self, status: int, headers: list[tuple[str, str]], keep_alive: bool) -> None:
        """Queue the status line and headers (they leave with the first flush)."""
        head = [*headers, ("Transfer-Encoding", "chunked")]
        self._pending.append(response_head(status, head, keep_alive))

    def queue(self, data: bytes) -> None:
        """Frame one event as a chunk, to go out with the next ``flush``."""
        self._pending.append(b"%x\r\n%b\r\n" % (len(data), data))

    @property
    def queued(self) -> int:
        return len(self._pending)

    def flush(self) -> bool:
        """Hand everything queued to the transport; False when the client has gone away."""
        if not self._pending:
            return not self.client_gone
        data = b"".join(self._pending)
        self._pending.clear()
        return self._write(data)

    def finish(self) -> bool:
        self._pending.append(b"0\r\n\r\n")
        return self.flush()

    @property
    def client_gone(self) -> bool:
        # A client that closes mid-response sends FIN (reader EOF) before any RST.
        return self._transport.is_closing() or self._reader.at_eof()

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, RuntimeError):
            pass

    def reset(self) -> None:
        reset_connection(self._writer)

    def _write(self, data: bytes) -> bool:
        if self.client_gone:
            return False
        self._transport.write(data)
        return True

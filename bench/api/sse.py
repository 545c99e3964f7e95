"""Server-sent events framing: bytes as they come off the socket in, events out; no I/O.

``SSEParser`` follows the WHATWG SSE rules: CR, LF or CRLF line ends, also split across
reads; several ``data:`` lines joined with ``\\n``; ``: comment`` lines reported on their
own so the caller can see a keep-alive; ``data: [DONE]`` as its own kind. The events feed
``bench.api.stream.StreamAccumulator``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

DATA = "data"
COMMENT = "comment"
DONE = "done"
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    """One parsed event. ``kind`` is DATA, COMMENT or DONE; ``data`` is the payload text."""

    kind: str
    data: str
    event: str | None = None  # the ``event:`` field, when a server sends one


class SSEParser:
    """Incremental SSE parser: ``feed(bytes) -> [SSEEvent]``, then ``finish()`` at end of stream."""

    __slots__ = ("_buf", "_data", "_event", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] | None = None
        self._event: str | None = None
        self._skip_lf = False  # the last read ended in CR: a leading LF belongs to it
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Events completed by ``chunk`` (possibly none)."""
        if not self._started:
            chunk = self._strip_bom(chunk)
            if not self._started:
                return []
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            lines = _LINE_END.split(buf)
            self._skip_lf = buf.endswith(b"\r")
        else:
            lines = buf.split(b"\n")
            self._skip_lf = False
        self._buf = lines.pop()
        out: list[SSEEvent] = []
        for line in lines:
            self._line(line, out)
        return out

    def finish(self) -> list[SSEEvent]:
        """Flush at end of stream: a last line or event without its blank line still counts."""
        out: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _strip_bom(self, chunk: bytes) -> bytes:
        # A BOM may only open the stream; keep looking until 3 bytes are in.
        buf = self._buf + chunk
        if len(buf) < 3 and _BOM.startswith(buf):
            self._buf = buf
            return b""
        self._started = True
        self._buf = b""
        return buf[3:] if buf.startswith(_BOM) else buf

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line[0] == 0x3A:  # ":" comment / keep-alive
            out.append(SSEEvent(COMMENT, line[1:].decode("utf-8", "replace").strip()))
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # "id" and "retry" do not matter for a one-shot response stream.

    def _dispatch(self, out: list[SSEEvent]) -> None:
        data, event = self._data, self._event
        self._data, self._event = None, None
        if data is None:
            return
        text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace")
        if len(text) < 16 and text.strip() == "[DONE]":
            out.append(SSEEvent(DONE, text, event))
        else:
            out.append(SSEEvent(DATA, text, event))

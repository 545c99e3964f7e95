"""Server-sent events in, one ``ChatResult`` out.

The events come from ``bench.api.sse.SSEParser``. ``StreamAccumulator`` applies
the clock rules of METRICS.md to decoded chunk objects: the first token is the
first event carrying generated output (content, reasoning text, a tool-call
delta), never a role-only or empty delta, a comment or the usage chunk. It also
collects text, tool-call fragments, usage, finish reasons and an in-band ``error``.

Parser and accumulator sit on the hot path of every streamed request (many streams per process), so
they avoid work per event that the result does not need: one ``json.loads`` per
event in the caller, list appends here, and strings joined once at the end.
``parse_completion`` does the same for a non-streaming response body. The accumulator does
no I/O; ``read_events`` is the client's measured read loop that feeds it, stamping each read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.api.catalog import parse_int, to_decimal
from bench.api.sse import DATA, DONE, SSEEvent, SSEParser
from bench.records import NS_PER_MS, ChatResult, Clocks, ToolCall, Usage


# ---------------------------------------------------------------- usage
def parse_usage(raw: dict[str, Any]) -> Usage:
    """The ``usage`` object of a chunk or response (API.md section 5.4)."""
    prompt_details = raw.get("prompt_tokens_details")
    if not isinstance(prompt_details, dict):
        prompt_details = {}
    completion_details = raw.get("completion_tokens_details")
    if not isinstance(completion_details, dict):
        completion_details = {}
    is_byok = raw.get("is_byok")
    return Usage(
        prompt_tokens=parse_int(raw.get("prompt_tokens")),
        completion_tokens=parse_int(raw.get("completion_tokens")),
        reasoning_tokens=parse_int(completion_details.get("reasoning_tokens")),
        cached_tokens=parse_int(prompt_details.get("cached_tokens")),
        cache_write_tokens=parse_int(prompt_details.get("cache_write_tokens")),
        total_tokens=parse_int(raw.get("total_tokens")),
        cost_usd=to_decimal(raw.get("cost")),
        is_byok=is_byok if isinstance(is_byok, bool) else None,
    )


def web_search_requests(raw_usage: dict[str, Any]) -> int | None:
    """Server-side web searches billed in a usage object (new and old key names)."""
    for key in ("server_tool_use_details", "server_tool_use"):
        details = raw_usage.get(key)
        if isinstance(details, dict):
            return parse_int(details.get("web_search_requests"))
    return None


# ---------------------------------------------------------------- stream accumulation
def _reasoning_detail_text(details: object) -> str:
    """Readable text in ``reasoning_details`` (text or summary); encrypted blobs are not text."""
    if not isinstance(details, list):
        return ""
    parts = []
    for d in details:
        if isinstance(d, dict):
            text = d.get("text") or d.get("summary")
            if isinstance(text, str) and text:
                parts.append(text)
    return "".join(parts)


@dataclass(slots=True)
class _ToolCallParts:
    id: str | None
    name: str | None
    arguments: list[str]


class StreamAccumulator:
    """Fold decoded stream chunks into a ``ChatResult``, stamping the METRICS.md clocks.

    The caller stamps ``t_ns`` with ``time.perf_counter_ns()`` when the bytes that
    carried an event were read, and calls ``on_bytes`` for every read (the first
    one, comment or not, is the first byte).
    """

    def __init__(self, clocks: Clocks) -> None:
        self.clocks = clocks
        self.result = ChatResult(clocks=clocks)
        self.raw_usage: dict[str, Any] | None = None  # the last usage object as sent
        self.done = False  # saw ``[DONE]``
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._tools: dict[int, _ToolCallParts] = {}
        self._last_tool_index = -1
        self._whole_body = False  # set by on_body: the result is already complete
        self.on_identity: Callable[[str], None] | None = None  # called once the stream names its id

    def on_bytes(self, t_ns: int) -> None:
        if self.clocks.t_first_byte is None:
            self.clocks.t_first_byte = t_ns

    def on_done(self, t_ns: int) -> None:
        """``[DONE]`` or the end of the connection, whichever comes first."""
        self.done = True
        if self.clocks.t_done is None:
            self.clocks.t_done = t_ns

    def on_body(self, payload: dict[str, Any], t_ns: int) -> None:
        """A whole non-streaming body (``stream: false``, or a server that ignored ``stream``)."""
        status = self.result.http_status
        self.result = parse_completion(payload, self.clocks, t_ns)
        self.result.http_status = status
        self.result.saw_done = True  # a body that parsed as a whole JSON object is complete
        self._whole_body = True
        self.on_done(t_ns)

    def on_event(self, payload: dict[str, Any], t_ns: int) -> None:
        """One decoded ``data:`` chunk."""
        r = self.result
        r.events += 1
        if r.generation_id is None:
            self._identity(payload)
        output = answer = False
        choices = payload.get("choices")
        if choices:
            for choice in choices:
                if choice.__class__ is not dict:
                    continue
                o, a = self._choice(choice, r)
                output |= o
                answer |= a
        if "usage" in payload or "timings" in payload or "error" in payload:
            self._trailer(payload, r)
        if output or answer:
            self._stamp(t_ns, answer)

    def _identity(self, payload: dict[str, Any]) -> None:
        r = self.result
        r.generation_id = payload.get("id") or None
        r.served_model = r.served_model or payload.get("model")
        r.provider = r.provider or payload.get("provider")
        r.system_fingerprint = r.system_fingerprint or payload.get("system_fingerprint")
        if r.generation_id is not None and self.on_identity is not None:
            self.on_identity(r.generation_id)

    def _choice(self, choice: dict[str, Any], r: ChatResult) -> tuple[bool, bool]:
        output = answer = False
        delta = choice.get("delta")
        if delta:
            content = delta.get("content")
            if content and isinstance(content, str):
                self._content.append(content)
                answer = True
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if not reasoning and delta.get("reasoning_details"):
                reasoning = _reasoning_detail_text(delta["reasoning_details"])
            if reasoning and isinstance(reasoning, str):
                self._reasoning.append(reasoning)
                output = True
            if delta.get("tool_calls"):
                self._tool_fragments(delta["tool_calls"])
                answer = True
            if delta.get("refusal"):
                answer = True
        finish = choice.get("finish_reason")
        if finish:
            r.finish_reason = finish
            r.native_finish_reason = choice.get("native_finish_reason") or r.native_finish_reason
        return output, answer

    def _trailer(self, payload: dict[str, Any], r: ChatResult) -> None:
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self.raw_usage = usage
            r.usage = parse_usage(usage)
        timings = payload.get("timings")
        if isinstance(timings, dict):
            r.server_timings = timings
        truth = payload.get("x_orbench")  # the sandbox's own clocks (benchmarks compare with them)
        if isinstance(truth, dict):
            r.sandbox_clock = truth
        error = payload.get("error")
        if error is not None:
            r.stream_error = error if isinstance(error, dict) else {"message": str(error)}

    def _stamp(self, t_ns: int, answer: bool) -> None:
        c = self.clocks
        if c.t_first_token is None:
            c.t_first_token = t_ns
        elif c.t_last_token is not None:
            c.chunk_gaps_ms.append((t_ns - c.t_last_token) / NS_PER_MS)
        c.t_last_token = t_ns
        if answer and c.t_first_answer is None:
            c.t_first_answer = t_ns

    def _tool_fragments(self, fragments: list[dict[str, Any]]) -> None:
        for frag in fragments:
            if not isinstance(frag, dict):
                continue
            index = self._tool_index(frag)
            fn = frag.get("function") or {}
            parts = self._tools.get(index)
            if parts is None:
                parts = self._tools[index] = _ToolCallParts(None, None, [])
            parts.id = parts.id or frag.get("id")
            parts.name = parts.name or fn.get("name")
            args = fn.get("arguments")
            if args:
                parts.arguments.append(args if isinstance(args, str) else str(args))
            self._last_tool_index = index

    def _tool_index(self, frag: dict[str, Any]) -> int:
        index = frag.get("index")
        if isinstance(index, int):
            return index
        # Some servers omit ``index``: a fragment with a new id opens a new call.
        new_id = frag.get("id")
        if self._last_tool_index < 0 or (new_id and all(p.id != new_id for p in self._tools.values())):
            return len(self._tools)
        return self._last_tool_index

    def finish(self) -> ChatResult:
        """The result so far (call at the end, or on an error for the partial result)."""
        r = self.result
        if self._whole_body:
            return r
        r.content = "".join(self._content)
        r.reasoning = "".join(self._reasoning)
        r.tool_calls = [
            ToolCall(index=i, id=p.id, name=p.name, arguments="".join(p.arguments))
            for i, p in sorted(self._tools.items())
        ]
        return r


# ---------------------------------------------------------------- non-streaming
def parse_completion(payload: dict[str, Any], clocks: Clocks, t_ns: int | None = None) -> ChatResult:
    """A non-streaming chat completion body as a ChatResult.

    ``t_ns`` is when the body was read; it becomes ``t_last_token`` when the body
    carries output, so e2e is defined while TTFT stays NULL (there is no stream).
    A provider error after partial output arrives as ``choices[0].error`` inside an
    HTTP 200 body (API.md section 5.4); it lands in ``stream_error`` like a stream's.
    """
    r = ChatResult(clocks=clocks)
    r.generation_id = payload.get("id") or None
    r.served_model = payload.get("model")
    r.provider = payload.get("provider")
    r.system_fingerprint = payload.get("system_fingerprint")
    choices = payload.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    _message_into(r, choice.get("message") or {})
    r.finish_reason = choice.get("finish_reason")
    r.native_finish_reason = choice.get("native_finish_reason")
    usage = payload.get("usage")
    r.usage = parse_usage(usage) if isinstance(usage, dict) else None
    timings = payload.get("timings")
    r.server_timings = timings if isinstance(timings, dict) else None
    error = payload.get("error") or choice.get("error")
    if error:
        r.stream_error = error if isinstance(error, dict) else {"message": str(error)}
    if t_ns is not None and (r.content or r.reasoning or r.tool_calls):
        clocks.t_last_token = t_ns
    return r


def _message_into(r: ChatResult, message: dict[str, Any]) -> None:
    content = message.get("content")
    r.content = content if isinstance(content, str) else ""
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if not reasoning:
        reasoning = _reasoning_detail_text(message.get("reasoning_details"))
    r.reasoning = reasoning if isinstance(reasoning, str) else ""
    calls = message.get("tool_calls") or []
    r.tool_calls = [
        ToolCall(
            index=i,
            id=c.get("id"),
            name=(c.get("function") or {}).get("name"),
            arguments=(c.get("function") or {}).get("arguments") or "",
        )
        for i, c in enumerate(calls)
        if isinstance(c, dict)
    ]


async def read_events(response: httpx.Response, acc: StreamAccumulator) -> None:
    """Feed a streamed body to the parser and accumulator, stamping each read.

    After ``[DONE]`` the rest of the body is drained unparsed, so the connection
    can go back to the pool instead of being torn down (a new TLS handshake would
    land in the next request's TTFT).
    """
    clock = time.perf_counter_ns
    parser = SSEParser()
    clocks = acc.clocks
    # aiter_raw skips httpx's decoder and re-chunker layers when there is nothing to decode
    # (a body already read into memory, as a mocked one is, only aiter_bytes can replay).
    raw = not response.headers.get("content-encoding") and not response.is_stream_consumed
    reads = response.aiter_raw() if raw else response.aiter_bytes()
    # The lean transport knows when each part's bytes were read from the socket
    # (bench/api/transport.py); other transports: when the part reaches us.
    stream = response.extensions.get("orbench_body") if raw else None
    async for chunk in reads:
        t = getattr(stream, "arrival_ns", None) or clock()
        if clocks.t_first_byte is None:
            clocks.t_first_byte = t
        if not acc.done:
            _apply(parser.feed(chunk), acc, t)
    if not acc.done:
        t = clock()
        _apply(parser.finish(), acc, t)
        acc.on_done(t)


def connection_facts(response: httpx.Response, result: ChatResult) -> None:
    """How the request got its connection, as our transports report it (None when unknown)."""
    ext = response.extensions
    reused = ext.get("orbench_conn_reused")
    result.conn_reused = reused if isinstance(reused, bool) else None
    closed = ext.get("orbench_closed_idle")
    result.closed_idle = closed if isinstance(closed, int) else 0
    connect_ms = ext.get("orbench_connect_ms")
    result.connect_ms = float(connect_ms) if isinstance(connect_ms, (int, float)) else None


def _apply(events: list[SSEEvent], acc: StreamAccumulator, t: int) -> None:
    loads = json.loads
    for ev in events:
        kind = ev.kind
        if kind == DATA:
            try:
                payload = loads(ev.data)
            except ValueError:
                continue  # not JSON (a generic server's ping): nothing to measure
            if isinstance(payload, dict):
                acc.on_event(payload, t)
        elif kind == DONE:
            acc.result.saw_done = True
            acc.on_done(t)
            return

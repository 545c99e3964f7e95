"""Delivery of a planned chat completion: SSE pacing, the JSON body, and billing.

Owns the output side of ``POST /chat/completions``. A stream is paced on absolute
``loop.time()`` deadlines: the first output token at arrival + TTFT, token k at
+ k/decode_tps, so the decode rate never drifts; events already due go out together in
one write, each still its own HTTP chunk. Keep-alive comments and the role-only chunk
precede the first token as the provider profile says. A non-streamed answer is sent
once the simulated generation would have ended. Every generation is recorded in the
state (and billed for the tokens it produced) before its last bytes are written.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from bench.sandbox import sim
from bench.sandbox.caching import CacheUse, cost_parts
from bench.sandbox.catalog import Endpoint, Model
from bench.sandbox.faults import (
    DEFAULT_AFTER_TOKENS,
    DEFAULT_SLOW_HEADERS_S,
    DEFAULT_STALL_S,
    Fault,
    stream_error_object,
)
from bench.sandbox.httpwire import ChunkedStream, Request, json_response, reset_connection
from bench.sandbox.sse import DONE, PROCESSING_COMMENT, ChunkEncoder
from bench.sandbox.state import Generation, SandboxState


@dataclass
class Exchange:
    """Everything decided about one request before delivery starts."""

    req: Request
    body: dict[str, Any]
    gen_id: str
    created: int
    model: Model
    endpoint: Endpoint
    router: str | None
    attempts: list[dict[str, Any]]
    plan: sim.Plan
    prompt_tokens: int
    ttft_ms: float  # unscaled
    fault: Fault | None  # an active stream fault for this endpoint
    cache: CacheUse | None = None  # what the prompt read from / wrote to the endpoint's cache


@dataclass
class Progress:
    """What a delivery has sent so far, with the server's true clocks."""

    tokens: int = 0
    first_perf_ns: int | None = None
    first_unix_ns: int | None = None
    last_perf_ns: int | None = None
    last_unix_ns: int | None = None

    def stamp(self, perf: int | None = None, unix: int | None = None) -> None:
        """Record output sent at ``perf``/``unix`` (default: now)."""
        perf = time.perf_counter_ns() if perf is None else perf
        unix = time.time_ns() if unix is None else unix
        if self.first_perf_ns is None:
            self.first_perf_ns, self.first_unix_ns = perf, unix
        self.last_perf_ns, self.last_unix_ns = perf, unix


async def sleep_until(deadline: float) -> None:
    """Sleep to an absolute ``loop.time()`` deadline (no relative-delay drift)."""
    loop = asyncio.get_running_loop()
    if deadline <= loop.time():
        return
    waiter = loop.create_future()
    handle = loop.call_at(deadline, _wake, waiter)
    try:
        await waiter
    finally:
        handle.cancel()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Delivery:
    """Sends planned generations and records them, for one sandbox server."""

    def __init__(self, state: SandboxState, time_scale: float, new_upstream_id: Callable[[], str]) -> None:
        self.state = state
        self.time_scale = time_scale
        self._new_upstream_id = new_upstream_id

    # --- streaming delivery -------------------------------------------------------------------

    async def stream(self, ex: Exchange, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        out = ChunkedStream(reader, writer)
        enc = ChunkEncoder(ex.gen_id, ex.created, ex.model.response_model, ex.endpoint.provider_name,
                           sim.reasoning_format(ex.model))
        origin = await self._origin(ex)
        headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                   ("X-Generation-Id", ex.gen_id)]
        progress = Progress()
        out.start(200, headers, ex.req.keep_alive)
        t_first = origin + ex.ttft_ms / 1000 * self.time_scale
        if not await self._preamble(out, enc, ex, origin, t_first):
            return self._cancelled(ex, progress)
        outcome = await self._pace(ex, out, enc, progress, t_first)
        if outcome == "cancelled":
            return self._cancelled(ex, progress)
        if outcome == "fault":
            return await self._break_stream(ex, out, enc, progress)
        return await self._end_stream(ex, out, enc, progress)

    async def _pace(self, ex: Exchange, out: ChunkedStream, enc: ChunkEncoder, progress: Progress,
                    t_first: float) -> str:
        """Emit the planned events on their deadlines: "done", "cancelled" or "fault".

        Token k (0-based, counting every token an event carries) is due at
        ``t_first + k / decode_tps``; events already due go out together in one flush.
        """
        loop = asyncio.get_running_loop()
        step = self.time_scale / ex.endpoint.decode_tps
        after = _fault_after(ex.fault)
        fresh_output = False  # queued output not yet flushed (for the first/last token stamps)
        for n_tokens, data in _events(ex.plan, enc, ex.endpoint.profile.two_token_event_every):
            if after is not None and progress.tokens >= after:
                after = None
                if not await _flush(out, progress, fresh_output):
                    return "cancelled"
                fresh_output = False
                assert ex.fault is not None  # _fault_after gives a token count only for a fault
                if ex.fault.name != "stall":
                    return "fault"
                stall = ex.fault.number("seconds", DEFAULT_STALL_S)
                await asyncio.sleep(stall)
                t_first += stall
            if data is not None:
                deadline = t_first + (progress.tokens + n_tokens - 1) * step
                if deadline > loop.time() or out.queued >= out.MAX_QUEUED:
                    if not await _flush(out, progress, fresh_output):
                        return "cancelled"
                    fresh_output = False
                    if deadline > loop.time():
                        await sleep_until(deadline)
                    else:
                        await asyncio.sleep(0)  # zero-delay streams take turns
                out.queue(data)
                fresh_output = True
            progress.tokens += n_tokens
        if not await _flush(out, progress, fresh_output):
            return "cancelled"
        if after is not None and ex.fault is not None and ex.fault.name != "stall":
            return "fault"  # the answer was shorter than ``after``
        return "done"

    async def _origin(self, ex: Exchange) -> float:
        """loop.time() the schedule counts from: arrival, or after a ``slow_headers`` delay."""
        if ex.fault is not None and ex.fault.name == "slow_headers":
            await asyncio.sleep(ex.fault.number("seconds", DEFAULT_SLOW_HEADERS_S))
            return asyncio.get_running_loop().time()
        return ex.req.received_loop_time

    async def _preamble(self, out: ChunkedStream, enc: ChunkEncoder, ex: Exchange, origin: float,
                        t_first: float) -> bool:
        """Keep-alive comments spread over the wait, then the role-only chunk."""
        profile = ex.endpoint.profile
        role_at = max(origin, t_first - profile.role_chunk_lead_ms / 1000 * self.time_scale)
        n = profile.processing_comments
        for k in range(n):
            if not await _wait_until(out, origin + k * (role_at - origin) / n):
                return False
            out.queue(PROCESSING_COMMENT)
        if not await _wait_until(out, role_at):
            return False
        out.queue(enc.role())
        return True

    async def _end_stream(self, ex: Exchange, out: ChunkedStream, enc: ChunkEncoder, progress: Progress) -> bool:
        finish = ex.plan.finish_reason
        out.queue(enc.finish(finish, sim.native_finish_reason(ex.model, finish)))
        usage = self._record(ex, progress, finish, streamed=True)
        out.queue(enc.usage(usage, ex.endpoint.profile.usage_chunk, {"x_orbench": self._timing_extra(ex, progress)}))
        out.queue(DONE)
        out.finish()
        await out.drain()
        return ex.req.keep_alive

    async def _break_stream(self, ex: Exchange, out: ChunkedStream, enc: ChunkEncoder, progress: Progress) -> bool:
        """Apply ``stream_error`` (error chunk + [DONE]) or ``reset`` (TCP reset)."""
        assert ex.fault is not None
        if ex.fault.name == "reset":
            self._record(ex, progress, None, streamed=True)
            out.reset()
            return False
        usage = self._record(ex, progress, "error", streamed=True)
        out.queue(enc.error(stream_error_object(ex.fault, ex.endpoint.provider_name), usage))
        out.queue(DONE)
        out.finish()
        await out.drain()
        return ex.req.keep_alive

    def _cancelled(self, ex: Exchange, progress: Progress) -> bool:
        self._record(ex, progress, None, streamed=True, cancelled=True)
        return False

    def _timing_extra(self, ex: Exchange, progress: Progress) -> dict[str, Any]:
        return {
            "simulated": True,
            "t_request_perf_ns": ex.req.received_perf_ns,  # when the request's bytes were in
            "t_first_token_unix_ns": progress.first_unix_ns,
            "t_first_token_perf_ns": progress.first_perf_ns,
            "t_last_token_unix_ns": progress.last_unix_ns,
            "t_last_token_perf_ns": progress.last_perf_ns,
            "ttft_target_ms": round(ex.ttft_ms * self.time_scale, 3),
            "decode_tps": ex.endpoint.decode_tps / self.time_scale if self.time_scale else None,
        }

    # --- non-streaming delivery -----------------------------------------------------------------

    async def complete(self, ex: Exchange, writer: asyncio.StreamWriter) -> bool:
        origin = await self._origin(ex)
        scale = self.time_scale
        t_first = origin + ex.ttft_ms / 1000 * scale
        step = scale / ex.endpoint.decode_tps
        total = ex.plan.completion_tokens
        fault = ex.fault
        if fault is not None and fault.name == "stall":
            t_first += fault.number("seconds", DEFAULT_STALL_S)
        if fault is not None and fault.name in ("reset", "stream_error"):
            total = min(total, _fault_after(fault) or 0)
        await sleep_until(t_first + max(0, total - 1) * step)
        progress = Progress(tokens=total)
        if fault is not None and fault.name == "reset":
            self._record(ex, progress, None, streamed=False)
            reset_connection(writer)
            return False
        finish = "error" if fault is not None and fault.name == "stream_error" else ex.plan.finish_reason
        usage = self._record(ex, progress, finish, streamed=False, latency_ms=(t_first - origin) * 1000,
                             generation_ms=(t_first - origin + max(0, total - 1) * step) * 1000)
        writer.write(json_response(200, self._completion_body(ex, usage, finish),
                                   [("X-Generation-Id", ex.gen_id)], ex.req.keep_alive))
        return ex.req.keep_alive

    def _completion_body(self, ex: Exchange, usage: dict[str, Any], finish: str) -> dict[str, Any]:
        plan = ex.plan
        reasoning = "".join(plan.reasoning) if plan.reasoning and plan.reasoning_visible else None
        message = {
            "role": "assistant",
            "content": None if plan.tool_calls else plan.text,
            "refusal": None,
            "reasoning": reasoning,
            "reasoning_details": [{"type": "reasoning.text", "text": reasoning,
                                   "format": sim.reasoning_format(ex.model), "index": 0}] if reasoning else [],
            "tool_calls": [{"index": i, "id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": "".join(c.pieces)}}
                           for i, c in enumerate(plan.tool_calls)],
        }
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish,
                                  "native_finish_reason": sim.native_finish_reason(ex.model, finish),
                                  "message": message}
        if finish == "error" and ex.fault is not None:
            choice["error"] = stream_error_object(ex.fault, ex.endpoint.provider_name)
        return {"id": ex.gen_id, "provider": ex.endpoint.provider_name, "model": ex.model.response_model,
                "object": "chat.completion", "created": ex.created, "choices": [choice],
                "system_fingerprint": None, "service_tier": "default", "usage": usage}

    # --- accounting ---------------------------------------------------------------------------

    def _record(
        self, ex: Exchange, progress: Progress, finish: str | None, *, streamed: bool,
        cancelled: bool = False, latency_ms: float | None = None, generation_ms: float | None = None,
    ) -> dict[str, Any]:
        """Record the generation (tokens so far are billed) and return its ``usage`` object."""
        reasoning = min(progress.tokens, len(ex.plan.reasoning))
        usage = usage_payload(ex.endpoint, ex.prompt_tokens, progress.tokens, reasoning, ex.cache)
        arrival = ex.req.received_perf_ns
        if progress.first_perf_ns is not None:
            latency_ms = (progress.first_perf_ns - arrival) / 1e6
            generation_ms = ((progress.last_perf_ns or arrival) - arrival) / 1e6
        upstream = self._new_upstream_id()
        attempts = [*ex.attempts, attempt_record(ex.model, ex.endpoint, 200, latency_ms, upstream)]
        self.state.record(Generation(
            id=ex.gen_id, model=ex.model.response_model, provider_name=ex.endpoint.provider_name,
            provider_tag=ex.endpoint.tag, created=ex.created, streamed=streamed,
            prompt_tokens=ex.prompt_tokens, completion_tokens=progress.tokens, reasoning_tokens=reasoning,
            cost_usd=usage["cost"], finish_reason=finish,
            native_finish_reason=sim.native_finish_reason(ex.model, finish),
            latency_ms=latency_ms, generation_time_ms=generation_ms,
            ttft_target_ms=ex.ttft_ms * self.time_scale, provider_responses=attempts,
            router=ex.router, cancelled=cancelled, fault=ex.fault.spec() if ex.fault else None,
            upstream_id=upstream, origin=ex.req.header("http-referer"), user_agent=ex.req.header("user-agent"),
            external_user=ex.body.get("user") if isinstance(ex.body.get("user"), str) else None,
            t_request_perf_ns=arrival, t_first_token_perf_ns=progress.first_perf_ns,
            t_first_token_unix_ns=progress.first_unix_ns, t_last_token_perf_ns=progress.last_perf_ns,
            t_last_token_unix_ns=progress.last_unix_ns, cached_tokens=usage["prompt_tokens_details"]["cached_tokens"],
        ))
        return usage


def usage_payload(endpoint: Endpoint, prompt_tokens: int, completion_tokens: int,
                  reasoning_tokens: int, cache: CacheUse | None = None) -> dict[str, Any]:
    """The ``usage`` object (API.md 5.4) with ``cost`` = catalog price x tokens (Decimal), cache
    reads and writes at their own prices (bench.sandbox.caching)."""
    prompt_cost, completion_cost, total = cost_parts(endpoint, prompt_tokens, completion_tokens, cache)
    cached, written = (cache.cached_tokens, cache.cache_write_tokens) if cache is not None else (0, 0)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cost": total,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written, "audio_tokens": 0,
                                  "video_tokens": 0},
        "cost_details": {"upstream_inference_cost": total, "upstream_inference_prompt_cost": prompt_cost,
                         "upstream_inference_completions_cost": completion_cost},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens, "image_tokens": 0, "audio_tokens": 0},
    }


def attempt_record(model: Model, endpoint: Endpoint, status: int, latency_ms: float | None,
                   upstream: str) -> dict[str, Any]:
    return {"provider_name": endpoint.provider_name, "status": status,
            "latency": None if latency_ms is None else round(latency_ms),
            "endpoint_id": endpoint.endpoint_uuid, "id": upstream, "model_permaslug": model.canonical_slug,
            "is_byok": False, "routed_service_tier": None}


async def _wait_until(out: ChunkedStream, deadline: float) -> bool:
    """Flush what is queued and sleep, if ``deadline`` is still ahead; False if the client left."""
    if deadline > asyncio.get_running_loop().time():
        if not out.flush():
            return False
        await out.drain()
        await sleep_until(deadline)
    return True


async def _flush(out: ChunkedStream, progress: Progress, stamp: bool) -> bool:
    """Send what is queued; stamp the server clocks when it carried output tokens.

    The stamp is read just before the write, not after it: once the bytes are in the kernel the
    client (another process or thread) may read them before this thread runs again, and a server
    stamp later than the client's would make a client's measured overhead negative."""
    perf, unix = time.perf_counter_ns(), time.time_ns()
    if not out.flush():
        return False
    if stamp:
        progress.stamp(perf, unix)
    await out.drain()
    return True


def _fault_after(fault: Fault | None) -> int | None:
    if fault is None or fault.name not in ("stream_error", "reset", "stall"):
        return None
    return int(fault.number("after", DEFAULT_AFTER_TOKENS))


def _events(plan: sim.Plan, enc: ChunkEncoder, two_every: int) -> Iterator[tuple[int, bytes | None]]:
    """(tokens carried, event bytes) in emission order; None = tokens that pass silently."""
    if plan.reasoning and not plan.reasoning_visible:
        yield len(plan.reasoning), None
    elif plan.reasoning:
        yield from _text_events(plan.reasoning, enc.reasoning, two_every)
    yield from _text_events(plan.content, enc.content, two_every)
    for index, call in enumerate(plan.tool_calls):
        yield 1, enc.tool_head(index, call.id, call.name)
        for piece in call.pieces:
            yield 1, enc.tool_args(index, piece)


def _text_events(tokens: list[str], make: Any, two_every: int) -> Iterator[tuple[int, bytes]]:
    i, n_event = 0, 0
    while i < len(tokens):
        n_event += 1
        take = 2 if two_every and n_event % two_every == 0 and i + 1 < len(tokens) else 1
        yield take, make("".join(tokens[i:i + take]))
        i += take

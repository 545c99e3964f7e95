"""Typed records shared by the client, the runner and the store.

``ChatResult`` is what one HTTP exchange produced (client level, clocks in
``perf_counter_ns``). ``RequestRow`` is one planned request as stored: the
runner fills it from a ChatResult (or from an error) and the store writes it.
Names carry units; a missing measurement is ``None``, never 0 (METRICS.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

NS_PER_MS = 1_000_000

OUTCOMES = (
    "ok",
    "rate_limited",
    "insufficient_credits",
    "auth",
    "timeout",
    "provider_error",
    "bad_request",
    "network",
    "cancelled",
    "budget_skipped",
    "truncated",
    "not_run",
    "skipped",
    "started",
)
"""Every outcome a row may end in. ``not_run`` = the run stopped before it
(402, 401); ``skipped`` = its model x provider was dropped after N failures in a row;
``truncated`` = a 200 stream that ended with no terminal signal (no ``[DONE]``, no
``finish_reason``, no usage); ``started`` = journaled while in flight, before any
result (a crash leaves it; a resume looks its cost up and sends it again)."""

FINISHED_OUTCOMES = frozenset(
    {"ok", "rate_limited", "insufficient_credits", "auth", "timeout", "provider_error",
     "bad_request", "network", "truncated"}
)
"""Outcomes of requests that were sent and answered: never sent again on resume."""

RERUNNABLE_OUTCOMES = ("not_run", "cancelled", "skipped", "budget_skipped", "started")
"""Outcomes of requests that were never really measured: a resume runs them again
(a ``cancelled`` row that already carries the server's usage is the exception: it was
answered and paid, so it counts as settled, see ``is_settled``)."""


def is_settled(outcome: str | None, token_source: str | None) -> bool:
    """A row that must never be sent again: answered (maybe paid), or cancelled after its usage."""
    if outcome is None:
        return False
    if outcome in FINISHED_OUTCOMES:
        return True
    return outcome == "cancelled" and token_source == "usage"


@dataclass
class Usage:
    """Token counts and cost from the server's final ``usage`` object."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: Decimal | None = None
    is_byok: bool | None = None


@dataclass
class ToolCall:
    """A complete tool call assembled from streamed fragments."""

    index: int
    id: str | None
    name: str | None
    arguments: str  # JSON text as the model produced it (may be invalid JSON)


@dataclass
class Clocks:
    """perf_counter_ns stamps of one request (METRICS.md 'Clocks')."""

    t0: int
    t_headers: int | None = None
    t_first_byte: int | None = None
    t_first_token: int | None = None
    t_first_answer: int | None = None
    t_last_token: int | None = None
    t_done: int | None = None
    chunk_gaps_ms: list[float] = field(default_factory=list)
    """Gaps between successive output-carrying events ('inter-chunk gap', not ITL)."""

    def ms(self, t: int | None) -> float | None:
        return None if t is None else (t - self.t0) / NS_PER_MS


@dataclass
class ChatResult:
    """Everything one successful (or partly successful) chat exchange produced."""

    clocks: Clocks
    http_status: int | None = None
    generation_id: str | None = None
    served_model: str | None = None
    provider: str | None = None
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    usage: Usage | None = None
    server_timings: dict[str, Any] | None = None  # llama.cpp ``timings``
    sandbox_clock: dict[str, Any] | None = None  # the sandbox's true first/last-token stamps
    system_fingerprint: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    attempts: int = 1
    failed_attempts: list[str] = field(default_factory=list)  # outcome of each retried attempt
    retry_reasons: list[str] = field(default_factory=list)  # why sends were repeated (RETRY_REASONS)
    closed_idle: int = 0  # pooled connections found closed by the server and dropped before sending
    stream_error: dict[str, Any] | None = None  # the in-stream ``error`` object, if any
    events: int = 0  # data events seen (not tokens!)
    saw_done: bool = False  # the stream sent ``data: [DONE]``
    connect_ms: float | None = None  # TCP (+TLS) setup of the final attempt; None when reused
    conn_reused: bool | None = None  # the final attempt went over a pooled connection

    @property
    def has_output(self) -> bool:
        """Generated output arrived (a token clock, content or a tool call): a retry would pay twice."""
        c = self.clocks
        return c.t_first_token is not None or c.t_last_token is not None or bool(self.content or self.tool_calls)

    @property
    def terminated(self) -> bool:
        """The stream ended on a terminal signal: ``[DONE]``, a ``finish_reason`` or usage."""
        return self.saw_done or self.finish_reason is not None or self.usage is not None


def derive_times(clocks: Clocks, output_tokens: int | None) -> dict[str, float | None]:
    """METRICS.md derived times in ms and rates in tokens/s; None when undefined."""
    t0 = clocks.t0
    first, last = clocks.t_first_token, clocks.t_last_token
    out: dict[str, float | None] = {
        "ttfb_ms": clocks.ms(clocks.t_first_byte),
        "ttft_ms": clocks.ms(first),
        "ttfa_ms": clocks.ms(clocks.t_first_answer),
        "e2e_ms": clocks.ms(last),
        "tpot_ms": None,
        "decode_tps": None,
        "e2e_tps": None,
    }
    if output_tokens is not None and last is not None and last > t0 and output_tokens > 0:
        out["e2e_tps"] = output_tokens / ((last - t0) / 1e9)
    if output_tokens is not None and output_tokens >= 2 and first is not None and last is not None:
        span_ns = last - first
        out["tpot_ms"] = span_ns / NS_PER_MS / (output_tokens - 1)
        if span_ns > 0:
            out["decode_tps"] = (output_tokens - 1) / (span_ns / 1e9)
    return out


@dataclass
class RequestRow:
    """One planned request as stored in the ``requests`` table.

    The store's columns are exactly these fields, in this order.
    """

    run_id: str
    request_idx: int  # position in the run's plan; (run_id, request_idx) is the key
    model: str
    provider_variant: str  # name of the routing variant ("default" when none)
    endpoint: str  # "openrouter" or a named OpenAI-compatible endpoint
    case_id: str
    repeat: int  # -1 for the warm-up request
    is_warmup: bool
    outcome: str | None = None  # None while planned but not finished
    served_model: str | None = None
    provider: str | None = None
    http_status: int | None = None
    attempts: int | None = None
    started_at: str | None = None  # ISO-8601 UTC
    t_start_ms: float | None = None  # t0 relative to the run's start (timeline)
    ttfb_ms: float | None = None
    ttft_ms: float | None = None
    ttfa_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    done_ms: float | None = None
    decode_tps: float | None = None
    e2e_tps: float | None = None
    chunk_gaps_ms: list[float] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    token_source: str | None = None  # usage | generation | estimate
    cost_usd: Decimal | None = None
    list_cost_usd: Decimal | None = None
    cost_source: str | None = None  # reported | list | None
    max_cost_usd: Decimal | None = None  # the ceiling reserved for the budget
    generation_id: str | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    error: str | None = None
    error_code: str | None = None
    server_latency_ms: float | None = None  # /generation latency or llama.cpp prompt_ms
    server_generation_ms: float | None = None  # /generation generation_time or predicted_ms
    output_text: str | None = None
    tool_calls_json: str | None = None
    passed: bool | None = None
    score: float | None = None
    check_detail: str | None = None  # JSON list of per-check results
    session: int = 0  # 0 = the original run, k = the k-th --resume; the newest row of a request_idx wins
    retries_429: int | None = None  # attempts that got 429 before the final one (counted, never timed)
    rev: int = 0  # journal revision of this request within its session: the highest wins
    spend_usd: Decimal | None = None  # money this session's attempts count against the budget
    judge_calls: int | None = None  # judge checks of this answer (booked on the run, apart)
    judge_prompt_tokens: int | None = None
    judge_completion_tokens: int | None = None
    judge_cost_usd: Decimal | None = None
    connect_ms: float | None = None  # TCP (+TLS) connect of the final attempt; NULL when reused
    conn_reused: bool | None = None  # False = a cold connection: its TTFT includes the connect
    is_probe: bool = False  # a calibration probe of synthetic prompts; always a warm-up too
    retry_reasons: str | None = None  # why sends were repeated, comma-separated (RETRY_REASONS); NULL: none
    conversation_id: str | None = None  # the conversation this turn belongs to (unique per model x variant)
    turn: int | None = None  # 1-based turn within its conversation; None outside conversations


PRICE_KEYS = (
    "prompt",
    "completion",
    "request",
    "image",
    "internal_reasoning",
    "input_cache_read",
    "input_cache_write",
    "web_search",
)
"""The per-unit prices of a catalog entry (USD per token; request, image and web_search per unit): the one
list, typed fields of ``bench.api.catalog.Pricing`` and columns of the ``catalog_prices`` snapshots."""

RETRY_REASONS = {
    "closed_idle": "the pooled connection picked for it had been closed by the server: dropped unused, "
                   "a fresh one taken (nothing resent)",
    "dropped_unsent": "sent on a reused connection the server had already closed (reset): resent at once on a "
                      "fresh connection, not a retry (the server cannot have read it)",
    "dropped": "a reused connection closed with no response after the request went out: resent at once on "
               "a fresh connection, counted as a retry (the server may have read it)",
}
"""The connection reasons in ``retry_reasons``; any other entry is the outcome of a retried attempt
(``rate_limited``, ``provider_error``, ``network``, ``timeout``), retried after a backoff."""


REQUEST_COLUMNS = [f.name for f in dataclasses.fields(RequestRow)]

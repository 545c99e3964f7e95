"""Spend control: reported spend plus every reservation in flight never passes the budget.

Each *attempt* reserves its worst case before it is sent: the first attempt when
the request is dispatched, every retry again before it goes out (a retry that does
not fit is not made). When a request ends, its reservations are released and what
it really put at risk is booked (``AttemptBook``): the reported cost (else the list
cost) of the final attempt, and the worst case of every attempt whose cost cannot
be known (a stream that started and then failed, a timeout, a cancellation). An
attempt the server refused with an HTTP error status before any stream is booked
at zero. Judge calls reserve and book the same way.

The worst case (``request_ceiling``) is a true upper bound for any tokenizer: a
token is at least one UTF-8 byte, so the prompt is bounded by the bytes of every
text the request carries plus an allowance per message for the chat template;
images are counted at ``IMAGE_TOKENS_BOUND`` tokens each plus the model's
per-image price. ``max_tokens`` is priced at the higher of the completion and
internal-reasoning prices, and the per-request fee is added.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bench.api.catalog import Pricing, effective_prices
from bench.errors import ProviderError
from bench.records import ChatResult

MESSAGE_ALLOWANCE_TOKENS = 32
"""Chat-template tokens per message (role markers, separators): generous for every template."""
REQUEST_ALLOWANCE_TOKENS = 64
"""Template tokens per request (BOS, the assistant turn opener, a default system prompt)."""
STRUCTURE_ALLOWANCE_TOKENS = 512
"""Extra template text providers wrap around tool definitions or a response schema."""
IMAGE_TOKENS_BOUND = 16_384
"""The largest per-image input token count a provider documents (Qwen2.5-VL at its default
max_pixels, 12,845,056 / 28²); OpenAI (<= 1,445 at high detail), Anthropic (~1,600) and
Gemini (258 per tile) stay below it."""

BOUND_DERIVATION = (
    "worst case per request = prompt bound x max(prompt, cache-write) price + max_tokens x max(completion, reasoning) "
    f"price + request fee; prompt bound = UTF-8 bytes of every text, tool and schema in the request "
    f"(a token is >= 1 byte in every tokenizer) + {MESSAGE_ALLOWANCE_TOKENS} per message + "
    f"{REQUEST_ALLOWANCE_TOKENS} per request (+{STRUCTURE_ALLOWANCE_TOKENS} with tools or a response "
    f"format); images at {IMAGE_TOKENS_BOUND:,} tokens each plus the per-image price; every retry "
    "reserves the worst case again"
)


@dataclass(frozen=True)
class PromptBound:
    tokens: int  # text + allowances, images excluded
    images: int


def prompt_bound(body: Mapping[str, Any]) -> PromptBound:
    """An upper bound on the prompt tokens of a chat request body, for any tokenizer."""
    messages: Sequence[Any] = body.get("messages") or []
    n_bytes, images = 0, 0
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        parts = [content] if isinstance(content, str) else content or []
        for part in parts:
            if isinstance(part, str):
                n_bytes += len(part.encode())
            elif isinstance(part, Mapping):
                if part.get("type") == "image_url":
                    images += 1
                else:  # text, or any other part: all its bytes
                    n_bytes += len(json.dumps(part, ensure_ascii=False).encode())
        for key in ("tool_calls", "name", "tool_call_id"):
            if message.get(key):
                n_bytes += len(json.dumps(message[key], ensure_ascii=False).encode())
    structure = 0
    for key in ("tools", "response_format", "functions"):
        if body.get(key):
            n_bytes += len(json.dumps(body[key], ensure_ascii=False).encode())
            structure = STRUCTURE_ALLOWANCE_TOKENS
    if isinstance(body.get("prompt"), str):  # a completions-style body
        n_bytes += len(body["prompt"].encode())
    tokens = n_bytes + MESSAGE_ALLOWANCE_TOKENS * len(messages) + REQUEST_ALLOWANCE_TOKENS + structure
    return PromptBound(tokens, images)


def request_ceiling(pricing: Pricing, body: Mapping[str, Any], max_tokens: int | None) -> Decimal | None:
    """The most one attempt of ``body`` can cost at ``pricing``; None when it cannot be bounded."""
    if pricing.variable or max_tokens is None:
        return None
    bound = prompt_bound(body)
    prompt_tokens = bound.tokens + bound.images * IMAGE_TOKENS_BOUND
    p = effective_prices(pricing, prompt_tokens)
    in_price = max(p["prompt"], p["input_cache_write"])  # a cache write can cost more than a read
    out_price = max(p["completion"], p["internal_reasoning"])
    image_fee = (pricing.image or Decimal(0)) * bound.images
    return prompt_tokens * in_price + max_tokens * out_price + p["request"] + image_fee


@dataclass
class Budget:
    limit_usd: Decimal | None
    spent_usd: Decimal = Decimal(0)
    reserved_usd: Decimal = Decimal(0)
    unknown_cost_requests: int = field(default=0)

    def try_reserve(self, ceiling_usd: Decimal | None) -> bool:
        """Reserve one attempt's ceiling; False if it could cross the limit."""
        if self.limit_usd is None:
            if ceiling_usd is not None:
                self.reserved_usd += ceiling_usd
            return True
        if ceiling_usd is None:
            # No price known (variable-price router, unpriced endpoint): without a
            # ceiling we cannot promise the budget holds, so such requests are refused.
            self.unknown_cost_requests += 1
            return False
        if self.spent_usd + self.reserved_usd + ceiling_usd > self.limit_usd:
            return False
        self.reserved_usd += ceiling_usd
        return True

    def settle(self, reserved_usd: Decimal, spent_usd: Decimal) -> None:
        """Release reservations and book what the attempts really put at risk."""
        self.reserved_usd -= reserved_usd
        self.spent_usd += spent_usd

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.limit_usd is None:
            return None
        return self.limit_usd - self.spent_usd - self.reserved_usd


@dataclass
class AttemptBook:
    """The reservations and the money at risk of one request's attempts (or one judge call)."""

    budget: Budget
    ceiling_usd: Decimal | None
    reserved_usd: Decimal = Decimal(0)
    at_risk_usd: Decimal = Decimal(0)  # failed attempts whose cost cannot be known
    attempts: int = 0
    settled: bool = False

    def reserve(self) -> bool:
        """Reserve the next attempt; False when it would cross the budget."""
        if not self.budget.try_reserve(self.ceiling_usd):
            return False
        self.attempts += 1
        self.reserved_usd += self.ceiling_usd or Decimal(0)
        return True

    def failed_attempt(self, maybe_billed: bool) -> None:
        if maybe_billed:
            self.at_risk_usd += self.ceiling_usd or Decimal(0)

    def close(self, final_cost_usd: Decimal | None, final_maybe_billed: bool = True) -> Decimal:
        """Book the final attempt (its known cost, else its worst case) and release; returns the spend."""
        if self.settled:
            return self.at_risk_usd
        if final_cost_usd is not None:
            self.at_risk_usd += final_cost_usd
        elif final_maybe_billed and self.attempts:
            self.at_risk_usd += self.ceiling_usd or Decimal(0)
        self.budget.settle(self.reserved_usd, self.at_risk_usd)
        self.settled = True
        return self.at_risk_usd


def maybe_billed(err: ProviderError) -> bool:
    """Could this failed attempt have been billed? Only a refusal with an HTTP error status is free.

    A stream that started (200) and then failed, a timeout or a broken connection
    may have reached a provider that bills it: counted at its worst case.
    """
    result = err.result if isinstance(err.result, ChatResult) else None
    status = result.http_status if result is not None else None
    return status is None or 200 <= status < 300

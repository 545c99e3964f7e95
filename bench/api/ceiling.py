"""The most one attempt of a chat request can cost, and whether a failed one may be billed.

The worst case (``request_ceiling``) is a true upper bound for any tokenizer: a
token is at least one UTF-8 byte, so the prompt is bounded by the bytes of every
text the request carries plus an allowance per message for the chat template;
images are counted at ``IMAGE_TOKENS_BOUND`` tokens each plus the model's
per-image price. ``max_tokens`` is priced at the higher of the completion and
internal-reasoning prices, and the per-request fee is added.

It reads the wire's request body and prices, so it sits with the API; the budget that
reserves these ceilings (``bench.run.budget``) and the judge both use it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def maybe_billed(err: ProviderError) -> bool:
    """Could this failed attempt have been billed? Only a refusal with an HTTP error status is free.

    A stream that started (200) and then failed, a timeout or a broken connection
    may have reached a provider that bills it: counted at its worst case.
    """
    result = err.result if isinstance(err.result, ChatResult) else None
    status = result.http_status if result is not None else None
    return status is None or 200 <= status < 300

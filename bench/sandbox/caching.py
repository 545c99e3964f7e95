"""Prompt caching in the sandbox: each simulated provider follows its family's real rule.

Three behaviours, chosen per (model, provider) from the model family and the endpoint's prices
(API.md 1.4: ``input_cache_read``, ``input_cache_write``):

- ``auto`` (OpenAI, DeepSeek, xAI, Gemini's implicit caching, ...): every prompt of at least
  ``MIN_CACHED_TOKENS`` tokens is cached by itself, and a later prompt that starts with it reads
  that prefix at ``input_cache_read``. Nothing to ask for, no write premium.
- ``explicit`` (Anthropic, on every provider that serves it): only the prefixes ending at a
  ``cache_control`` breakpoint are cached. A request writes the prefix up to its last breakpoint
  (the part not read) at ``input_cache_write`` (the premium) and reads the longest cached one.
- ``none``: endpoints with no ``input_cache_read`` price never cache.

Caches are per endpoint (model x provider): when routing sends the next turn to another provider,
its cache is cold there. Prefixes are whole messages (as the ``messages`` list goes), counted
with the sandbox's own tokenizer (``sim.prompt_size``), so ``cached_tokens`` <= ``prompt_tokens``.
The usage reports them as OpenRouter does (``prompt_tokens_details.cached_tokens`` and
``cache_write_tokens``) and the cost is priced by API.md 5.5; the simulated TTFT pays prefill
only on the uncached part. Nothing expires: a run is shorter than the 5-minute TTL.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bench.sandbox import sim
from bench.sandbox.catalog import Endpoint, Model

MIN_CACHED_TOKENS = 1024  # OpenAI's and Anthropic's (Sonnet/Opus) smallest cacheable prompt
EXPLICIT_FAMILIES = ("anthropic",)


@dataclass(frozen=True)
class CacheUse:
    """What one request read from and wrote to its endpoint's cache, in prompt tokens."""

    behaviour: str  # auto | explicit | none
    cached_tokens: int = 0
    cache_write_tokens: int = 0


def behaviour(model: Model, endpoint: Endpoint) -> str:
    """auto | explicit | none for this model on this provider."""
    if not endpoint.pricing.get("input_cache_read"):
        return "none"
    return "explicit" if model.author in EXPLICIT_FAMILIES else "auto"


class PromptCache:
    """The prefixes each endpoint has cached: {(model id, provider tag): {prefix hash}}."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()  # the server may run in a thread beside the test's client

    def use(self, model: Model, endpoint: Endpoint, body: dict[str, Any]) -> CacheUse:
        """Read what the request finds cached, then cache what its family's rule caches."""
        kind = behaviour(model, endpoint)
        if kind == "none":
            return CacheUse(kind)
        prefixes = _prefixes(body)
        marked = [i for i, (_, _, mark) in enumerate(prefixes) if mark]
        key = (model.id, endpoint.tag)
        with self._lock:
            stored = self._entries.setdefault(key, set())
            read = max((tokens for digest, tokens, _ in prefixes if digest in stored), default=0)
            if kind == "auto":
                keep = [p for p in prefixes if p[1] >= MIN_CACHED_TOKENS]
                written = 0
            else:
                keep = [prefixes[i] for i in marked if prefixes[i][1] >= MIN_CACHED_TOKENS]
                last = keep[-1][1] if keep else 0
                written = max(0, last - read)
            stored.update(digest for digest, _, _ in keep)
        return CacheUse(kind, read, written)


def _prefixes(body: dict[str, Any]) -> list[tuple[str, int, bool]]:
    """(hash, prompt tokens, ends at a breakpoint) of each whole-message prefix of the request, its
    tokens counted as the sandbox counts a prompt of just those messages (``sim.prompt_size``)."""
    out = []
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(body.get("model")).encode())
    messages = body.get("messages") or []
    for i, message in enumerate(messages):
        tokens, _ = sim.prompt_size({"messages": messages[:i + 1]})
        digest.update(json.dumps([message.get("role"), _text(message.get("content"))]).encode())
        out.append((digest.copy().hexdigest(), tokens, _marked(message)))
    return out


def _text(content: Any) -> Any:
    """The content as the model reads it: text parts joined, ``cache_control`` markers dropped (a
    breakpoint, or a string sent as one text part, does not change the text cached)."""
    if isinstance(content, list):
        if all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            return "".join(str(p.get("text") or "") for p in content)
        return [{k: v for k, v in part.items() if k != "cache_control"} if isinstance(part, dict) else part
                for part in content]
    return content


def _marked(message: dict[str, Any]) -> bool:
    if isinstance(message.get("cache_control"), dict):
        return True
    content = message.get("content")
    return isinstance(content, list) and any(isinstance(p, dict) and isinstance(p.get("cache_control"), dict)
                                             for p in content)


def cost_parts(endpoint: Endpoint, prompt_tokens: int, completion_tokens: int,
               cache: CacheUse | None) -> tuple[Decimal, Decimal, Decimal]:
    """(prompt cost, completion cost, total) in USD, API.md 5.5: uncached prompt tokens at ``prompt``,
    cache reads at ``input_cache_read``, cache writes at ``input_cache_write``."""
    if cache is None or not (cache.cached_tokens or cache.cache_write_tokens):
        return sim.cost_parts(endpoint, prompt_tokens, completion_tokens)
    prices = endpoint.unit_prices(prompt_tokens)
    zero = Decimal(0)
    uncached = prompt_tokens - cache.cached_tokens - cache.cache_write_tokens
    prompt_cost = (prices.get("prompt", zero) * uncached
                   + prices.get("input_cache_read", zero) * cache.cached_tokens
                   + prices.get("input_cache_write", prices.get("prompt", zero)) * cache.cache_write_tokens)
    completion_cost = prices.get("completion", zero) * completion_tokens
    return prompt_cost, completion_cost, prompt_cost + completion_cost + prices.get("request", zero)

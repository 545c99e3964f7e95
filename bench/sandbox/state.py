"""What the sandbox remembers: simulated spend, every generation, and fault/repeat counters.

One ``SandboxState`` belongs to one server. The server thread writes it; tests read it
from their own thread (``handle.state``), so mutations and reads go through a lock.
A generation is recorded (and its cost added to the spend) before the last byte of its
response is written, so ``/generation`` and ``/key`` reflect a request as soon as the
client has seen it end.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any


@dataclass
class Generation:
    """One served request, as ``GET /generation`` reports it, plus the server's true clocks."""

    id: str
    model: str
    provider_name: str
    provider_tag: str
    created: int
    streamed: bool
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    finish_reason: str | None
    native_finish_reason: str | None
    latency_ms: float | None  # request arrival -> first output token
    generation_time_ms: float | None  # request arrival -> last output token
    ttft_target_ms: float  # the simulated (unscaled) TTFT this request was given
    provider_responses: list[dict[str, Any]] = field(default_factory=list)
    router: str | None = None
    cancelled: bool = False
    fault: str | None = None
    upstream_id: str = ""
    origin: str | None = None
    user_agent: str | None = None
    external_user: str | None = None
    t_request_perf_ns: int = 0
    t_first_token_perf_ns: int | None = None
    t_first_token_unix_ns: int | None = None
    t_last_token_perf_ns: int | None = None
    t_last_token_unix_ns: int | None = None
    cached_tokens: int = 0  # read from the endpoint's prompt cache (bench.sandbox.caching)

    def to_api(self) -> dict[str, Any]:
        """The ``data`` object of ``GET /generation`` (API.md 4)."""
        created_at = datetime.fromtimestamp(self.created, tz=timezone.utc).isoformat().replace("+00:00", "Z")
        return {
            "id": self.id, "upstream_id": self.upstream_id, "created_at": created_at,
            "model": self.model, "provider_name": self.provider_name, "router": self.router,
            "api_type": "completions", "streamed": self.streamed, "cancelled": self.cancelled,
            "total_cost": self.cost_usd, "usage": self.cost_usd, "upstream_inference_cost": self.cost_usd,
            "cache_discount": None, "is_byok": False,
            "latency": _ms(self.latency_ms), "generation_time": _ms(self.generation_time_ms),
            "moderation_latency": None,
            "tokens_prompt": self.prompt_tokens, "tokens_completion": self.completion_tokens,
            "native_tokens_prompt": self.prompt_tokens, "native_tokens_completion": self.completion_tokens,
            "native_tokens_reasoning": self.reasoning_tokens, "native_tokens_cached": self.cached_tokens,
            "native_tokens_completion_images": None,
            "num_media_prompt": None, "num_media_completion": 0, "num_input_audio_prompt": None,
            "num_search_results": None, "num_fetches": None,
            "finish_reason": self.finish_reason, "native_finish_reason": self.native_finish_reason,
            "origin": self.origin or "", "http_referer": self.origin, "user_agent": self.user_agent,
            "app_id": None, "external_user": self.external_user,
            "provider_responses": self.provider_responses,
            "service_tier": "default", "data_region": "global", "preset_id": None, "workspace_id": None,
            "web_search_engine": None,
        }


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value)


class SandboxState:
    """Spend and generations of one sandbox server (thread-safe)."""

    def __init__(self, key_limit_usd: Decimal | None, total_credits_usd: Decimal,
                 initial_usage_usd: Decimal = Decimal(0)) -> None:
        self._lock = threading.Lock()
        self.key_limit_usd = key_limit_usd
        self.total_credits_usd = total_credits_usd
        # Usage carried over from earlier processes (the dashboard passes the simulated spend
        # its database recorded), so /key and /credits agree with the runs, not with uptime.
        self.spend_usd = Decimal(initial_usage_usd)
        self.generations: dict[str, Generation] = {}
        self.chat_requests = 0
        self._occurrences: Counter[str] = Counter()
        self._fault_hits: Counter[tuple[str, str]] = Counter()

    def record(self, generation: Generation) -> None:
        with self._lock:
            self.generations[generation.id] = generation
            self.spend_usd += generation.cost_usd

    def generation(self, generation_id: str) -> Generation | None:
        with self._lock:
            return self.generations.get(generation_id)

    def next_occurrence(self, fingerprint: str) -> int:
        """How many earlier requests had this fingerprint (0 for the first); counts this one."""
        with self._lock:
            self.chat_requests += 1
            n = self._occurrences[fingerprint]
            self._occurrences[fingerprint] += 1
            return n

    def fault_hit(self, fingerprint: str, fault_name: str) -> int:
        """1-based count of requests with this fingerprint that met this fault."""
        with self._lock:
            self._fault_hits[(fingerprint, fault_name)] += 1
            return self._fault_hits[(fingerprint, fault_name)]

    @property
    def limit_remaining_usd(self) -> Decimal | None:
        with self._lock:
            return None if self.key_limit_usd is None else max(Decimal(0), self.key_limit_usd - self.spend_usd)

    def out_of_credit(self) -> bool:
        with self._lock:
            capped = self.key_limit_usd is not None and self.spend_usd >= self.key_limit_usd
            return capped or self.spend_usd >= self.total_credits_usd

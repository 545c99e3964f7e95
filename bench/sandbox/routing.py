"""Provider routing: the ordered list of endpoints a request will try (API.md 5.3).

Honours ``provider.only``, ``ignore``, ``quantizations``, ``max_price`` (USD per million
tokens), ``require_parameters``, ``order``, ``sort`` (``"price"|"throughput"|"latency"``
or ``{"by": ...}``) and ``allow_fallbacks``. Without ``order`` or ``sort`` the primary
is drawn like the real default: weighted by the inverse square of the price (so mostly
the cheapest), the rest follow by price. A slug matches a tag exactly, the base of a
suffixed tag (``deepinfra`` matches ``deepinfra/turbo``), or the display name.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from bench.sandbox.catalog import Endpoint, Model
from bench.sandbox.conformance_catalog import MISBEHAVIOUR

MILLION = Decimal(1_000_000)
REQUEST_PARAMS_IGNORED = {"model", "models", "messages", "stream", "stream_options", "provider", "usage",
                          "plugins", "transforms", "route", "user", "metadata", "session_id", "trace", "debug"}


class RoutingError(Exception):
    """No endpoint can take the request; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def matches(endpoint: Endpoint, slug: str) -> bool:
    s = str(slug).strip().lower()
    tag = endpoint.tag.lower()
    display = endpoint.provider_name.replace("(simulated)", "").strip().lower()
    return s in (tag, tag.split("/")[0], display, display.replace(" ", "-"))


def plan_attempts(
    model: Model, prefs: Any, body: dict[str, Any], prompt_tokens: int, rng: random.Random
) -> list[Endpoint]:
    """Endpoints in the order they will be tried; RoutingError when none qualifies."""
    if prefs is not None and not isinstance(prefs, dict):
        raise RoutingError(400, "provider must be an object")
    prefs = prefs or {}
    candidates = _filter(list(model.endpoints), prefs, body)
    if not candidates:
        raise RoutingError(404, f"No allowed providers are available for the selected model ({model.id}).")
    order = [s for s in prefs.get("order") or []]
    ordered = _dedupe([e for slug in order for e in candidates if matches(e, slug)])
    rest = [e for e in candidates if not any(e is o for o in ordered)]
    sort_by = _sort_key(prefs.get("sort"))
    if sort_by:
        rest = sorted(rest, key=lambda e: _sort_value(e, sort_by, prompt_tokens))
    elif order:
        rest = sorted(rest, key=lambda e: e.list_price)
    else:
        rest = _load_balance(rest, rng)
    if prefs.get("allow_fallbacks") is False:
        attempts = ordered if order else rest[:1]
    else:
        attempts = ordered + rest
    if not attempts:
        raise RoutingError(404, f"No allowed providers are available for the selected model ({model.id}).")
    return attempts


def _filter(endpoints: list[Endpoint], prefs: dict[str, Any], body: dict[str, Any]) -> list[Endpoint]:
    named = [*(prefs.get("only") or []), *(prefs.get("order") or [])]
    endpoints = [e for e in endpoints  # verify's misbehaving demo providers serve only who names them
                 if e.tag not in MISBEHAVIOUR or any(matches(e, s) for s in named)]
    if prefs.get("only"):
        endpoints = [e for e in endpoints if any(matches(e, s) for s in prefs["only"])]
    if prefs.get("ignore"):
        endpoints = [e for e in endpoints if not any(matches(e, s) for s in prefs["ignore"])]
    if prefs.get("quantizations"):
        wanted = {q.lower() for q in prefs["quantizations"]}
        endpoints = [e for e in endpoints if e.profile.quantization.lower() in wanted]
    if isinstance(prefs.get("max_price"), dict):
        endpoints = [e for e in endpoints if _within_price(e, prefs["max_price"])]
    if prefs.get("require_parameters"):
        used = {k for k, v in body.items() if v is not None and k not in REQUEST_PARAMS_IGNORED}
        endpoints = [e for e in endpoints if used <= set(e.supported_parameters)]
    return endpoints


def _within_price(endpoint: Endpoint, caps: dict[str, Any]) -> bool:
    for key in ("prompt", "completion"):
        cap = caps.get(key)
        if cap is not None and Decimal(endpoint.pricing.get(key, "0")) * MILLION > Decimal(str(cap)):
            return False
    return True


def _sort_key(sort: Any) -> str | None:
    if isinstance(sort, dict):
        sort = sort.get("by")
    return sort if sort in ("price", "throughput", "latency") else None


def _sort_value(endpoint: Endpoint, by: str, prompt_tokens: int) -> float:
    if by == "price":
        return float(endpoint.list_price)
    if by == "throughput":
        return -endpoint.decode_tps
    return endpoint.ttft_ms + prompt_tokens * endpoint.prefill_ms_per_token


def _load_balance(endpoints: list[Endpoint], rng: random.Random) -> list[Endpoint]:
    """Primary drawn with weight 1/price^2 (free endpoints first), the others by price."""
    by_price = sorted(endpoints, key=lambda e: e.list_price)
    if len(by_price) < 2:
        return by_price
    if by_price[0].list_price == 0:
        return by_price
    weights = [1.0 / float(e.list_price) ** 2 for e in by_price]
    primary = rng.choices(range(len(by_price)), weights=weights)[0]
    return [by_price[primary], *by_price[:primary], *by_price[primary + 1:]]


def _dedupe(endpoints: list[Endpoint]) -> list[Endpoint]:
    out: list[Endpoint] = []
    for e in endpoints:
        if not any(e is o for o in out):
            out.append(e)
    return out

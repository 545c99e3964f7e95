"""The OpenRouter catalog as typed records, and what a request costs at list price.

Owns the parsing of ``GET /models`` and ``GET /models/{id}/endpoints`` payloads
(API.md sections 1-2) and the list-price arithmetic of section 5.5. Every price is
USD per single token, sent as a decimal string, and is parsed with ``Decimal(str)``:
a float never touches money. A missing key or a JSON ``null`` means 0; ``"-1"`` on
prompt or completion means "variable" (router pseudo-models), and such a price is
never used as a number. Parsing is defensive because the schema keeps growing: an
unknown field is kept in ``raw`` and never breaks anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from bench.records import PRICE_KEYS as PRICE_KEYS  # the per-unit prices, typed fields of ``Pricing``

ZERO = Decimal(0)

OVERRIDE_PRICE_KEYS = frozenset(
    PRICE_KEYS
    + (
        "image_token",
        "image_output",
        "audio",
        "audio_output",
        "input_audio_cache",
        "input_cache_write_1h",
    )
)
"""Keys of an ``overrides[]`` entry that are prices; every other key is a condition."""

_SIZE_CONDITION = "min_prompt_tokens"


def to_decimal(value: object) -> Decimal | None:
    """A JSON number or numeric string as Decimal, through ``str`` (never float arithmetic).

    None, booleans, non-numbers and non-finite values give None.
    """
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def parse_price(value: object) -> Decimal | None:
    """One price value as Decimal: missing/null -> 0, unparseable -> None."""
    return ZERO if value is None else to_decimal(value)


@dataclass(frozen=True)
class Pricing:
    """USD per unit (per token for token prices), as in the catalog.

    ``variable`` is True when prompt or completion is negative ("-1": the price
    depends on routing) or unparseable; callers must not do arithmetic with it.
    """

    prompt: Decimal = ZERO
    completion: Decimal = ZERO
    request: Decimal = ZERO
    image: Decimal = ZERO
    internal_reasoning: Decimal = ZERO
    input_cache_read: Decimal = ZERO
    input_cache_write: Decimal = ZERO
    web_search: Decimal = ZERO
    discount: float | None = None
    variable: bool = False
    overrides: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Pricing:
        """Parse a pricing object (catalog, endpoint or hand-written)."""
        raw = dict(raw or {})
        values: dict[str, Decimal] = {}
        broken = False
        for key in PRICE_KEYS:
            price = parse_price(raw.get(key))
            broken |= price is None and key in ("prompt", "completion")
            values[key] = ZERO if price is None else price
        variable = broken or values["prompt"] < 0 or values["completion"] < 0
        overrides = raw.get("overrides")
        return cls(
            **values,
            discount=_float_or_none(raw.get("discount")),
            variable=variable,
            overrides=[o for o in overrides if isinstance(o, dict)] if isinstance(overrides, list) else [],
            raw=raw,
        )

    def get(self, key: str) -> Decimal:
        """Any price key of the raw object (``audio``, ``input_cache_write_1h``, ...); 0 if absent."""
        if key in PRICE_KEYS:
            price: Decimal = getattr(self, key)  # every PRICE_KEYS field is a Decimal
            return price
        return parse_price(self.raw.get(key)) or ZERO


@dataclass
class Model:
    """One entry of ``GET /models`` (API.md section 1.3), architecture and top_provider flattened."""

    id: str
    name: str
    canonical_slug: str | None = None
    hugging_face_id: str | None = None
    created: int | None = None
    description: str | None = None
    context_length: int | None = None
    modality: str | None = None
    input_modalities: list[str] = field(default_factory=list)
    output_modalities: list[str] = field(default_factory=list)
    tokenizer: str | None = None
    instruct_type: str | None = None
    pricing: Pricing = field(default_factory=Pricing)
    top_provider_context_length: int | None = None
    top_provider_max_completion_tokens: int | None = None
    top_provider_is_moderated: bool | None = None
    per_request_limits: dict[str, Any] | None = None
    supported_parameters: list[str] = field(default_factory=list)
    default_parameters: dict[str, Any] | None = None
    supported_voices: list[str] | None = None
    knowledge_cutoff: str | None = None
    expiration_date: str | None = None
    reasoning: dict[str, Any] | None = None
    links: dict[str, Any] | None = None
    benchmarks: dict[str, Any] | None = None
    alias_target: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Endpoint:
    """One provider endpoint of a model (API.md section 2.1)."""

    name: str | None
    model_id: str | None
    provider_name: str | None
    tag: str | None
    context_length: int | None
    max_completion_tokens: int | None
    max_prompt_tokens: int | None
    pricing: Pricing
    quantization: str | None
    supported_parameters: list[str]
    status: int | None
    uptime_last_5m: float | None
    uptime_last_30m: float | None
    uptime_last_1d: float | None
    latency_last_30m: dict[str, Any] | None  # TTFT percentiles, milliseconds
    throughput_last_30m: dict[str, Any] | None  # output tokens/s percentiles
    supports_implicit_caching: bool | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class ModelEndpoints:
    """``GET /models/{id}/endpoints``: the model's header fields and its endpoints."""

    id: str
    name: str | None
    created: int | None
    description: str | None
    modality: str | None
    input_modalities: list[str]
    output_modalities: list[str]
    tokenizer: str | None
    instruct_type: str | None
    endpoints: list[Endpoint]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


# ---------------------------------------------------------------- parsing
def parse_models(payload: Any) -> list[Model]:
    """Models of a ``/models`` payload: ``{data}``, ``{data, total_count, links}`` or a bare list.

    Entries that are not objects or have no string ``id`` are skipped.
    """
    items = payload.get("data") if isinstance(payload, Mapping) else payload
    if not isinstance(items, list):
        return []
    return [parse_model(m) for m in items if isinstance(m, dict) and isinstance(m.get("id"), str)]


def parse_model(raw: dict[str, Any]) -> Model:
    """One model object; every field but ``id`` is optional here."""
    arch = _dict(raw.get("architecture"))
    top = _dict(raw.get("top_provider"))
    return Model(
        id=raw["id"],
        name=_str(raw.get("name")) or raw["id"],
        canonical_slug=_str(raw.get("canonical_slug")),
        hugging_face_id=_str(raw.get("hugging_face_id")),
        created=parse_int(raw.get("created")),
        description=_str(raw.get("description")),
        context_length=parse_int(raw.get("context_length")),
        **_architecture(arch),
        pricing=Pricing.from_dict(_dict(raw.get("pricing"))),
        top_provider_context_length=parse_int(top.get("context_length")),
        top_provider_max_completion_tokens=parse_int(top.get("max_completion_tokens")),
        top_provider_is_moderated=_bool(top.get("is_moderated")),
        per_request_limits=_dict_or_none(raw.get("per_request_limits")),
        supported_parameters=_str_list(raw.get("supported_parameters")),
        default_parameters=_dict_or_none(raw.get("default_parameters")),
        supported_voices=_str_list(raw["supported_voices"]) if isinstance(raw.get("supported_voices"), list) else None,
        knowledge_cutoff=_str(raw.get("knowledge_cutoff")),
        expiration_date=_str(raw.get("expiration_date")),
        reasoning=_dict_or_none(raw.get("reasoning")),
        links=_dict_or_none(raw.get("links")),
        benchmarks=_dict_or_none(raw.get("benchmarks")),
        alias_target=_dict_or_none(raw.get("alias_target")),
        raw=raw,
    )


def parse_endpoints(payload: Any) -> ModelEndpoints:
    """A ``/models/{id}/endpoints`` payload (``{"data": {...}}`` or the inner object)."""
    data = _dict(payload.get("data")) if isinstance(payload, Mapping) and "data" in payload else _dict(payload)
    return ModelEndpoints(
        id=_str(data.get("id")) or "",
        name=_str(data.get("name")),
        created=parse_int(data.get("created")),
        description=_str(data.get("description")),
        **_architecture(_dict(data.get("architecture"))),
        endpoints=[parse_endpoint(e) for e in data.get("endpoints") or [] if isinstance(e, dict)],
        raw=data,
    )


def parse_endpoint(raw: dict[str, Any]) -> Endpoint:
    """One PublicEndpoint object."""
    return Endpoint(
        name=_str(raw.get("name")),
        model_id=_str(raw.get("model_id")),
        provider_name=_str(raw.get("provider_name")),
        tag=_str(raw.get("tag")),
        context_length=parse_int(raw.get("context_length")),
        max_completion_tokens=parse_int(raw.get("max_completion_tokens")),
        max_prompt_tokens=parse_int(raw.get("max_prompt_tokens")),
        pricing=Pricing.from_dict(_dict(raw.get("pricing"))),
        quantization=_str(raw.get("quantization")),
        supported_parameters=_str_list(raw.get("supported_parameters")),
        status=parse_int(raw.get("status")),
        uptime_last_5m=_float_or_none(raw.get("uptime_last_5m")),
        uptime_last_30m=_float_or_none(raw.get("uptime_last_30m")),
        uptime_last_1d=_float_or_none(raw.get("uptime_last_1d")),
        latency_last_30m=_dict_or_none(raw.get("latency_last_30m")),
        throughput_last_30m=_dict_or_none(raw.get("throughput_last_30m")),
        supports_implicit_caching=_bool(raw.get("supports_implicit_caching")),
        raw=raw,
    )


def filter_models(models: Iterable[Model], *, text: str | None = None, modalities: Iterable[str] = (),
                  max_prompt_usd_per_m: Decimal | None = None, min_context: int | None = None,
                  authors: Iterable[str] = (), params: Iterable[str] = ()) -> list[Model]:
    """Catalog search, one rule for ``orbench models`` and the dashboard's Catalog page.

    ``text``: a substring of the id or name (any case). ``modalities``: each one must be a
    modality the model takes as input or produces as output. ``max_prompt_usd_per_m``: prompt
    price per 1M tokens at most (a variable, router, price never passes). ``min_context``:
    context length at least. ``authors``: the id's part before "/" is one of them. ``params``:
    every one is a supported parameter.
    """
    needle = (text or "").strip().lower()
    wanted, by, needed = set(modalities), set(authors), set(params)
    out = []
    for m in models:
        if needle and needle not in f"{m.id} {m.name}".lower():
            continue
        if wanted and not wanted <= set(m.input_modalities or []) | set(m.output_modalities or []):
            continue
        if max_prompt_usd_per_m is not None and (
                m.pricing.variable or m.pricing.prompt * 1_000_000 > max_prompt_usd_per_m):
            continue
        if min_context is not None and (m.context_length or 0) < min_context:
            continue
        if by and m.id.split("/", 1)[0] not in by:
            continue
        if needed and not needed <= set(m.supported_parameters or []):
            continue
        out.append(m)
    return out


def find_model(models: Iterable[Model], model_id: str) -> Model | None:
    """The model whose ``id`` is ``model_id``, else the one whose ``canonical_slug`` is."""
    by_slug = None
    for m in models:
        if m.id == model_id:
            return m
        if by_slug is None and m.canonical_slug == model_id:
            by_slug = m
    return by_slug


# ---------------------------------------------------------------- list cost
def effective_prices(pricing: Pricing, prompt_tokens: int) -> dict[str, Decimal]:
    """Token prices after the size overrides that apply to ``prompt_tokens``.

    An override applies when ``prompt_tokens`` is strictly greater than its
    ``min_prompt_tokens``; later entries win per key; missing keys inherit.
    Entries with any other condition (UTC time windows, weekdays, unknown ones)
    are ignored: a benchmark cannot know which window the server used.
    """
    prices = {k: getattr(pricing, k) for k in PRICE_KEYS}
    for entry in pricing.overrides:
        if not _size_override_applies(entry, prompt_tokens):
            continue
        for key, value in entry.items():
            price = parse_price(value) if key in prices else None
            if price is not None:
                prices[key] = price
    return prices


def _size_override_applies(entry: Mapping[str, Any], prompt_tokens: int) -> bool:
    conditions = [k for k in entry if k not in OVERRIDE_PRICE_KEYS]
    if conditions != [_SIZE_CONDITION]:
        return False
    threshold = parse_int(entry.get(_SIZE_CONDITION))
    return threshold is not None and prompt_tokens > threshold


def list_cost_usd(
    pricing: Pricing,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    cached_tokens: int | None = 0,
    cache_write_tokens: int | None = 0,
    reasoning_tokens: int | None = 0,
    web_search_requests: int | None = 0,
) -> Decimal | None:
    """Catalog price x tokens (API.md section 5.5); None when the price is variable or tokens are missing.

    Uncached prompt tokens at ``prompt``, cache reads at ``input_cache_read``,
    cache writes at ``input_cache_write``; completion tokens (which include
    reasoning tokens) at ``completion``, plus the per-request fee and web-search
    calls. Where a model lists a non-zero ``internal_reasoning`` price the
    reasoning share of the completion is charged at it instead (equal to
    ``completion`` for every such model but one; UNCONFIRMED for that one).
    """
    if pricing.variable or prompt_tokens is None or completion_tokens is None:
        return None
    cached, writes = cached_tokens or 0, cache_write_tokens or 0
    reasoning = min(reasoning_tokens or 0, completion_tokens)
    p = effective_prices(pricing, prompt_tokens)
    prompt_cost = (
        (prompt_tokens - cached - writes) * p["prompt"]
        + cached * p["input_cache_read"]
        + writes * p["input_cache_write"]
    )
    reasoning_price = p["internal_reasoning"] or p["completion"]
    completion_cost = (completion_tokens - reasoning) * p["completion"] + reasoning * reasoning_price
    fees = p["request"] + (web_search_requests or 0) * p["web_search"]
    return prompt_cost + completion_cost + fees


def max_cost_usd(pricing: Pricing, prompt_tokens: int | None, max_tokens: int | None) -> Decimal | None:
    """The most one request can cost at list price: the budget's reservation.

    Every prompt token at the (size-overridden) prompt price, ``max_tokens`` at the
    higher of the completion and internal-reasoning prices, plus the request fee.
    """
    if pricing.variable or prompt_tokens is None or max_tokens is None:
        return None
    p = effective_prices(pricing, prompt_tokens)
    out_price = max(p["completion"], p["internal_reasoning"])
    return prompt_tokens * p["prompt"] + max_tokens * out_price + p["request"]


# ---------------------------------------------------------------- coercion helpers
def _architecture(arch: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "modality": _str(arch.get("modality")),
        "input_modalities": _str_list(arch.get("input_modalities")),
        "output_modalities": _str_list(arch.get("output_modalities")),
        "tokenizer": _str(arch.get("tokenizer")),
        "instruct_type": _str(arch.get("instruct_type")),
    }


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dict_or_none(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _str_list(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def parse_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None

"""The sandbox catalog: catalog.json beside this module (package data, so it ships in the wheel)
as typed records, rendered in the API's shapes.

Owns what the simulated OpenRouter knows about models and providers: list prices
(``Decimal`` from the per-token strings), the simulated providers' timing profiles
(TTFT base, prefill cost per prompt token, decode tokens/s, chunking), and the JSON
of ``GET /models`` (API.md 1.2-1.3) and ``GET /models/{author}/{slug}/endpoints``
(API.md 2.1). Endpoint latency and throughput statistics are derived from the same
profile numbers the simulation uses, so the catalog and the streams agree.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import math
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.sandbox import conformance_catalog

DEFAULT_CATALOG_PATH = Path(__file__).resolve().with_name("catalog.json")  # package data: works installed
TYPICAL_PROMPT_TOKENS = 200  # prompt size assumed by the endpoint latency statistics
EXP_QUANTILES = {"p50": math.log(2), "p75": math.log(4), "p90": math.log(10), "p99": math.log(100)}
ZERO = Decimal(0)


@dataclass(frozen=True)
class ProviderProfile:
    """How one simulated provider streams, whatever model it serves."""

    name: str  # display name, always contains "(simulated)"
    quantization: str
    two_token_event_every: int  # every Nth content event carries 2 tokens (0 = never)
    processing_comments: int  # ": OPENROUTER PROCESSING" lines before the first token
    usage_chunk: str  # "empty" (choices: []) or "echo" (one choice echoing the end)
    role_chunk_lead_ms: float  # role-only chunk goes out this long before the first token
    uptime: dict[str, float]


@dataclass(frozen=True)
class Endpoint:
    """One (model, provider) pair: its prices and its simulated speed."""

    model_id: str
    tag: str
    profile: ProviderProfile
    pricing: dict[str, Any]
    ttft_ms: float
    prefill_ms_per_token: float
    decode_tps: float
    jitter_ms: float
    context_length: int | None
    max_completion_tokens: int | None
    supported_parameters: tuple[str, ...]

    @property
    def provider_name(self) -> str:
        return self.profile.name

    @property
    def list_price(self) -> Decimal:
        """prompt + completion per-token price, the key for price sorting and load balancing."""
        return Decimal(self.pricing["prompt"]) + Decimal(self.pricing["completion"])

    def unit_prices(self, prompt_tokens: int) -> dict[str, Decimal]:
        """Per-unit prices in force for a prompt of this size (long-context overrides applied)."""
        prices = {k: Decimal(str(v)) for k, v in self.pricing.items() if k != "overrides" and v is not None}
        for override in self.pricing.get("overrides", []):
            if prompt_tokens > override.get("min_prompt_tokens", 0):
                prices.update({k: Decimal(str(v)) for k, v in override.items() if k != "min_prompt_tokens"})
        return prices

    def ttft_stats_ms(self) -> dict[str, float]:
        base = self.ttft_ms + TYPICAL_PROMPT_TOKENS * self.prefill_ms_per_token
        return {k: round(base + self.jitter_ms * q, 1) for k, q in EXP_QUANTILES.items()}

    @functools.cached_property
    def endpoint_uuid(self) -> str:
        """A stable id for ``provider_responses[].endpoint_id``."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"orbench-sandbox:{self.model_id}:{self.tag}"))


@dataclass(frozen=True)
class Model:
    """A routable model id: a real model, an alias, the auto router or a fault model."""

    id: str
    canonical_slug: str
    api: dict[str, Any]  # the /models object, as served
    endpoints: tuple[Endpoint, ...]
    reasoning: dict[str, Any] | None = None
    reply_with_canonical: bool = False
    alias_of: str | None = None
    router_candidates: tuple[str, ...] = ()
    fault: str | None = None
    input_modalities: tuple[str, ...] = ("text",)
    max_completion_tokens: int | None = None
    context_length: int | None = None

    @property
    def author(self) -> str:
        return self.id.split("/")[0].lstrip("~")

    @property
    def is_router(self) -> bool:
        return bool(self.router_candidates)

    @property
    def response_model(self) -> str:
        """The ``model`` a reply names: the id asked for, or the dated slug for some models (API.md 5.4)."""
        return self.canonical_slug if self.reply_with_canonical else self.id


@dataclass
class Catalog:
    """Every model the sandbox serves, by id and by canonical slug."""

    models: dict[str, Model]
    account: dict[str, Any]
    by_slug: dict[str, Model] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for model in self.models.values():
            self.by_slug.setdefault(model.canonical_slug, model)

    def get(self, model_id: str) -> Model | None:
        return self.models.get(model_id) or self.by_slug.get(model_id)

    def resolve(self, model_id: str) -> Model | None:
        """The concrete model behind an id (aliases followed)."""
        model = self.get(model_id)
        while model is not None and model.alias_of:
            model = self.get(model.alias_of)
        return model

    def router_choices(self, router: Model, allowed: list[str] | None) -> list[Model]:
        ids = [m for m in router.router_candidates if not allowed or any(fnmatch.fnmatch(m, p) for p in allowed)]
        return [self.models[m] for m in ids if m in self.models]


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read catalog.json (ours, see its ``about``) into a Catalog."""
    raw = json.loads(Path(path or DEFAULT_CATALOG_PATH).read_text(encoding="utf-8"))
    raw = conformance_catalog.extend_catalog(raw)  # the providers a verify demo checks (conformance.py)
    profiles = {tag: _profile(p) for tag, p in raw["providers"].items()}
    models: dict[str, Model] = {}
    for entry in raw["models"]:
        models[entry["id"]] = _model(entry, profiles)
    for alias in raw.get("aliases", []):
        models[alias["id"]] = _alias(alias, models[alias["target"]])
    for router in raw.get("routers", []):
        models[router["id"]] = _router(router)
    for name in raw.get("fault_models", {}).get("faults", []):
        fault_model = _fault_model(raw["fault_models"], name, profiles)
        models[fault_model.id] = fault_model
    return Catalog(models=models, account=raw.get("account", {}))


def _profile(p: dict[str, Any]) -> ProviderProfile:
    return ProviderProfile(
        name=p["name"],
        quantization=p.get("quantization", "unknown"),
        two_token_event_every=int(p.get("two_token_event_every", 0)),
        processing_comments=int(p.get("processing_comments", 0)),
        usage_chunk=p.get("usage_chunk", "empty"),
        role_chunk_lead_ms=float(p.get("role_chunk_lead_ms", 0)),
        uptime=p.get("uptime", {}),
    )


def _endpoint(model_id: str, e: dict[str, Any], model: dict[str, Any],
              profiles: dict[str, ProviderProfile]) -> Endpoint:
    top = model.get("top_provider") or {}
    return Endpoint(
        model_id=model_id,
        tag=e["tag"],
        profile=profiles[e["tag"]],
        pricing=e.get("pricing") or model["pricing"],
        ttft_ms=float(e["ttft_ms"]),
        prefill_ms_per_token=float(e["prefill_ms_per_token"]),
        decode_tps=float(e["decode_tps"]),
        jitter_ms=float(e.get("jitter_ms", 0)),
        context_length=e.get("context_length") or model.get("context_length"),
        max_completion_tokens=e.get("max_completion_tokens", top.get("max_completion_tokens")),
        supported_parameters=tuple(e.get("supported_parameters") or model.get("supported_parameters", [])),
    )


API_FIELDS = (
    "id", "canonical_slug", "hugging_face_id", "name", "created", "description", "context_length",
    "architecture", "pricing", "top_provider", "per_request_limits", "supported_parameters",
    "default_parameters", "supported_voices", "knowledge_cutoff", "expiration_date", "links",
)


def _api_object(entry: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The Model object of API.md 1.3, every field present (optional ones when they apply)."""
    defaults = {
        "hugging_face_id": None,
        "per_request_limits": None,
        "default_parameters": {},
        "supported_voices": None,
        "knowledge_cutoff": None,
        "expiration_date": None,
        "links": {"details": f"/api/v1/models/{entry.get('canonical_slug', entry['id'])}/endpoints"},
    }
    obj = {k: entry.get(k, defaults.get(k)) for k in API_FIELDS}
    obj["pricing"] = {k: v for k, v in entry["pricing"].items()}
    if entry.get("reasoning"):
        obj["reasoning"] = entry["reasoning"]
    obj.update(extra)
    return obj


def _model(entry: dict[str, Any], profiles: dict[str, ProviderProfile]) -> Model:
    top = entry.get("top_provider") or {}
    return Model(
        id=entry["id"],
        canonical_slug=entry.get("canonical_slug") or entry["id"],
        api=_api_object(entry),
        endpoints=tuple(_endpoint(entry["id"], e, entry, profiles) for e in entry["endpoints"]),
        reasoning=entry.get("reasoning"),
        reply_with_canonical=entry.get("response_model") == "canonical_slug",
        input_modalities=tuple(entry["architecture"]["input_modalities"]),
        max_completion_tokens=top.get("max_completion_tokens"),
        context_length=entry.get("context_length"),
    )


def _alias(alias: dict[str, Any], target: Model) -> Model:
    entry = {**target.api, "id": alias["id"], "canonical_slug": alias["id"], "name": alias["name"],
             "created": alias["created"], "links": {"details": f"/api/v1/models/{alias['id']}/endpoints"}}
    entry["architecture"] = {**target.api["architecture"], "tokenizer": "Router"}
    api = _api_object(entry, alias_target={"name": target.api["name"], "slug": target.id})
    return Model(id=alias["id"], canonical_slug=alias["id"], api=api, endpoints=target.endpoints,
                 alias_of=target.id, input_modalities=target.input_modalities)


def _router(entry: dict[str, Any]) -> Model:
    api = _api_object({**entry, "top_provider": {"context_length": None, "max_completion_tokens": None,
                                                 "is_moderated": False}})
    return Model(id=entry["id"], canonical_slug=entry["canonical_slug"], api=api, endpoints=(),
                 router_candidates=tuple(entry["candidates"]),
                 input_modalities=tuple(entry["architecture"]["input_modalities"]))


def _fault_model(template: dict[str, Any], fault: str, profiles: dict[str, ProviderProfile]) -> Model:
    model_id = template["prefix"] + fault
    entry = {
        "id": model_id, "canonical_slug": model_id, "name": template["name"].format(fault=fault),
        "created": template["created"], "description": template["description"].format(fault=fault),
        "context_length": template["context_length"], "pricing": template["pricing"],
        "architecture": {"modality": "text->text", "input_modalities": ["text"], "output_modalities": ["text"],
                         "tokenizer": "Other", "instruct_type": None},
        "top_provider": {"context_length": template["context_length"], "max_completion_tokens": 4096,
                         "is_moderated": False},
        "supported_parameters": ["max_tokens", "response_format", "stop", "temperature", "tool_choice", "tools"],
    }
    endpoints = tuple(_endpoint(model_id, e, entry, profiles) for e in template["endpoints"])
    return Model(id=model_id, canonical_slug=model_id, api=_api_object(entry), endpoints=endpoints,
                 fault=fault, max_completion_tokens=4096, context_length=template["context_length"])


# --- GET /models -------------------------------------------------------------------------


def list_models(catalog: Catalog, query: dict[str, list[str]], base_path: str) -> dict[str, Any]:
    """The /models envelope with the filters of API.md 1.1 applied minimally."""
    def first(name: str) -> str | None:
        return next(iter(query.get(name) or []), None)

    selected = [m.api for m in catalog.models.values() if _matches(m.api, first)]
    offset = int(first("offset") or 0)
    limit = first("limit")
    page = selected[offset: offset + int(limit)] if limit else selected[offset:]
    next_link = None
    if limit and offset + int(limit) < len(selected):
        next_link = f"{base_path}/models?offset={offset + int(limit)}&limit={limit}"
    return {"data": page, "total_count": len(selected), "links": {"next": next_link}}


def _csv(value: str | None) -> list[str]:
    return [v.strip().lower() for v in (value or "").split(",") if v.strip()]


def _matches(api: dict[str, Any], first: Any) -> bool:
    q = (first("q") or "").lower()
    if q and q not in api["id"].lower() and q not in api["name"].lower():
        return False
    params = set(api["supported_parameters"])
    if not set(_csv(first("supported_parameters"))) <= params:
        return False
    arch = api["architecture"]
    if not set(_csv(first("input_modalities"))) <= set(arch["input_modalities"]):
        return False
    wanted_out = _csv(first("output_modalities")) or ["text"]
    if "all" not in wanted_out and not set(wanted_out) & set(arch["output_modalities"]):
        return False
    context = first("context")
    return not (context and (api["context_length"] or 0) < int(context))


# --- GET /models/{author}/{slug}/endpoints ---------------------------------------------------


def endpoints_payload(model: Model) -> dict[str, Any]:
    """ListEndpointsResponse (API.md 2): one PublicEndpoint per simulated provider."""
    api = model.api
    return {"data": {
        "id": model.id,
        "name": api["name"],
        "created": api["created"],
        "description": api.get("description"),
        "architecture": api["architecture"],
        "endpoints": [_public_endpoint(model, e) for e in model.endpoints],
    }}


def _public_endpoint(model: Model, e: Endpoint) -> dict[str, Any]:
    params = set(e.supported_parameters)
    tools = "tools" in params
    uptime = e.profile.uptime
    return {
        "name": f"{e.provider_name} | {model.canonical_slug}",
        "model_id": model.canonical_slug,
        "model_name": model.api["name"],
        "context_length": e.context_length,
        "pricing": {**e.pricing, "discount": 0},
        "provider_name": e.provider_name,
        "tag": e.tag,
        "quantization": e.profile.quantization,
        "max_completion_tokens": e.max_completion_tokens,
        "max_prompt_tokens": None,
        "supported_parameters": list(e.supported_parameters),
        "supports_tool_choice": {"none": tools, "auto": tools, "required": tools, "function": tools},
        "status": 0,
        "uptime_last_5m": uptime.get("last_5m"),
        "uptime_last_30m": uptime.get("last_30m"),
        "uptime_last_1d": uptime.get("last_1d"),
        "supports_implicit_caching": False,
        "latency_last_30m": e.ttft_stats_ms(),
        "throughput_last_30m": {k: e.decode_tps for k in EXP_QUANTILES},
    }

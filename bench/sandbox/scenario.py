"""Scripted changes over time (``orbench sandbox --scenario FILE``), for monitors' tests and demos.

FILE is YAML: a list of changes, each ``{at_s, until_s, model, provider, latency_factor,
error_rate, quality_drop, price_factor}``, timed in seconds since the sandbox started; every
field but ``at_s`` and ``model`` is optional (no ``until_s``: for good; no ``provider``: every
provider of the model). While a change is active:

- ``latency_factor`` multiplies the endpoint's TTFT (base, prefill, jitter) and divides its
  decode speed, so TTFT and e2e both grow by about that factor;
- ``error_rate`` is the chance that an attempt on that provider fails with a 503 (routing falls
  back to another provider when the request allows it, as OpenRouter does);
- ``quality_drop`` is the chance that the answer is replaced by filler (checks fail, as they
  would with a silently quantized model);
- ``price_factor`` multiplies the provider's prices, both listed (``/models/{id}/endpoints``)
  and billed;
- ``unlisted: true`` leaves the provider out of the model's endpoints listing (a provider removed
  from the catalog; listed again when the change ends: added back);
- ``expiration_date: YYYY-MM-DD`` is the model's deprecation date in ``/models`` (announced).

The server reads the changes through ``Scenario.endpoint``/``fails``/``degrades``, which the
chat service and the endpoints listing call; everything else of the sandbox is unchanged.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.sandbox.catalog import Catalog, Endpoint, Model

_FIELDS = ("at_s", "until_s", "model", "provider", "latency_factor", "error_rate", "quality_drop", "price_factor",
           "unlisted", "expiration_date")
_PRICE_KEYS = ("prompt", "completion", "request", "image", "internal_reasoning", "input_cache_read",
               "input_cache_write")


@dataclass(frozen=True)
class Change:
    at_s: float
    model: str
    until_s: float | None = None
    provider: str | None = None
    latency_factor: float = 1.0
    error_rate: float = 0.0
    quality_drop: float = 0.0
    price_factor: float = 1.0
    unlisted: bool = False
    expiration_date: str | None = None

    def applies(self, model_id: str, endpoint: Endpoint | None, elapsed_s: float) -> bool:
        if model_id != self.model or elapsed_s < self.at_s:
            return False
        if self.until_s is not None and elapsed_s >= self.until_s:
            return False
        return self.provider is None or endpoint is None or _matches(endpoint, self.provider)


def _matches(endpoint: Endpoint, slug: str) -> bool:
    s = slug.strip().lower()
    tag = endpoint.tag.lower()
    display = endpoint.provider_name.replace("(simulated)", "").strip().lower()
    return s in (tag, tag.split("/")[0], display, display.replace(" ", "-"))


class Scenario:
    """The changes of one sandbox, timed from its start (``clock`` is monotonic seconds)."""

    def __init__(self, changes: list[Change], clock: Callable[[], float] = time.monotonic) -> None:
        self.changes = changes
        self._clock = clock
        self._t0 = clock()

    def elapsed_s(self) -> float:
        return self._clock() - self._t0

    def active(self, model_id: str, endpoint: Endpoint | None) -> list[Change]:
        now = self.elapsed_s()
        return [c for c in self.changes if c.applies(model_id, endpoint, now)]

    def endpoint(self, model_id: str, endpoint: Endpoint) -> Endpoint:
        """The endpoint as it is now: slower and/or pricier while a change says so."""
        latency, price = 1.0, 1.0
        for c in self.active(model_id, endpoint):
            latency *= c.latency_factor
            price *= c.price_factor
        if latency == 1.0 and price == 1.0:
            return endpoint
        pricing = dict(endpoint.pricing)
        if price != 1.0:
            factor = Decimal(str(price))
            for key in _PRICE_KEYS:
                if pricing.get(key) not in (None, ""):
                    pricing[key] = format(Decimal(str(pricing[key])) * factor, "f")
        return dataclasses.replace(
            endpoint, ttft_ms=endpoint.ttft_ms * latency, prefill_ms_per_token=endpoint.prefill_ms_per_token * latency,
            jitter_ms=endpoint.jitter_ms * latency, decode_tps=endpoint.decode_tps / latency, pricing=pricing)

    def model(self, model: Model) -> Model:
        """The model as it is now (for the listings): its endpoints (less unlisted ones) and its
        deprecation date."""
        endpoints = tuple(self.endpoint(model.id, e) for e in model.endpoints
                          if not any(c.unlisted for c in self.active(model.id, e)))
        expiry = next((c.expiration_date for c in reversed(self.active(model.id, None)) if c.expiration_date), None)
        api = model.api if expiry is None else {**model.api, "expiration_date": expiry}
        if endpoints == model.endpoints and api is model.api:
            return model
        return dataclasses.replace(model, endpoints=endpoints, api=api)

    def catalog(self, catalog: Catalog) -> Catalog:
        """The catalog as it is now (for ``/models``): every model through ``model``."""
        return Catalog({k: self.model(m) for k, m in catalog.models.items()}, catalog.account)

    def fails(self, model_id: str, endpoint: Endpoint, rng: random.Random) -> bool:
        """Does this attempt on this endpoint fail (``error_rate``)?"""
        rate = max((c.error_rate for c in self.active(model_id, endpoint)), default=0.0)
        return rate > 0 and rng.random() < rate

    def degrades(self, model_id: str, endpoint: Endpoint, rng: random.Random) -> bool:
        """Is this answer replaced by filler (``quality_drop``)?"""
        drop = max((c.quality_drop for c in self.active(model_id, endpoint)), default=0.0)
        return drop > 0 and rng.random() < drop


def parse_scenario(data: Any, where: str = "scenario") -> list[Change]:
    """The YAML's list of changes; ValueError naming the file, item and field on bad input."""
    if not isinstance(data, list):
        raise ValueError(f"{where}: expected a list of changes ({{at_s, model, ...}})")
    changes = []
    for i, item in enumerate(data):
        at = f"{where}: item {i + 1}"
        if not isinstance(item, dict):
            raise ValueError(f"{at}: expected a mapping with at_s and model")
        unknown = sorted(set(item) - set(_FIELDS))
        if unknown:
            raise ValueError(f"{at}: unknown field {unknown[0]!r} (known: {', '.join(_FIELDS)})")
        for required in ("at_s", "model"):
            if required not in item:
                raise ValueError(f"{at}: missing {required}")
        if not isinstance(item["model"], str) or not item["model"]:
            raise ValueError(f"{at}: model must be a model id")
        values: dict[str, Any] = {"model": item["model"], "provider": item.get("provider")}
        for name in ("at_s", "until_s", "latency_factor", "error_rate", "quality_drop", "price_factor"):
            if item.get(name) is not None:
                values[name] = _number(item[name], f"{at}: {name}")
        for name in ("error_rate", "quality_drop"):
            if not 0 <= values.get(name, 0.0) <= 1:
                raise ValueError(f"{at}: {name} must be between 0 and 1")
        for name in ("latency_factor", "price_factor"):
            if values.get(name, 1.0) <= 0:
                raise ValueError(f"{at}: {name} must be positive")
        if item.get("unlisted") is not None:
            if not isinstance(item["unlisted"], bool):
                raise ValueError(f"{at}: unlisted must be true or false")
            values["unlisted"] = item["unlisted"]
        if item.get("expiration_date") is not None:
            values["expiration_date"] = _date(item["expiration_date"], f"{at}: expiration_date")
        changes.append(Change(**values))
    return changes


def _date(value: Any, where: str) -> str:
    import datetime as dt

    if isinstance(value, dt.date):  # YAML reads 2027-03-01 as a date
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValueError(f"{where}: expected a date YYYY-MM-DD, got {value!r}") from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    return float(value)


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file (YAML); ValueError with one line naming the problem."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the scenario: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return Scenario(parse_scenario(data, str(path)))

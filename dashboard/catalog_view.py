"""The Catalog page's tables and cost calculator: pure functions over ``bench.api.catalog`` records.

The live model list is small (hundreds of models), so filtering and shaping it
happens in Python; prices stay ``Decimal`` until they become per-1M floats for
display, and a variable (router) price is never turned into a number.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import polars as pl

from bench.api.catalog import Model, list_cost_usd

PER_M = Decimal(1_000_000)


def _per_m(price: Decimal, variable: bool) -> float | None:
    return None if variable else float(price * PER_M)


def catalog_frame(models: list[Model]) -> pl.DataFrame:
    """One row per model with prices per 1M tokens (None when the price is variable)."""
    rows = [{
        "id": m.id, "name": m.name, "context_length": m.context_length,
        "input": ",".join(m.input_modalities or []), "output": ",".join(m.output_modalities or []),
        "prompt_usd_per_m": _per_m(m.pricing.prompt, m.pricing.variable),
        "completion_usd_per_m": _per_m(m.pricing.completion, m.pricing.variable),
        "request_usd": None if m.pricing.variable else float(m.pricing.request),
        "tools": "tools" in (m.supported_parameters or []),
        "response_format": "response_format" in (m.supported_parameters or []),
        "parameters": len(m.supported_parameters or []),
    } for m in models]
    schema = {"id": pl.String, "name": pl.String, "context_length": pl.Int64, "input": pl.String,
              "output": pl.String, "prompt_usd_per_m": pl.Float64, "completion_usd_per_m": pl.Float64,
              "request_usd": pl.Float64, "tools": pl.Boolean, "response_format": pl.Boolean,
              "parameters": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def endpoints_frame(endpoints: Any) -> pl.DataFrame:
    """A model's providers (``bench.api.catalog.ModelEndpoints``): prices, quantization, uptime, speed."""
    rows = []
    for e in endpoints.endpoints:
        lat, thr = e.latency_last_30m or {}, e.throughput_last_30m or {}
        rows.append({
            "provider": e.provider_name, "tag": e.tag, "quantization": e.quantization,
            "context_length": e.context_length, "max_completion_tokens": e.max_completion_tokens,
            "prompt_usd_per_m": _per_m(e.pricing.prompt, e.pricing.variable),
            "completion_usd_per_m": _per_m(e.pricing.completion, e.pricing.variable),
            "uptime_30m_pct": e.uptime_last_30m, "uptime_1d_pct": e.uptime_last_1d,
            "latency_p50_ms": _float(lat.get("p50")), "latency_p90_ms": _float(lat.get("p90")),
            "throughput_p50_tps": _float(thr.get("p50")), "status": e.status,
        })
    schema = {"provider": pl.String, "tag": pl.String, "quantization": pl.String,
              "context_length": pl.Int64, "max_completion_tokens": pl.Int64,
              "prompt_usd_per_m": pl.Float64, "completion_usd_per_m": pl.Float64,
              "uptime_30m_pct": pl.Float64, "uptime_1d_pct": pl.Float64, "latency_p50_ms": pl.Float64,
              "latency_p90_ms": pl.Float64, "throughput_p50_tps": pl.Float64, "status": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def monthly_costs(models: list[Model], prompt_tokens: int, completion_tokens: int,
                  requests_per_day: int, days: int = 30) -> pl.DataFrame:
    """List cost of a steady workload per model: per request and per month (Decimal -> float for charts).

    Variable-price (router) models get no figure rather than a guess.
    """
    rows = []
    for m in models:
        per_request = list_cost_usd(m.pricing, prompt_tokens, completion_tokens)
        monthly = None if per_request is None else per_request * requests_per_day * days
        rows.append({
            "model": m.id,
            "usd_per_request": None if per_request is None else float(per_request),
            "monthly_usd": None if monthly is None else float(monthly),
            "note": "variable price (router)" if per_request is None else "",
        })
    return pl.DataFrame(rows, schema={"model": pl.String, "usd_per_request": pl.Float64,
                                      "monthly_usd": pl.Float64, "note": pl.String})


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


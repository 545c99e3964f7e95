"""Catalog parsing and list-price arithmetic against every real catalog capture."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bench.api.catalog import (
    Model,
    Pricing,
    effective_prices,
    find_model,
    list_cost_usd,
    max_cost_usd,
    parse_endpoints,
    parse_models,
)
from bench.api.stream import parse_usage, web_search_requests
from tests._snapshots import cassette_interactions, load_json, response_body, sse_bytes

MODEL_DUMPS = {
    "models_2025-05-23_default-text_321.json": 321,
    "models_2025-12-18_default-text_349.json": 349,
    "models_2026-01-29_default-text_347.json": 347,
    "models_2026-07_fixture-6-models_newest-fields.json": 6,
    "models_2026-08-19_default-text_414.json": 414,
    "models_2026-08-19_output-modalities-all_549.json": 549,
}
ROUTERS = {"openrouter/auto", "openrouter/auto-beta", "openrouter/fusion", "openrouter/pareto-code",
           "openrouter/bodybuilder"}

_cache: dict[str, list[Model]] = {}


def models(name: str) -> list[Model]:
    if name not in _cache:
        _cache[name] = parse_models(load_json("models", name))
    return _cache[name]


def model(name: str, model_id: str) -> Model:
    found = find_model(models(name), model_id)
    assert found is not None, model_id
    return found


# ---------------------------------------------------------------- models
@pytest.mark.parametrize(("name", "count"), MODEL_DUMPS.items())
def test_every_model_of_every_dump_parses(name: str, count: int) -> None:
    raw = load_json("models", name)["data"]
    parsed = models(name)
    assert len(parsed) == count == len(raw)
    for m, r in zip(parsed, raw, strict=True):
        assert m.id == r["id"] and m.name == r["name"] and m.raw == r
        assert m.context_length == r["context_length"]
        assert m.input_modalities == r["architecture"]["input_modalities"]
        assert m.top_provider_max_completion_tokens == r["top_provider"]["max_completion_tokens"]
        assert m.supported_parameters == r["supported_parameters"]


@pytest.mark.parametrize("name", MODEL_DUMPS)
def test_every_price_of_every_dump_is_an_exact_decimal(name: str) -> None:
    seen = 0
    for m in models(name):
        for key, value in m.pricing.raw.items():
            if isinstance(value, str):
                assert m.pricing.get(key) == Decimal(value), (m.id, key)
                assert isinstance(m.pricing.get(key), Decimal)
                seen += 1
        assert m.pricing.variable == (m.id in ROUTERS)
    assert seen > 2 * len(models(name))


def test_variable_price_is_flagged_and_never_used() -> None:
    auto = model("models_2026-08-19_output-modalities-all_549.json", "openrouter/auto")
    assert auto.pricing.variable and auto.pricing.prompt == Decimal(-1)
    assert list_cost_usd(auto.pricing, 10, 10) is None
    assert max_cost_usd(auto.pricing, 10, 10) is None


def test_missing_and_null_price_keys_are_zero() -> None:
    sparse = model("models_2026-01-29_default-text_347.json", "openai/gpt-5-mini")
    assert "request" not in sparse.pricing.raw and sparse.pricing.request == Decimal(0)
    p = Pricing.from_dict({"prompt": "0.000001", "completion": "0.000002", "input_cache_write": None,
                           "discount": 0.25})
    assert p.input_cache_write == Decimal(0) and p.discount == 0.25 and not p.variable


def test_find_model_by_id_or_canonical_slug() -> None:
    catalog = models("models_2026-08-19_default-text_414.json")
    by_slug = find_model(catalog, "anthropic/claude-4.5-sonnet-20250929")
    assert by_slug is not None and by_slug.id == "anthropic/claude-sonnet-4.5"
    assert find_model(catalog, "anthropic/claude-sonnet-4.5") is by_slug
    assert find_model(catalog, "no/such-model") is None


def test_old_dump_has_no_new_fields() -> None:
    m = model("models_2025-05-23_default-text_321.json", "openai/gpt-4o-mini")
    assert m.canonical_slug is None and m.default_parameters is None and m.links is None
    assert m.pricing.prompt == Decimal("0.00000015")


def test_newest_fields_are_read() -> None:
    name = "models_2026-07_fixture-6-models_newest-fields.json"
    alias = model(name, "~google/gemini-pro-latest")
    assert alias.alias_target == {"name": "Google: Gemini 3.1 Pro Preview", "slug": "google/gemini-3.1-pro-preview"}
    assert alias.reasoning is not None and alias.reasoning["default_effort"] == "medium"
    assert alias.pricing.overrides and alias.pricing.overrides[0]["min_prompt_tokens"] == 200000
    opus = model(name, "anthropic/claude-opus-5")
    assert opus.canonical_slug == "anthropic/claude-opus-5-20260723"
    assert opus.pricing.get("input_cache_write_1h") == Decimal("0.00001")
    assert model(name, "openai/gpt-audio").pricing.get("audio_output") == Decimal("0.000064")
    sonnet = model("models_2026-08-19_default-text_414.json", "anthropic/claude-sonnet-4.5")
    assert sonnet.links == {"details": "/api/v1/models/anthropic/claude-4.5-sonnet-20250929/endpoints"}
    assert sonnet.knowledge_cutoff == "2025-01-31" and sonnet.top_provider_is_moderated is True
    assert sonnet.modality == "text+image+file->text" and sonnet.tokenizer == "Claude"


def test_unknown_fields_and_odd_entries_do_not_break_parsing() -> None:
    payload: dict[str, Any] = {"data": [
        {"id": "x/new", "brand_new": {"a": 1}, "pricing": {"prompt": "0.5", "future_price": "7",
                                                           "completion": 1e-06}},
        {"id": "x/bare"},
        {"name": "no id"},
        "not an object",
    ], "total_count": 4, "links": {"next": None}}
    parsed = parse_models(payload)
    assert [m.id for m in parsed] == ["x/new", "x/bare"]
    assert parsed[0].raw["brand_new"] == {"a": 1} and parsed[0].pricing.get("future_price") == Decimal(7)
    assert parsed[0].pricing.completion == Decimal("0.000001")
    assert parsed[1].name == "x/bare" and parsed[1].pricing == Pricing.from_dict({})
    assert parse_models([{"id": "a/b"}])[0].id == "a/b"
    assert parse_models({"object": "list"}) == []


def test_unparseable_main_price_makes_pricing_variable() -> None:
    assert Pricing.from_dict({"prompt": "free", "completion": "0"}).variable


# ---------------------------------------------------------------- endpoints
def test_endpoints_2025_old_shape() -> None:
    eps = parse_endpoints(load_json("endpoints", "endpoints_2025-05-23_google-gemini-2.5-pro-preview.json"))
    assert eps.id == "google/gemini-2.5-pro-preview" and eps.tokenizer == "Gemini"
    assert [e.provider_name for e in eps.endpoints] == ["Google", "Google AI Studio"]
    vertex = eps.endpoints[0]
    assert vertex.tag == "google-vertex" and vertex.max_completion_tokens == 65535
    assert vertex.pricing.image == Decimal("0.00516") and vertex.pricing.discount == 0.0
    assert vertex.uptime_last_30m is None and vertex.model_id is None and vertex.status == 0


def test_endpoints_degraded_azure() -> None:
    eps = parse_endpoints(load_json("endpoints", "endpoints_2026-late_openai-gpt-4o_fener-fixture.json"))
    openai, azure = eps.endpoints
    assert openai.pricing.input_cache_read == Decimal("0.00000125")
    assert azure.status == -2 and azure.uptime_last_30m == pytest.approx(91.12676056338029)
    assert azure.latency_last_30m is None and azure.throughput_last_30m is None
    assert azure.supports_implicit_caching is False and azure.model_id == "openai/gpt-4o"


def test_endpoints_newest_fields() -> None:
    eps = parse_endpoints(load_json("endpoints", "endpoints_2026-09plus_deepseek-v4.1-flash_whichapiapi-fixture.json"))
    relace, wafer = eps.endpoints
    assert relace.name == "Relace | deepseek/deepseek-v4.1-flash-20260910"
    assert relace.quantization == "unknown" and relace.max_completion_tokens == 943718
    assert relace.uptime_last_5m == pytest.approx(99.95531724754245)
    assert wafer.pricing.input_cache_read == Decimal("0.0000000245")
    assert "logprobs" in wafer.supported_parameters and "logprobs" not in relace.supported_parameters
    assert relace.raw["supports_tool_choice"]["required"] is False


def test_endpoints_with_authenticated_stats() -> None:
    """API.md section 2.2 (constructed): latency in ms and throughput are kept as given."""
    eps = parse_endpoints({"data": {"id": "acme/w", "endpoints": [{
        "name": "FastCloud | acme/w", "pricing": {"prompt": "0.0000004", "completion": "0.0000016"},
        "latency_last_30m": {"p50": 480, "p75": 610, "p90": 900, "p99": 2400},
        "throughput_last_30m": {"p50": 95, "p75": 110, "p90": 128, "p99": 160}}]}})
    assert eps.endpoints[0].latency_last_30m == {"p50": 480, "p75": 610, "p90": 900, "p99": 2400}
    assert eps.endpoints[0].throughput_last_30m is not None


# ---------------------------------------------------------------- list cost (API.md 5.5)
def test_cost_reconciliation_claude_sonnet_46_cache_write_then_read() -> None:
    pricing = model("models_2026-08-19_default-text_414.json", "anthropic/claude-4.6-sonnet-20260217").pricing
    for interaction, expected in zip(
        cassette_interactions("chat_completions", "pydantic-ai_test_openrouter_cache_messages_anthropic_real_api.yaml"),
        [Decimal("0.01355025"), Decimal("0.00219855")], strict=True,
    ):
        u = parse_usage(response_body(interaction)["usage"])
        cost = list_cost_usd(pricing, u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cache_write_tokens)
        assert cost == expected == u.cost_usd


def test_cost_reconciliation_grok_4_stream() -> None:
    pricing = model("models_2025-12-18_default-text_349.json", "x-ai/grok-4").pricing
    usage = parse_usage(_last_usage("pydantic-ai_test_openrouter_stream_with_native_options.sse.txt"))
    cost = list_cost_usd(pricing, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
                         reasoning_tokens=usage.reasoning_tokens)
    assert cost == Decimal("0.00333825") == usage.cost_usd


def test_cost_reconciliation_gpt_5_mini_reasoning_at_completion_price() -> None:
    pricing = model("models_2025-12-18_default-text_349.json", "openai/gpt-5-mini").pricing
    body = response_body(cassette_interactions("chat_completions", "pydantic-ai_test_openrouter_usage.yaml")[1])
    u = parse_usage(body["usage"])
    assert u.completion_tokens is not None
    assert u.completion_tokens * pricing.completion == Decimal("0.004354")
    cost = list_cost_usd(pricing, u.prompt_tokens, u.completion_tokens, reasoning_tokens=u.reasoning_tokens)
    assert cost == Decimal("0.00435825") == u.cost_usd


def test_cost_reconciliation_web_search_fee() -> None:
    pricing = model("models_2026-08-19_default-text_414.json", "openai/gpt-4.1-mini").pricing
    raw = _last_usage("pydantic-ai_test_openrouter_web_search_tool_usage_stream.sse.txt")
    u = parse_usage(raw)
    cost = list_cost_usd(pricing, u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cache_write_tokens,
                         web_search_requests=web_search_requests(raw))
    assert cost == Decimal("0.0133176") == u.cost_usd
    assert list_cost_usd(pricing, u.prompt_tokens, u.completion_tokens) == Decimal("0.0033176")


def test_long_context_override_applies_strictly_above_threshold() -> None:
    pricing = model("models_2026-08-19_default-text_414.json", "anthropic/claude-sonnet-4.5").pricing
    assert list_cost_usd(pricing, 200_000, 0) == Decimal("0.6")  # 200000 x $3/M
    assert list_cost_usd(pricing, 200_001, 0) == Decimal("1.200006")  # x $6/M
    assert list_cost_usd(pricing, 200_001, 1000, cached_tokens=1) == (
        Decimal(200_000) * Decimal("0.000006") + Decimal("0.0000006") + 1000 * Decimal("0.0000225"))
    assert max_cost_usd(pricing, 250_000, 1000) == Decimal("1.5225")


def test_time_window_overrides_are_ignored() -> None:
    pricing = model("models_2026-08-19_output-modalities-all_549.json", "deepseek/deepseek-v4-pro").pricing
    assert len(pricing.overrides) == 4 and all("utc_start" in o for o in pricing.overrides)
    assert effective_prices(pricing, 10**7)["prompt"] == Decimal("0.00000066")
    assert list_cost_usd(pricing, 1000, 1000) == Decimal("0.00066") + Decimal("0.00198")


def test_later_size_override_wins_and_unknown_conditions_are_skipped() -> None:
    pricing = Pricing.from_dict({"prompt": "1", "completion": "2", "overrides": [
        {"min_prompt_tokens": 10, "prompt": "3"},
        {"min_prompt_tokens": 20, "prompt": "4", "completion": "5"},
        {"min_prompt_tokens": 20, "utc_days": [1], "prompt": "99"},
        {"min_prompt_tokens": 20, "some_new_condition": True, "prompt": "98"},
    ]})
    assert effective_prices(pricing, 15)["prompt"] == Decimal(3)
    assert (effective_prices(pricing, 25)["prompt"], effective_prices(pricing, 25)["completion"]) == (4, 5)
    assert effective_prices(pricing, 10)["prompt"] == Decimal(1)


def test_request_fee_and_internal_reasoning_price() -> None:
    search = model("models_2025-12-18_default-text_349.json", "perplexity/sonar").pricing
    assert list_cost_usd(search, 0, 0) == Decimal("0.005")
    deep = model("models_2026-08-19_default-text_414.json", "perplexity/sonar-deep-research").pricing
    # 100 completion tokens of which 40 reasoning: 60 x $8/M + 40 x $3/M
    assert list_cost_usd(deep, 0, 100, reasoning_tokens=40) == Decimal("0.0006")
    assert max_cost_usd(deep, 0, 100) == Decimal("0.0008")


def test_list_cost_needs_token_counts() -> None:
    pricing = Pricing.from_dict({"prompt": "0.000001", "completion": "0.000002"})
    assert list_cost_usd(pricing, None, 5) is None and list_cost_usd(pricing, 5, None) is None
    assert max_cost_usd(pricing, 5, None) is None
    assert list_cost_usd(pricing, 5, 5, None, None, None) == Decimal("0.000015")


def _last_usage(name: str) -> dict[str, Any]:
    import json

    usage = None
    for line in sse_bytes(name).decode().splitlines():
        if line.startswith("data: {"):
            usage = json.loads(line[6:]).get("usage") or usage
    assert usage is not None
    found: dict[str, Any] = usage
    return found

"""The sandbox (bench.sandbox) against plain httpx on loopback: shapes, grammar, timing, faults.

Independent of bench.api.client on purpose: these tests pin down the server side so the
client's own tests can trust it. ``time_scale`` keeps the simulated delays short.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bench.sandbox import FAULT_NAMES, serve_forever, start_sandbox

SCALE = 0.02
MODEL_FIELDS = {
    "id", "canonical_slug", "hugging_face_id", "name", "created", "description", "context_length",
    "architecture", "pricing", "top_provider", "per_request_limits", "supported_parameters",
    "default_parameters", "supported_voices", "knowledge_cutoff", "expiration_date", "links",
}
ENDPOINT_FIELDS = {
    "name", "model_id", "model_name", "context_length", "pricing", "provider_name", "tag", "quantization",
    "max_completion_tokens", "max_prompt_tokens", "supported_parameters", "supports_tool_choice", "status",
    "uptime_last_5m", "uptime_last_30m", "uptime_last_1d", "supports_implicit_caching",
    "latency_last_30m", "throughput_last_30m",
}
REAL_MODELS = [
    "openai/gpt-4o-mini", "openai/gpt-4o", "openai/gpt-4.1-mini", "anthropic/claude-sonnet-4.5",
    "anthropic/claude-3.5-haiku", "google/gemini-2.5-flash", "google/gemini-2.5-pro",
    "meta-llama/llama-3.3-70b-instruct", "meta-llama/llama-3.1-8b-instruct",
    "mistralai/mistral-small-3.2-24b-instruct", "deepseek/deepseek-chat-v3.1", "qwen/qwen3-32b", "x-ai/grok-4",
]
LLAMA = "meta-llama/llama-3.3-70b-instruct"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city", "days"]}}}


def _nemo_answer(body: dict[str, Any]) -> str:
    return "callable says " + str(len(body["messages"]))


@pytest.fixture(scope="module")
def sb():
    with start_sandbox(seed=7, time_scale=SCALE,
                       answers={"openai/gpt-4.1-nano": "Paris.", "mistralai/mistral-nemo": _nemo_answer},
                       faults={"openai/gpt-4.1": "503;times=1;retry_after=2"}) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(sb):
    with httpx.Client(base_url=sb.base_url, timeout=10) as c:
        yield c


def body(model: str = "openai/gpt-4o-mini", text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


class Stream:
    """One SSE response read to the end, with arrival times of data events."""

    def __init__(self, client: httpx.Client, payload: dict[str, Any], headers: dict[str, str] | None = None):
        self.t0 = time.perf_counter_ns()
        self.lines: list[str] = []
        self.chunks: list[dict[str, Any]] = []
        self.arrivals: list[int] = []
        with client.stream("POST", "/chat/completions", json={**payload, "stream": True},
                           headers=headers or {}) as resp:
            self.status = resp.status_code
            self.headers = resp.headers
            self.t_headers = time.perf_counter_ns()
            if resp.status_code != 200:
                resp.read()
                self.error = resp.json()
                return
            for line in resp.iter_lines():
                self.lines.append(line)
                if line.startswith("data: ") and line != "data: [DONE]":
                    self.chunks.append(json.loads(line[6:], parse_float=Decimal))
                    self.arrivals.append(time.perf_counter_ns())

    @property
    def content_chunks(self) -> list[dict[str, Any]]:
        return [c for c in self.chunks if c.get("choices") and c["choices"][0]["delta"].get("content")]

    @property
    def text(self) -> str:
        return "".join(c["choices"][0]["delta"]["content"] for c in self.content_chunks)

    @property
    def usage(self) -> dict[str, Any]:
        return next(c["usage"] for c in self.chunks if "usage" in c)

    @property
    def provider(self) -> str:
        return self.chunks[0]["provider"]

    def output_arrivals(self) -> list[int]:
        """Arrival times of events carrying generated output (METRICS.md first-token rule)."""
        out = []
        for chunk, t in zip(self.chunks, self.arrivals):
            delta = chunk["choices"][0]["delta"] if chunk.get("choices") else {}
            if delta.get("content") or delta.get("reasoning") or delta.get("tool_calls"):
                out.append(t)
        assert out, "no output event"
        return out

    def first_output_ns(self) -> int:
        return self.output_arrivals()[0]

    @property
    def done(self) -> bool:
        return [line for line in self.lines if line][-1] == "data: [DONE]"


def pinned(tag: str) -> dict[str, Any]:
    return {"provider": {"order": [tag], "allow_fallbacks": False}}


def catalog_endpoint(client: httpx.Client, model: str, tag: str) -> dict[str, Any]:
    endpoints = client.get(f"/models/{model}/endpoints").json()["data"]["endpoints"]
    return next(e for e in endpoints if e["tag"] == tag)


# --- start-up, catalog ---------------------------------------------------------------------------


def test_start_is_fast_and_everything_is_marked_simulated():
    t = time.perf_counter()
    handle = start_sandbox(time_scale=0)
    elapsed = time.perf_counter() - t
    try:
        assert elapsed < 2.0, f"start-up took {elapsed:.3f} s"
        assert handle.base_url == f"http://127.0.0.1:{handle.port}/api/v1"
        with httpx.Client(base_url=handle.base_url) as c:
            for resp in (c.get("/models"), c.get("/nope"), c.post("/chat/completions", json=body())):
                assert resp.headers["x-orbench-simulated"] == "true"
    finally:
        handle.stop()
    handle.stop()  # idempotent


def test_models_envelope_has_every_field(client):
    resp = client.get("/models")
    payload = resp.json()
    assert set(payload) == {"data", "total_count", "links"}
    assert payload["total_count"] == len(payload["data"]) and payload["links"] == {"next": None}
    ids = {m["id"] for m in payload["data"]}
    assert set(REAL_MODELS) <= ids
    assert len([i for i in ids if not i.startswith(("sandbox/", "openrouter/", "~"))]) >= 30
    for model in payload["data"]:
        assert MODEL_FIELDS <= set(model), model["id"]
        assert set(model["top_provider"]) == {"context_length", "max_completion_tokens", "is_moderated"}
        Decimal(model["pricing"]["prompt"]), Decimal(model["pricing"]["completion"])
    auto = next(m for m in payload["data"] if m["id"] == "openrouter/auto")
    assert auto["pricing"]["prompt"] == auto["pricing"]["completion"] == "-1"
    alias = next(m for m in payload["data"] if m["id"].startswith("~"))
    assert alias["alias_target"]["slug"] in ids


def test_models_filters(client):
    vision = client.get("/models", params={"input_modalities": "image"}).json()["data"]
    assert vision and all("image" in m["architecture"]["input_modalities"] for m in vision)
    assert "meta-llama/llama-3.3-70b-instruct" not in {m["id"] for m in vision}
    tools = client.get("/models", params={"supported_parameters": "tools,response_format"}).json()["data"]
    assert tools and all({"tools", "response_format"} <= set(m["supported_parameters"]) for m in tools)
    found = client.get("/models", params={"q": "claude"}).json()["data"]
    assert found and all("claude" in (m["id"] + m["name"]).lower() for m in found)
    assert client.get("/models", params={"output_modalities": "all"}).json()["total_count"] >= 30
    page = client.get("/models", params={"limit": 5}).json()
    assert len(page["data"]) == 5 and page["links"]["next"]


def test_endpoints_shape_and_stats_match_the_simulation(client):
    payload = client.get(f"/models/{LLAMA}/endpoints").json()["data"]
    assert payload["id"] == LLAMA and {"name", "created", "description", "architecture"} <= set(payload)
    endpoints = payload["endpoints"]
    assert len(endpoints) >= 2
    for e in endpoints:
        assert ENDPOINT_FIELDS <= set(e)
        assert "(simulated)" in e["provider_name"] and e["name"].startswith(e["provider_name"])
        lat = e["latency_last_30m"]
        assert 20 < lat["p50"] < lat["p75"] < lat["p90"] < lat["p99"]  # milliseconds
        assert set(e["throughput_last_30m"]) == {"p50", "p75", "p90", "p99"}
    speeds = {e["tag"]: e["throughput_last_30m"]["p50"] for e in endpoints}
    assert speeds["cerebras"] > speeds["groq"] > speeds["deepinfra"]
    assert client.get("/models/nobody/nothing/endpoints").status_code == 404


def test_every_real_model_has_two_simulated_providers(client):
    for model in REAL_MODELS:
        endpoints = client.get(f"/models/{model}/endpoints").json()["data"]["endpoints"]
        assert len(endpoints) >= 2, model
        assert len({e["throughput_last_30m"]["p50"] for e in endpoints}) >= 2, model


# --- SSE grammar ---------------------------------------------------------------------------------


def test_stream_grammar(client):
    s = Stream(client, body("anthropic/claude-sonnet-4.5", max_tokens=12, **pinned("anthropic")))
    assert s.status == 200 and s.headers["content-type"] == "text/event-stream"
    assert s.headers["x-generation-id"] == s.chunks[0]["id"]
    assert s.lines[0] == ": OPENROUTER PROCESSING"  # keep-alive comment before the first data line
    assert s.done
    first = s.chunks[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["object"] == "chat.completion.chunk" and first["provider"] == "Anthropic (simulated)"
    finish = [c for c in s.chunks if c.get("choices") and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "length"
    assert finish[0]["choices"][0]["native_finish_reason"] == "max_tokens"
    last = s.chunks[-1]
    assert last["choices"] == [] and "usage" in last and "x_orbench" in last
    usage = s.usage
    assert usage["completion_tokens"] == 12 == len(s.content_chunks)  # one token per event here
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_usage_chunk_echo_shape_and_two_token_events(client):
    echo = Stream(client, body("openai/gpt-4o-mini", max_tokens=20, **pinned("openai")))
    assert len(echo.chunks[-1]["choices"]) == 1 and echo.chunks[-1]["choices"][0]["delta"]["content"] == ""
    assert not any(line.startswith(":") for line in echo.lines)  # this provider sends no comments
    batched = Stream(client, body("openai/gpt-4o-mini", max_tokens=20, **pinned("azure")))
    assert batched.usage["completion_tokens"] == 20
    assert len(batched.content_chunks) < 20  # some events carry two tokens


# --- cost, determinism, timing -------------------------------------------------------------------


def _expected_cost(client: httpx.Client, model: str, tag: str, usage: dict[str, Any]) -> Decimal:
    prices = catalog_endpoint(client, model, tag)["pricing"]
    return (Decimal(prices["prompt"]) * usage["prompt_tokens"]
            + Decimal(prices["completion"]) * usage["completion_tokens"])


@pytest.mark.parametrize("model,tag", [(LLAMA, "groq"), (LLAMA, "deepinfra/turbo"),
                                       ("openai/gpt-4o", "openai"), ("google/gemini-2.5-flash", "google-vertex")])
def test_cost_is_catalog_price_times_tokens(client, model, tag):
    s = Stream(client, body(model, "price check " * 30, max_tokens=17, **pinned(tag)))
    assert s.usage["cost"] == _expected_cost(client, model, tag, s.usage)
    details = s.usage["cost_details"]
    assert details["upstream_inference_prompt_cost"] + details["upstream_inference_completions_cost"] == s.usage["cost"]
    resp = client.post("/chat/completions", json=body(model, "price check " * 30, max_tokens=17, **pinned(tag)))
    usage = json.loads(resp.content, parse_float=Decimal)["usage"]
    assert usage["cost"] == s.usage["cost"]


def test_long_context_override_price_applies():
    with start_sandbox(time_scale=0) as handle, httpx.Client(base_url=handle.base_url, timeout=30) as c:
        model = "anthropic/claude-sonnet-4.5"
        resp = c.post("/chat/completions", json=body(model, "x" * 820_000, max_tokens=3, **pinned("anthropic")))
        usage = json.loads(resp.content, parse_float=Decimal)["usage"]
        assert usage["prompt_tokens"] > 200_000
        assert usage["cost"] == Decimal("0.000006") * usage["prompt_tokens"] + Decimal("0.0000225") * 3


def test_same_seed_same_output_other_seed_differs():
    results = []
    for seed in (3, 3, 4):
        with start_sandbox(seed=seed, time_scale=0) as handle, httpx.Client(base_url=handle.base_url) as c:
            s = Stream(c, body(LLAMA, "Tell me something", max_tokens=30))
            results.append((s.text, s.provider, s.usage["completion_tokens"],
                            s.chunks[-1]["x_orbench"]["ttft_target_ms"]))
    assert results[0] == results[1]
    assert results[0][0] != results[2][0]


@pytest.fixture(scope="module")
def timing_client():
    """A slower sandbox for tests comparing measured times: margins stay far above scheduling noise."""
    with start_sandbox(seed=7, time_scale=0.2) as handle, httpx.Client(base_url=handle.base_url, timeout=10) as c:
        yield c


def test_ttft_grows_with_prompt_length(client, sb, timing_client):
    tag = "novita"
    prefill_ms = next(e for e in sb.catalog.get(LLAMA).endpoints if e.tag == tag).prefill_ms_per_token
    short = Stream(client, body(LLAMA, "short question", max_tokens=3, **pinned(tag)))
    long = Stream(client, body(LLAMA, "long context " * 4000, max_tokens=3, **pinned(tag)))
    target_short = short.chunks[-1]["x_orbench"]["ttft_target_ms"]
    target_long = long.chunks[-1]["x_orbench"]["ttft_target_ms"]
    extra_tokens = long.usage["prompt_tokens"] - short.usage["prompt_tokens"]
    assert target_long - target_short > 0.8 * extra_tokens * prefill_ms * SCALE
    short = Stream(timing_client, body(LLAMA, "short question", max_tokens=2, **pinned(tag)))
    long = Stream(timing_client, body(LLAMA, "long context " * 4000, max_tokens=2, **pinned(tag)))
    assert long.first_output_ns() - long.t0 > short.first_output_ns() - short.t0 + 200e6  # ~400 ms apart


def test_ttft_differs_across_providers(client, timing_client):
    fast = Stream(client, body(LLAMA, "same prompt", max_tokens=3, **pinned("groq")))
    slow = Stream(client, body(LLAMA, "same prompt", max_tokens=3, **pinned("novita")))
    assert slow.chunks[-1]["x_orbench"]["ttft_target_ms"] > 2 * fast.chunks[-1]["x_orbench"]["ttft_target_ms"]
    fast = Stream(timing_client, body(LLAMA, "same prompt", max_tokens=2, **pinned("groq")))
    slow = Stream(timing_client, body(LLAMA, "same prompt", max_tokens=2, **pinned("novita")))
    assert slow.first_output_ns() - slow.t0 > fast.first_output_ns() - fast.t0 + 80e6  # ~170 ms apart


def test_decode_rate_is_exact_and_first_token_time_is_recorded():
    with start_sandbox(time_scale=1.0) as handle, httpx.Client(base_url=handle.base_url) as c:
        tps = catalog_endpoint(c, LLAMA, "groq")["throughput_last_30m"]["p50"]
        s = Stream(c, body(LLAMA, "hi", max_tokens=160, **pinned("groq")))
        timing = s.chunks[-1]["x_orbench"]
        expected_s = 159 / tps  # deadlines are absolute: only a late first token could shorten this
        server_s = (timing["t_last_token_perf_ns"] - timing["t_first_token_perf_ns"]) / 1e9
        # loose enough for a loaded 2-core CI box; on an idle one both are within 1-2 %
        assert server_s == pytest.approx(expected_s, rel=0.1)
        client_s = (s.output_arrivals()[-1] - s.first_output_ns()) / 1e9
        assert client_s == pytest.approx(expected_s, rel=0.2)
        gen = handle.state.generations[s.chunks[0]["id"]]
        assert gen.t_first_token_perf_ns == timing["t_first_token_perf_ns"]
        overhead_ms = (s.first_output_ns() - gen.t_first_token_perf_ns) / 1e6
        assert 0 <= overhead_ms < 50  # server send -> client parse, same process clock


# --- routing -------------------------------------------------------------------------------------


def test_routing_only_order_ignore_sort(client):
    def served(**provider: Any) -> str:
        return Stream(client, body(LLAMA, "route me", max_tokens=2, provider=provider)).provider

    assert served(only=["groq"]) == "Groq (simulated)"
    assert served(order=["cerebras", "groq"]) == "Cerebras (simulated)"
    assert served(only=["deepinfra"], sort="throughput") == "DeepInfra (simulated)"
    kept = served(ignore=["deepinfra", "novita", "groq", "cerebras"])
    assert kept == "Together (simulated)"
    assert served(sort="price") == "DeepInfra (simulated)"
    assert served(sort="throughput") == "Cerebras (simulated)"
    assert served(sort={"by": "latency"}) == "Groq (simulated)"
    resp = client.post("/chat/completions", json=body(LLAMA, provider={"only": ["nobody"]}))
    assert resp.status_code == 404 and resp.json()["error"]["code"] == 404


def test_allow_fallbacks(client, sb):
    fault = {"X-Sandbox-Fault": "502;provider=groq"}
    strict = client.post("/chat/completions", json=body(LLAMA, "fb", max_tokens=2, **pinned("groq")), headers=fault)
    assert strict.status_code == 502 and strict.json()["error"]["metadata"]["provider_name"] == "Groq (simulated)"
    loose = Stream(client, body(LLAMA, "fb", max_tokens=2, provider={"order": ["groq"]}), headers=fault)
    assert loose.status == 200 and loose.provider != "Groq (simulated)"
    gen = client.get("/generation", params={"id": loose.chunks[0]["id"]}).json()["data"]
    assert [(r["provider_name"], r["status"]) for r in gen["provider_responses"]] == [
        ("Groq (simulated)", 502), (loose.provider, 200)]


def test_default_routing_prefers_cheapest_with_load_balancing(client):
    counts: dict[str, int] = {}
    for i in range(40):
        s = Stream(client, body(LLAMA, "balance", max_tokens=1), headers={"X-Sandbox-Request-Id": f"lb-{i}"})
        counts[s.provider] = counts.get(s.provider, 0) + 1
    assert len(counts) >= 2
    assert max(counts, key=counts.__getitem__) == "DeepInfra (simulated)"  # cheapest tag deepinfra/turbo
    assert counts.get("Groq (simulated)", 0) <= 4


def test_auto_router_names_the_model_it_picked(client):
    s = Stream(client, body("openrouter/auto", "which model?", max_tokens=3))
    assert s.chunks[0]["model"] != "openrouter/auto"
    assert client.get(f"/models/{s.chunks[0]['model']}/endpoints").status_code == 200
    gen = client.get("/generation", params={"id": s.chunks[0]["id"]}).json()["data"]
    assert gen["router"] == "openrouter/auto" and gen["model"] == s.chunks[0]["model"]
    only = body("openrouter/auto", "which model?", max_tokens=3,
                plugins=[{"id": "auto-router", "allowed_models": ["anthropic/*"]}])
    assert client.post("/chat/completions", json=only).json()["model"].startswith("anthropic/")


def test_reply_may_name_the_canonical_slug(client):
    resp = client.post("/chat/completions", json=body("openai/gpt-5-mini", max_tokens=2))
    assert resp.json()["model"] == "openai/gpt-5-mini-2025-08-07"


def test_models_fallback_list(client):
    resp = client.post("/chat/completions", json={**body("sandbox/fault-503", max_tokens=2),
                                                  "models": ["openai/gpt-4o-mini"]})
    assert resp.status_code == 200 and resp.json()["model"] == "openai/gpt-4o-mini"


# --- account endpoints ---------------------------------------------------------------------------


def test_key_tracks_spend_and_limit():
    with start_sandbox(time_scale=0, key_limit_usd="0.001") as handle, httpx.Client(base_url=handle.base_url) as c:
        key = c.get("/key").json()["data"]
        assert key["usage"] == 0 and key["limit"] == 0.001 and key["limit_remaining"] == 0.001
        costs = []
        for _ in range(2):
            resp = c.post("/chat/completions", json=body("openai/gpt-4o", max_tokens=20))
            costs.append(json.loads(resp.content, parse_float=Decimal)["usage"]["cost"])
        key = json.loads(c.get("/key").content, parse_float=Decimal)["data"]
        assert key["usage"] == sum(costs) == handle.state.spend_usd
        assert key["limit_remaining"] == Decimal("0.001") - sum(costs)
        legacy = json.loads(c.get("/auth/key").content, parse_float=Decimal)["data"]
        assert legacy["usage"] == sum(costs) and legacy["limit"] == Decimal("0.001")
        statuses = [c.post("/chat/completions", json=body("openai/gpt-4o", max_tokens=20)).status_code
                    for _ in range(6)]
        assert statuses[-1] == 402 and handle.state.spend_usd >= Decimal("0.001")
        assert c.get("/key").json()["data"]["limit_remaining"] == 0


def test_credits_need_a_management_key(client):
    assert client.get("/credits").status_code == 403
    assert client.get("/credits", headers={"Authorization": "Bearer sk-or-v1-normal"}).status_code == 403
    resp = client.get("/credits", headers={"Authorization": "Bearer sk-or-mgmt-abc"})
    data = resp.json()["data"]
    assert resp.status_code == 200 and set(data) == {"total_credits", "total_usage"}
    assert data["total_credits"] == 25


def test_rejected_key_gets_401_on_every_authed_endpoint(client):
    auth = {"Authorization": "Bearer sk-or-v1-rejected"}
    for resp in (client.get("/key", headers=auth), client.get("/auth/key", headers=auth),
                 client.get("/credits", headers=auth), client.get("/generation?id=x", headers=auth),
                 client.post("/chat/completions", json=body(), headers=auth)):
        assert resp.status_code == 401
        assert resp.json()["error"] == {"code": 401, "message": "User not found."}
    assert client.get("/models", headers=auth).status_code == 200


def test_generation_lookup(client, sb):
    s = Stream(client, body("anthropic/claude-haiku-4.5", "gen lookup", max_tokens=8))
    gen = client.get("/generation", params={"id": s.chunks[0]["id"]}).json()["data"]
    assert gen["id"] == s.chunks[0]["id"] and gen["provider_name"] == s.provider
    assert gen["model"] == "anthropic/claude-haiku-4.5" and gen["streamed"] is True
    assert gen["native_tokens_prompt"] == s.usage["prompt_tokens"] and gen["tokens_completion"] == 8
    assert gen["finish_reason"] == "length" and gen["native_finish_reason"] == "max_tokens"
    assert gen["total_cost"] == pytest.approx(float(s.usage["cost"]))
    assert 0 < gen["latency"] <= gen["generation_time"]
    assert gen["provider_responses"][-1]["status"] == 200
    assert client.get("/generation", params={"id": "gen-0-nope"}).status_code == 404


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["429", "402", "401", "500", "502", "503"])
def test_status_faults(client, name):
    resp = client.post("/chat/completions", json=body(max_tokens=2), headers={"X-Sandbox-Fault": name})
    assert resp.status_code == int(name) and resp.json()["error"]["code"] == int(name)
    if name == "429":
        assert resp.headers["retry-after"] == "1"


def test_fault_times_then_success(client):
    headers = {"X-Sandbox-Fault": "429;times=2;retry_after=3", "X-Sandbox-Request-Id": "retry-me"}
    statuses = []
    for _ in range(3):
        resp = client.post("/chat/completions", json=body(max_tokens=2), headers=headers)
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            assert resp.headers["retry-after"] == "3"
    assert statuses == [429, 429, 200]


def test_fault_from_start_map_and_model_ids(client):
    first = client.post("/chat/completions", json=body("openai/gpt-4.1", max_tokens=2))
    assert first.status_code == 503 and first.headers["retry-after"] == "2"
    assert client.post("/chat/completions", json=body("openai/gpt-4.1", max_tokens=2)).status_code == 200
    listed = {m["id"] for m in client.get("/models").json()["data"]}
    for name in FAULT_NAMES:
        assert f"sandbox/fault-{name}" in listed
    assert client.post("/chat/completions", json=body("sandbox/fault-429")).status_code == 429


def test_stream_error_fault(client):
    s = Stream(client, body(max_tokens=20, **pinned("openai")), headers={"X-Sandbox-Fault": "stream_error;after=4"})
    assert s.status == 200
    assert len(s.content_chunks) == 4
    err = next(c for c in s.chunks if "error" in c)
    assert err["error"]["code"] == 502 and err["error"]["message"] == "Provider disconnected"
    assert err["choices"][0]["finish_reason"] == "error" and err["usage"]["completion_tokens"] == 4
    assert s.done
    resp = client.post("/chat/completions", json=body(max_tokens=20), headers={"X-Sandbox-Fault": "stream_error"})
    assert resp.status_code == 200 and resp.json()["choices"][0]["finish_reason"] == "error"


def test_reset_fault_drops_the_connection(client):
    seen = []
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        with client.stream("POST", "/chat/completions", json=body(max_tokens=20, stream=True),
                           headers={"X-Sandbox-Fault": "reset;after=3"}) as resp:
            for line in resp.iter_lines():
                seen.append(line)
    assert "data: [DONE]" not in seen
    assert sum('"content":"' in line and '"content":""' not in line for line in seen) == 3


def test_stall_fault_goes_silent(client):
    payload = body(max_tokens=6, stream=True)
    stall = {"X-Sandbox-Fault": "stall;seconds=0.4;after=2"}
    s = Stream(client, payload, headers=stall)
    gaps = [(b - a) / 1e9 for a, b in zip(s.arrivals, s.arrivals[1:])]
    assert max(gaps) >= 0.38 and s.usage["completion_tokens"] == 6
    with pytest.raises(httpx.ReadTimeout):
        with client.stream("POST", "/chat/completions", json=payload, headers=stall,
                           timeout=httpx.Timeout(5, read=0.15)) as resp:
            for _ in resp.iter_lines():
                pass


def test_slow_headers_fault(client):
    s = Stream(client, body(max_tokens=2), headers={"X-Sandbox-Fault": "slow_headers;seconds=0.3"})
    assert (s.t_headers - s.t0) / 1e9 >= 0.28 and s.status == 200


def test_unknown_fault_and_bad_requests(client):
    assert client.post("/chat/completions", json=body(), headers={"X-Sandbox-Fault": "gremlins"}).status_code == 400
    assert client.post("/chat/completions", json=body("nobody/nothing")).status_code == 400
    assert client.post("/chat/completions", content=b"{not json").status_code == 400
    assert client.post("/chat/completions", json={"model": "openai/gpt-4o"}).status_code == 400
    image = {"role": "user", "content": [{"type": "text", "text": "what is this"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
    text_only = client.post("/chat/completions", json={"model": LLAMA, "messages": [image]})
    assert text_only.status_code == 404
    vision = client.post("/chat/completions",
                         json={"model": "openai/gpt-4o-mini", "messages": [image], "max_tokens": 2})
    assert vision.status_code == 200 and vision.json()["usage"]["prompt_tokens"] > 85


# --- scripted answers, tools, structured output, reasoning ------------------------------------------


def test_scripted_answers(client):
    s = Stream(client, body(text="Question? [[answer: The answer is 42.]]", max_tokens=50, **pinned("openai")))
    assert s.text == "The answer is 42." and s.chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert s.usage["completion_tokens"] == len(s.content_chunks) == 5  # The| answer| is| 42|.
    header = client.post("/chat/completions", json=body(max_tokens=50), headers={"X-Sandbox-Answer": "Oslo"})
    assert header.json()["choices"][0]["message"]["content"] == "Oslo"
    cut = client.post("/chat/completions", json=body(text="[[answer: one two three four five]]", max_tokens=3))
    assert cut.json()["choices"][0]["message"]["content"] == "one two three"
    assert cut.json()["choices"][0]["finish_reason"] == "length"
    mapped = client.post("/chat/completions", json=body("openai/gpt-4.1-nano", max_tokens=50))
    assert mapped.json()["choices"][0]["message"]["content"] == "Paris."
    called = client.post("/chat/completions", json=body("mistralai/mistral-nemo", max_tokens=50))
    assert called.json()["choices"][0]["message"]["content"] == "callable says 1"
    stopped = client.post("/chat/completions", json=body(text="[[answer: alpha beta END gamma]]", stop=["END"]))
    assert stopped.json()["choices"][0]["message"]["content"] == "alpha beta "


def test_tool_call_fragments(client):
    prompt = 'Weather? [[tool: get_weather {"city": "Oslo", "days": 2}]]'
    s = Stream(client, body(text=prompt, tools=[WEATHER_TOOL], max_tokens=100))
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in s.chunks
             if c.get("choices") and c["choices"][0]["delta"].get("tool_calls")]
    head, rest = calls[0], calls[1:]
    assert head["id"].startswith("call_") and head["type"] == "function"
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    assert rest and all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in rest)
    assert json.loads("".join(f["function"]["arguments"] for f in rest)) == {"city": "Oslo", "days": 2}
    finish = next(c for c in s.chunks if c.get("choices") and c["choices"][0]["finish_reason"])
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    plain = client.post("/chat/completions", json=body(text=prompt, tools=[WEATHER_TOOL]))
    message = plain.json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "get_weather" and message["content"] is None


def test_forced_tool_choice_builds_arguments_from_the_schema(client):
    forced = body(text="no marker", tools=[WEATHER_TOOL],
                  tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = client.post("/chat/completions", json=forced).json()["choices"][0]["message"]["tool_calls"][0]
    args = json.loads(call["function"]["arguments"])
    assert set(args) == {"city", "days"} and isinstance(args["days"], int)
    off = client.post("/chat/completions", json={**forced, "tool_choice": "none", "max_tokens": 3}).json()
    assert off["choices"][0]["message"]["tool_calls"] == []


def test_response_format_gives_valid_json(client):
    obj = client.post("/chat/completions", json=body(response_format={"type": "json_object"}, max_tokens=200))
    assert isinstance(json.loads(obj.json()["choices"][0]["message"]["content"]), dict)
    schema = {"type": "object", "properties": {"score": {"type": "number"}, "label": {"enum": ["good", "bad"]}},
              "required": ["score", "label"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "grade", "schema": schema}}
    parsed = json.loads(client.post("/chat/completions", json=body(response_format=fmt, max_tokens=200))
                        .json()["choices"][0]["message"]["content"])
    assert set(parsed) == {"score", "label"} and parsed["label"] == "good"


def test_reasoning_comes_first_and_is_billed(client):
    s = Stream(client, body("deepseek/deepseek-chat-v3.1", reasoning={"effort": "low"}, max_tokens=60,
                            **pinned("deepseek")))
    kinds = []
    for c in s.chunks:
        delta = c["choices"][0]["delta"] if c.get("choices") else {}
        if delta.get("reasoning"):
            kinds.append("r")
        elif delta.get("content"):
            kinds.append("c")
    assert kinds[0] == "r" and "c" in kinds and "r" not in kinds[kinds.index("c"):]
    details = s.usage["completion_tokens_details"]
    assert details["reasoning_tokens"] == kinds.count("r") > 0
    assert s.usage["completion_tokens"] == 60  # reasoning shares the max_tokens budget
    hidden = Stream(client, body("deepseek/deepseek-chat-v3.1", reasoning={"effort": "low", "exclude": True},
                                 max_tokens=60))
    assert not any(c["choices"][0]["delta"].get("reasoning") for c in hidden.chunks if c.get("choices"))
    assert hidden.usage["completion_tokens_details"]["reasoning_tokens"] > 0
    plain = Stream(client, body("deepseek/deepseek-chat-v3.1", max_tokens=10))
    assert plain.usage["completion_tokens_details"]["reasoning_tokens"] == 0


# --- connections and load ------------------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(sb):
    with httpx.Client(base_url=sb.base_url, limits=httpx.Limits(max_connections=1)) as c:
        for i in range(20):
            if i % 2:
                assert Stream(c, body(max_tokens=3)).usage["completion_tokens"] == 3
            else:
                assert c.get("/key").status_code == 200


def test_client_disconnect_is_recorded_as_cancelled(sb):
    with httpx.Client(base_url=sb.base_url) as c:
        with c.stream("POST", "/chat/completions", json=body(max_tokens=400, stream=True)) as resp:
            gen_id = resp.headers["x-generation-id"]
            for line in resp.iter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    break
    deadline = time.monotonic() + 3
    while sb.state.generation(gen_id) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    gen = sb.state.generation(gen_id)
    assert gen is not None and gen.cancelled and 0 < gen.completion_tokens < 400


def test_concurrent_streams():
    async def run(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=None), timeout=20) as c:
            async def one(i: int) -> int:
                n = 0
                async with c.stream("POST", "/chat/completions", headers={"X-Sandbox-Request-Id": str(i)},
                                    json=body(max_tokens=40, stream=True, **pinned("openai"))) as resp:
                    async for line in resp.aiter_lines():
                        n += line.startswith("data: {") and '"content":"' in line and '"content":""' not in line
                return n
            return await asyncio.gather(*(one(i) for i in range(64)))

    with start_sandbox(time_scale=0.05) as handle:
        t = time.perf_counter()
        counts = asyncio.run(run(handle.base_url))
        elapsed = time.perf_counter() - t
    assert counts == [40] * 64
    assert elapsed < 5


def test_serve_forever_reports_ready_and_stops_on_event():
    ready: list[str] = []
    lines: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=serve_forever, args=(0, 5), daemon=True,
                              kwargs={"time_scale": 0, "stop_event": stop, "log": lines.append,
                                      "on_ready": lambda handle: ready.append(handle.base_url)})
    thread.start()
    deadline = time.monotonic() + 5
    while not ready and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ready and httpx.get(ready[0] + "/models").status_code == 200
    httpx.post(ready[0] + "/chat/completions", json=body(max_tokens=1))
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert lines == ["GET /api/v1/models 200", lines[1]] and lines[1].startswith("POST /api/v1/chat/completions 200")

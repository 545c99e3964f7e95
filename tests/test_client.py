"""OpenRouterClient: retries, errors, headers and key hygiene against a fake at the HTTP edge
(``httpx.MockTransport``), and clocks/timeouts against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any, TypeVar

import httpx
import pytest

from bench.api.account import KeyInfo
from bench.api.client import OpenRouterClient, RetryPolicy
from bench.api.envelope import parse_retry_after
from bench.api.http import ShardedTransport, build_http_client
from bench.config import Settings
from bench.errors import (
    AuthError,
    BadRequest,
    ConfigError,
    DeadlineExceeded,
    InsufficientCredits,
    NetworkError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    StreamError,
)
from bench.records import ChatResult, derive_times
from tests._loopback import LoopbackServer, sse
from tests._snapshots import cassette_interactions, load_json, response_body, sse_bytes

T = TypeVar("T")
KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"
BASE = "https://openrouter.test/api/v1"
BODY = {"model": "x-ai/grok-4", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class SleepRecorder:
    """The retry sleep hook: records what the policy asked for and waits 1/1000 of it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds / 1000)


class Recorder:
    """A MockTransport handler answering from a list of responses (or exceptions), recording requests."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def settings(**kw: Any) -> Settings:
    values: dict[str, Any] = {"base_url": BASE, "api_key": KEY, "referer": "https://example.org/orbench",
                              "title": "orbench-tests"}
    values.update(kw)
    return Settings(**values)


def client_for(handler: Handler, *, retry: RetryPolicy | None = None, sleeper: SleepRecorder | None = None,
               openai_compatible: bool = False, **settings_kw: Any) -> OpenRouterClient:
    http = build_http_client(settings(**settings_kw), 4, transport=httpx.MockTransport(handler))
    policy = retry or RetryPolicy(sleep=sleeper or SleepRecorder())
    return OpenRouterClient(http, api_key=settings_kw.get("api_key", KEY), retry=policy,
                            openai_compatible=openai_compatible)


async def call(client: OpenRouterClient, fn: Callable[[OpenRouterClient], Awaitable[T]]) -> T:
    async with client:
        return await fn(client)


def chat(client: OpenRouterClient, **kw: Any) -> ChatResult:
    return run(call(client, lambda c: c.chat(BODY, **kw)))


def failing_chat(client: OpenRouterClient, **kw: Any) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        chat(client, **kw)
    return info.value


def sse_response(data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "text/event-stream", **(headers or {})}, content=data)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def error_response(status: int, message: str = "nope", headers: dict[str, str] | None = None) -> httpx.Response:
    return json_response(status, {"error": {"code": status, "message": message}}, headers)


OK_STREAM = (
    b": OPENROUTER PROCESSING\n\n"
    + sse('{"id":"gen-ok","model":"m","provider":"P",'
          '"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}')
    + sse('{"id":"gen-ok","model":"m","provider":"P","choices":[{"index":0,"delta":{"content":"Hello"}}]}')
    + sse('{"id":"gen-ok","model":"m","provider":"P",'
          '"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}]}')
    + sse('{"id":"gen-ok","model":"m","provider":"P","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,'
          '"total_tokens":4,"cost":0.0000021}}')
    + b"data: [DONE]\n\n"
)


def ok() -> httpx.Response:
    return sse_response(OK_STREAM)


# ---------------------------------------------------------------- streaming through the client
def test_chat_streams_a_real_transcript() -> None:
    rec = Recorder(sse_response(sse_bytes("pydantic-ai_test_openrouter_stream_with_native_options.sse.txt")))
    r = chat(client_for(rec))
    assert r.content.startswith("I'm Grok, an AI built by xAI.") and r.provider == "xAI"
    assert r.usage is not None and r.usage.cost_usd == Decimal("0.00333825") and r.usage.cached_tokens == 679
    assert r.attempts == 1 and r.http_status == 200 and r.finish_reason == "stop"
    c = r.clocks
    assert c.t0 < c.t_headers <= c.t_first_byte <= c.t_first_token <= c.t_last_token <= c.t_done  # type: ignore[operator]  # clocks are float | None
    assert json.loads(rec.requests[0].content) == {**BODY, "stream": True}


def test_chat_stream_error_transcript_raises_stream_error_with_usage() -> None:
    rec = Recorder(sse_response(sse_bytes("pydantic-ai_test_openrouter_stream_error.sse.txt")))
    err = failing_chat(client_for(rec))
    assert isinstance(err, StreamError) and err.outcome == "provider_error"
    assert err.code == 400 and err.status == 400 and "Token limit reached" in err.message
    assert err.attempts == 1 and len(rec.requests) == 1
    partial = err.result
    assert isinstance(partial, ChatResult)
    assert partial.usage is not None and (partial.usage.prompt_tokens, partial.usage.completion_tokens) == (43, 10)
    assert partial.usage.cost_usd == Decimal(0) and partial.reasoning.startswith("We need")
    assert partial.provider == "Minimax"


def test_stream_error_after_tokens_is_not_retried_even_if_5xx() -> None:
    data = (sse('{"choices":[{"index":0,"delta":{"content":"Hel"}}]}')
            + sse('{"error":{"code":502,"message":"Provider disconnected"},'
                  '"choices":[{"index":0,"delta":{"content":""},'
                  '"finish_reason":"error"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"cost":0.00001}}')
            + b"data: [DONE]\n\n")
    sleeper = SleepRecorder()
    rec = Recorder(sse_response(data), ok())
    err = failing_chat(client_for(rec, sleeper=sleeper))
    assert isinstance(err, StreamError) and err.status == 502 and err.attempts == 1
    assert len(rec.requests) == 1 and sleeper.waits == []
    assert isinstance(err.result, ChatResult) and err.result.content == "Hel"
    assert err.result.usage is not None and err.result.usage.cost_usd == Decimal("0.00001")


def test_stream_error_before_any_token_with_retryable_code_is_retried() -> None:
    data = sse('{"error":{"code":"503","message":"overloaded"},"choices":[]}') + b"data: [DONE]\n\n"
    rec = Recorder(sse_response(data), ok())
    r = chat(client_for(rec))
    assert r.content == "Hello" and r.attempts == 2


def test_stream_error_with_string_code() -> None:
    data = sse('{"error":{"code":"server_error","message":"boom"},"choices":[]}') + b"data: [DONE]\n\n"
    err = failing_chat(client_for(Recorder(sse_response(data))))
    assert isinstance(err, StreamError) and err.code == "server_error" and err.status is None
    assert err.attempts == 1


def test_chat_reads_a_body_arriving_in_small_pieces() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(OK_STREAM), 7):
            yield OK_STREAM[i : i + 7]

    rec = Recorder(lambda _req: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=pieces()))
    r = chat(client_for(rec))
    assert r.content == "Hello" and r.events == 4 and r.usage is not None
    assert r.usage.cost_usd == Decimal("0.0000021")


def test_chat_decodes_a_gzip_stream() -> None:
    rec = Recorder(httpx.Response(200, content=gzip.compress(OK_STREAM),
                                  headers={"content-type": "text/event-stream", "content-encoding": "gzip"}))
    assert chat(client_for(rec)).content == "Hello"


def test_non_streaming_cassette_through_the_client() -> None:
    body = response_body(cassette_interactions(
        "chat_completions", "pydantic-ai_test_openrouter_cache_messages_anthropic_real_api.yaml")[1])
    rec = Recorder(json_response(200, body, {"x-generation-id": "gen-header"}))
    r = chat(client_for(rec), stream=False)
    assert r.content.startswith("Distributed database systems") and r.provider == "Anthropic"
    assert r.usage is not None and r.usage.cost_usd == Decimal("0.00219855")
    assert r.generation_id == "gen-1773011158-Ce1hHC4Gr81WIraIsgAJ"
    assert r.clocks.t_first_token is None and r.clocks.t_last_token is not None
    assert derive_times(r.clocks, 53)["ttft_ms"] is None
    assert json.loads(rec.requests[0].content)["stream"] is False
    assert rec.requests[0].headers["accept"] == "application/json"


def test_error_inside_a_200_json_body_is_a_stream_error() -> None:
    body = {"id": "gen-x", "choices": [{"index": 0, "finish_reason": "error", "message": {"content": "Par"},
                                        "error": {"code": 502, "message": "Provider disconnected"}}]}
    err = failing_chat(client_for(Recorder(json_response(200, body), ok())), stream=False)
    assert isinstance(err, StreamError) and err.status == 502 and err.attempts == 1
    assert isinstance(err.result, ChatResult) and err.result.content == "Par"


# ---------------------------------------------------------------- retries
def test_429_retry_after_seconds_is_honoured() -> None:
    sleeper = SleepRecorder()
    rec = Recorder(error_response(429, headers={"retry-after": "2"}),
                   error_response(429, headers={"retry-after": "3.5"}), ok())
    r = chat(client_for(rec, sleeper=sleeper))
    assert r.attempts == 3 and r.content == "Hello"
    assert sleeper.waits == [2.0, 3.5]


def test_429_retry_after_http_date_is_honoured() -> None:
    sleeper = SleepRecorder()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    rec = Recorder(error_response(429, headers={"retry-after": when}), ok())
    assert chat(client_for(rec, sleeper=sleeper)).attempts == 2
    assert len(sleeper.waits) == 1 and 8.0 <= sleeper.waits[0] <= 10.0


def test_retry_after_is_capped_by_max_delay() -> None:
    sleeper = SleepRecorder()
    rec = Recorder(error_response(429, headers={"retry-after": "600"}), ok())
    chat(client_for(rec, retry=RetryPolicy(max_delay_s=20, max_total_s=1000, sleep=sleeper)))
    assert sleeper.waits == [20]


def test_retry_after_from_the_availability_object() -> None:
    sleeper = SleepRecorder()
    body = {"error": {"code": 429, "message": "capacity", "availability": {
        "code": "capacity_exhausted", "retryable": True, "retry_after": 4}}}
    rec = Recorder(json_response(429, body), ok())
    chat(client_for(rec, sleeper=sleeper))
    assert sleeper.waits == [4]


def test_attempts_are_capped() -> None:
    sleeper = SleepRecorder()
    rec = Recorder(error_response(503, "overloaded"))
    err = failing_chat(client_for(rec, sleeper=sleeper))
    assert isinstance(err, ProviderUnavailable) and err.status == 503
    assert err.attempts == 4 and len(rec.requests) == 4 and len(sleeper.waits) == 3


def test_total_retry_time_is_capped() -> None:
    sleeper = SleepRecorder()
    rec = Recorder(error_response(429, headers={"retry-after": "30"}))
    policy = RetryPolicy(max_attempts=10, max_total_s=45, max_delay_s=20, sleep=sleeper)
    err = failing_chat(client_for(rec, retry=policy))
    assert isinstance(err, RateLimited) and err.attempts == 4 and len(rec.requests) == 4
    assert sleeper.waits[:2] == [20, 20]
    assert 4.5 < sleeper.waits[2] <= 5.0  # the rest of the 45 s, minus the attempts' own time
    assert sum(sleeper.waits) <= 45


@pytest.mark.parametrize(("status", "kind"), [
    (400, BadRequest), (401, AuthError), (402, InsufficientCredits), (403, AuthError), (404, BadRequest),
])
def test_client_errors_are_not_retried(status: int, kind: type[ProviderError]) -> None:
    sleeper = SleepRecorder()
    rec = Recorder(error_response(status, "no"), ok())
    err = failing_chat(client_for(rec, sleeper=sleeper))
    assert type(err) is kind and err.status == status and err.code == status
    assert err.attempts == 1 and len(rec.requests) == 1 and sleeper.waits == []


def test_5xx_are_retried_with_backoff_then_succeed() -> None:
    sleeper = SleepRecorder()
    rec = Recorder(error_response(502), error_response(524), ok())
    r = chat(client_for(rec, sleeper=sleeper))
    assert r.attempts == 3 and r.content == "Hello"
    assert 0.25 <= sleeper.waits[0] <= 0.5 and 0.5 <= sleeper.waits[1] <= 1.0


def test_501_is_not_in_the_retry_list() -> None:
    rec = Recorder(error_response(501), ok())
    err = failing_chat(client_for(rec))
    assert isinstance(err, ProviderUnavailable) and err.attempts == 1


@pytest.mark.parametrize("exc", [
    httpx.ConnectError("connection refused"),
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx.ReadError("connection reset by peer"),
])
def test_transport_errors_are_retried(exc: Exception) -> None:
    sleeper = SleepRecorder()
    rec = Recorder(exc, ok())
    r = chat(client_for(rec, sleeper=sleeper))
    assert r.attempts == 2 and len(sleeper.waits) == 1


def test_transport_errors_exhaust_into_network_error() -> None:
    rec = Recorder(httpx.RemoteProtocolError("Server disconnected without sending a response."))
    err = failing_chat(client_for(rec))
    assert isinstance(err, NetworkError) and err.outcome == "network" and err.attempts == 4
    assert "Server disconnected without sending a response" in err.message


def test_httpx_timeout_maps_to_timeout_error() -> None:
    rec = Recorder(httpx.ReadTimeout("timed out"))
    err = failing_chat(client_for(rec, retry=RetryPolicy(max_attempts=1)), stall_timeout_s=3)
    assert isinstance(err, DeadlineExceeded) and err.outcome == "timeout" and "3" in err.message


def test_real_429_cassette_is_rate_limited_after_retries() -> None:
    interactions = cassette_interactions("chat_completions", "pydantic-ai_test_openrouter_errors_raised.yaml")
    answers = [json_response(i["response"]["status"]["code"], response_body(i)) for i in interactions]
    sleeper = SleepRecorder()
    rec = Recorder(*answers)
    err = failing_chat(client_for(rec, retry=RetryPolicy(max_attempts=3, sleep=sleeper)))
    assert isinstance(err, RateLimited) and err.code == 429 and err.attempts == 3
    assert "Provider returned error" in err.message and "Google" in err.message
    assert "temporarily rate-limited upstream" in err.message
    assert isinstance(err.body, dict) and err.body["user_id"].startswith("user_")
    assert len(rec.requests) == 3 and len(sleeper.waits) == 2


def test_non_json_error_body() -> None:
    rec = Recorder(httpx.Response(502, text="<html><body>Bad gateway</body></html>"), ok())
    assert chat(client_for(rec)).attempts == 2
    err = failing_chat(client_for(Recorder(httpx.Response(400, text="plain failure"))))
    assert err.message == "HTTP 400: plain failure"


# ---------------------------------------------------------------- headers and key hygiene
def test_headers_attribution_present_no_cache_headers_key_only_in_authorization() -> None:
    rec = Recorder(ok())
    chat(client_for(rec))
    req = rec.requests[0]
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["http-referer"] == "https://example.org/orbench"
    assert req.headers["x-openrouter-title"] == "orbench-tests" and req.headers["x-title"] == "orbench-tests"
    assert req.headers["accept"] == "text/event-stream"
    assert not [name for name in req.headers if name.lower().startswith("x-openrouter-cache")]
    assert [name for name, value in req.headers.items() if KEY in value] == ["authorization"]
    assert KEY not in str(req.url) and KEY.encode() not in req.content
    assert req.url == httpx.URL(f"{BASE}/chat/completions")


def test_no_authorization_header_without_a_key() -> None:
    rec = Recorder(ok())
    http = build_http_client(settings(api_key=None, referer=None), 1, transport=httpx.MockTransport(rec))
    run(call(OpenRouterClient(http), lambda c: c.chat(BODY)))
    assert "authorization" not in rec.requests[0].headers and "http-referer" not in rec.requests[0].headers


def test_key_never_appears_in_error_messages_or_reprs() -> None:
    echo = json_response(401, {"error": {"code": 401, "message": f"Invalid key {KEY}",
                                         "metadata": {"raw": f"Bearer {KEY}"}}})
    err = failing_chat(client_for(Recorder(echo)))
    assert isinstance(err, AuthError)
    for text in (str(err), repr(err), err.message, json.dumps(err.body)):
        assert KEY not in text
    net = failing_chat(client_for(Recorder(httpx.ConnectError(f"refused for {KEY}"))))
    assert KEY not in str(net) and "refused" in str(net)
    client = client_for(Recorder(ok()))
    assert KEY not in repr(client) and KEY not in repr(settings())
    other_key = "sk-or-v1-ffffffffffffffffffffffffffffffff"
    err2 = failing_chat(client_for(Recorder(error_response(400, f"bad {other_key}"))))
    assert other_key not in str(err2)
    in_stream = sse(json.dumps({"error": {"code": 400, "message": f"bad key {KEY}"}, "choices": []}))
    err3 = failing_chat(client_for(Recorder(sse_response(in_stream + b"data: [DONE]\n\n"))))
    assert isinstance(err3, StreamError) and KEY not in str(err3) and KEY not in json.dumps(err3.body)
    run(client.aclose())


def test_http_limits_follow_concurrency() -> None:
    """The lean transport gets a connection cap of 2x concurrency; keep-alive off on request."""
    from bench.api.transport import LeanTransport

    big = build_http_client(settings(), 128)
    transport = big._transport
    assert isinstance(transport, LeanTransport)
    assert transport._slots is not None and transport._slots._value == 256
    assert transport._keepalive
    fresh = build_http_client(settings(), 2, fresh_connections=True)
    assert not fresh._transport._keepalive  # type: ignore[attr-defined]  # typed as httpx's base transport
    assert big.timeout.read == 120 and big.timeout.connect == 10
    run(big.aclose())
    run(fresh.aclose())


def test_sharded_transport_splits_a_big_pool() -> None:
    """The fallback used when a proxy is configured (httpx's own pools, sharded)."""
    t = ShardedTransport(256)
    pools = [shard._pool for shard in t.shards]
    assert len(pools) == 16 and sum(p._max_connections for p in pools) == 256
    run(t.aclose())


# ---------------------------------------------------------------- OpenRouter-only endpoints
def test_key_info_falls_back_to_auth_key_on_404() -> None:
    legacy = {"data": {"label": "sk-or-v1-b7e...2b2", "limit": None, "usage": 0, "is_provisioning_key": False,
                       "limit_remaining": None, "is_free_tier": False,
                       "rate_limit": {"requests": 150, "interval": "10s"}}}
    rec = Recorder(error_response(404, "Not Found"), json_response(200, legacy))
    info = run(call(client_for(rec), lambda c: c.key_info()))
    assert [r.url.path for r in rec.requests] == ["/api/v1/key", "/api/v1/auth/key"]
    assert info.label == "sk-or-v1-b7e...2b2" and info.limit is None and info.usage == Decimal(0)
    assert info.is_management_key is False and info.is_free_tier is False


def test_key_info_current_endpoint() -> None:
    current = {"data": {"label": "sk-or-v1-abc...789", "limit": 50, "limit_remaining": 37.25,
                        "limit_reset": "monthly", "usage": 112.4, "usage_daily": 0.42, "usage_weekly": 3.1,
                        "usage_monthly": 12.75, "is_free_tier": False, "is_management_key": False}}
    rec = Recorder(json_response(200, current))
    info = run(call(client_for(rec), lambda c: c.key_info()))
    assert isinstance(info, KeyInfo) and len(rec.requests) == 1
    assert (info.limit, info.limit_remaining, info.usage_monthly) == (Decimal(50), Decimal("37.25"), Decimal("12.75"))
    assert info.limit_reset == "monthly"


def test_key_info_401_is_an_auth_error_not_a_fallback() -> None:
    rec = Recorder(error_response(401, "User not found."))
    with pytest.raises(AuthError):
        run(call(client_for(rec), lambda c: c.key_info()))
    assert len(rec.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_credits_without_management_key_is_an_auth_error(status: int) -> None:
    rec = Recorder(error_response(status, "Forbidden"))
    with pytest.raises(AuthError) as info:
        run(call(client_for(rec), lambda c: c.credits()))
    assert "management key" in info.value.message and info.value.status == status
    assert info.value.attempts == 1


def test_credits_balance() -> None:
    rec = Recorder(json_response(200, {"data": {"total_credits": 100.5, "total_usage": 12.25}}))
    credits = run(call(client_for(rec), lambda c: c.credits()))
    assert credits.balance == Decimal("88.25")


def test_generation_lookup_retries_404_until_the_record_exists() -> None:
    record = load_json("generation", "generation_2026-02-24_meta-llama-4-scout_deepinfra.json")
    sleeper = SleepRecorder()
    rec = Recorder(error_response(404, "Generation not found"), error_response(404, "Generation not found"),
                   json_response(200, record))
    gen = run(call(client_for(rec, sleeper=sleeper), lambda c: c.generation("gen-1771967973-0hZ8J5kY7qLMOKbPx0u3")))
    assert gen["total_cost"] == 0.00003452 and gen["provider_name"] == "DeepInfra"
    assert gen["latency"] == 1016 and gen["generation_time"] == 2940
    assert gen["provider_responses"][0]["status"] == 200
    assert rec.requests[0].url.params["id"] == "gen-1771967973-0hZ8J5kY7qLMOKbPx0u3"
    assert len(sleeper.waits) == 2 and all(w > 0 for w in sleeper.waits)


def test_generation_lookup_gives_up() -> None:
    rec = Recorder(error_response(404, "Generation not found"))
    with pytest.raises(BadRequest):
        run(call(client_for(rec), lambda c: c.generation("gen-x", lookups=3)))
    assert len(rec.requests) == 3


def test_models_and_endpoints_through_the_client() -> None:
    dump = load_json("models", "models_2026-08-19_output-modalities-all_549.json")
    eps = load_json("endpoints", "endpoints_2026-late_openai-gpt-4o_fener-fixture.json")
    rec = Recorder(json_response(200, dump), json_response(200, eps))

    async def both(c: OpenRouterClient) -> Any:
        return await c.models(output_modalities="all", supported_parameters=["tools", "response_format"]), \
            await c.endpoints("openai/gpt-4o")

    models, endpoints = run(call(client_for(rec), both))
    assert len(models) == 549 and len(endpoints.endpoints) == 2
    assert rec.requests[0].url.params["output_modalities"] == "all"
    assert rec.requests[0].url.params["supported_parameters"] == "tools,response_format"
    assert rec.requests[1].url.path == "/api/v1/models/openai/gpt-4o/endpoints"


# ---------------------------------------------------------------- generic OpenAI-compatible servers
def test_openai_compatible_asks_for_usage_and_skips_openrouter_calls() -> None:
    rec = Recorder(ok(), json_response(200, {"id": "x", "choices": [{"message": {"content": "Hi"}}]}))
    client = client_for(rec, openai_compatible=True)

    async def go(c: OpenRouterClient) -> None:
        await c.chat({**BODY, "stream_options": {"foo": 1}})
        await c.chat({**BODY, "stream_options": {"include_usage": True}}, stream=False)
        assert not c.supports_openrouter_api
        for fn in (c.key_info, c.credits, lambda: c.generation("g"), lambda: c.endpoints("a/b")):
            with pytest.raises(ConfigError):
                await fn()

    run(call(client, go))
    assert json.loads(rec.requests[0].content)["stream_options"] == {"foo": 1, "include_usage": True}
    assert "stream_options" not in json.loads(rec.requests[1].content)
    assert len(rec.requests) == 2


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None) is None


# ---------------------------------------------------------------- real loopback server
def content_event(text: str) -> bytes:
    return sse(json.dumps({"id": "gen-lb", "model": "m", "provider": "Loop",
                           "choices": [{"index": 0, "delta": {"content": text}}]}))


USAGE_EVENT = sse('{"id":"gen-lb","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}}')
ROLE_EVENT = sse('{"id":"gen-lb","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}')


def loopback_client(server: LoopbackServer, retry: RetryPolicy | None = None, concurrency: int = 32,
                    **kw: Any) -> OpenRouterClient:
    http = build_http_client(Settings(base_url=server.base_url, api_key=KEY), concurrency, **kw)
    return OpenRouterClient(http, retry=retry or RetryPolicy(sleep=SleepRecorder()))


def test_loopback_clocks_ttft_covers_the_server_wait_and_ttfb_sees_the_comment() -> None:
    steps = [(0.0, b": OPENROUTER PROCESSING\n\n"), (0.0, ROLE_EVENT), (0.25, content_event("Hello")),
             (0.05, content_event(" there")), (0.05, content_event("!")), (0.0, USAGE_EVENT),
             (0.0, b"data: [DONE]\n\n")]
    with LoopbackServer(steps) as server:
        r = run(call(loopback_client(server), lambda c: c.chat(BODY)))
    t = derive_times(r.clocks, 3)
    assert t["ttft_ms"] is not None and t["ttfb_ms"] is not None and t["e2e_ms"] is not None
    assert 250 <= t["ttft_ms"] < 250 + 400
    assert t["ttfb_ms"] < t["ttft_ms"] - 200  # the comment came at once; it is not a token
    assert t["e2e_ms"] >= 350 and t["ttfa_ms"] == t["ttft_ms"]
    assert len(r.clocks.chunk_gaps_ms) == 2 and all(g >= 45 for g in r.clocks.chunk_gaps_ms)
    assert t["tpot_ms"] is not None and 45 <= t["tpot_ms"] < 200
    assert r.content == "Hello there!" and r.usage is not None and r.usage.completion_tokens == 3
    assert r.generation_id == "gen-lb" and r.response_headers["x-generation-id"] == "gen-loopback"


def test_loopback_client_overhead_on_first_token_is_small() -> None:
    """t_first_token minus the server's send stamp (same clock, same process): our overhead."""
    steps = [(0.0, b": OPENROUTER PROCESSING\n\n"), (0.01, content_event("Hi")), (0.0, b"data: [DONE]\n\n")]
    with LoopbackServer(steps) as server:
        async def many(c: OpenRouterClient) -> list[int]:
            return [(await c.chat(BODY)).clocks.t_first_token or 0 for _ in range(30)]

        firsts = run(call(loopback_client(server), many))
        overheads_ms = sorted((t - sent[1]) / 1e6 for t, sent in zip(firsts, server.sent_ns, strict=True))
    assert overheads_ms[0] > 0  # never before the server sent it
    assert overheads_ms[len(overheads_ms) // 2] < 5.0, overheads_ms  # target p50 <= 1 ms; slack for CI load


def test_loopback_stall_before_output_times_out_fast() -> None:
    steps = [(0.0, b": OPENROUTER PROCESSING\n\n"), (3.0, content_event("late"))]
    with LoopbackServer(steps) as server:
        start = time.perf_counter()
        with pytest.raises(DeadlineExceeded) as info:
            run(call(loopback_client(server, RetryPolicy(max_attempts=1)),
                     lambda c: c.chat(BODY, stall_timeout_s=0.3)))
        elapsed = time.perf_counter() - start
    assert elapsed < 2.0 and "stalled" in info.value.message
    assert isinstance(info.value.result, ChatResult) and info.value.result.clocks.t_first_byte is not None


def test_loopback_stall_after_output_is_not_retried() -> None:
    steps = [(0.0, content_event("Hi")), (3.0, content_event(" late"))]
    sleeper = SleepRecorder()
    with LoopbackServer(steps) as server:
        with pytest.raises(DeadlineExceeded) as info:
            run(call(loopback_client(server, RetryPolicy(sleep=sleeper)),
                     lambda c: c.chat(BODY, stall_timeout_s=0.3)))
        assert len(server.bodies) == 1
    assert info.value.attempts == 1 and sleeper.waits == []
    assert isinstance(info.value.result, ChatResult) and info.value.result.content == "Hi"


def test_loopback_total_timeout_while_comments_keep_coming() -> None:
    steps = [(0.1, b": OPENROUTER PROCESSING\n\n")] * 30 + [(0.0, content_event("late"))]
    with LoopbackServer(steps) as server:
        start = time.perf_counter()
        with pytest.raises(DeadlineExceeded) as info:
            run(call(loopback_client(server, RetryPolicy(max_attempts=1)),
                     lambda c: c.chat(BODY, timeout_s=0.5, stall_timeout_s=5)))
        assert time.perf_counter() - start < 2.0
    assert "0.5 s" in info.value.message


def test_loopback_connection_is_reused_after_done() -> None:
    steps = [(0.0, content_event("a")), (0.0, USAGE_EVENT), (0.0, b"data: [DONE]\n\n")]
    with LoopbackServer(steps) as server:
        async def twice(c: OpenRouterClient) -> None:
            await c.chat(BODY)
            await c.chat(BODY)

        run(call(loopback_client(server), twice))
        assert len(server.bodies) == 2 and server.connections == 1


def test_loopback_many_streams_share_a_sharded_pool_and_reuse_connections() -> None:
    steps = [(0.0, b": OPENROUTER PROCESSING\n\n"), (0.05, content_event("a")), (0.02, content_event("b")),
             (0.0, USAGE_EVENT), (0.0, b"data: [DONE]\n\n")]
    with LoopbackServer(steps) as server:
        async def rounds(c: OpenRouterClient) -> list[list[ChatResult]]:
            return [await asyncio.gather(*[c.chat(BODY, timeout_s=20) for _ in range(40)]) for _ in range(2)]

        first, second = run(call(loopback_client(server), rounds))
        assert len(server.bodies) == 80 and 40 <= server.connections <= 64
    for r in first + second:
        assert r.content == "ab" and r.usage is not None and r.usage.completion_tokens == 3


def test_loopback_server_disconnect_without_response_is_retried() -> None:
    steps = [(0.0, content_event("ok")), (0.0, b"data: [DONE]\n\n")]
    with LoopbackServer(lambda n: None if n == 0 else steps) as server:
        r = run(call(loopback_client(server), lambda c: c.chat(BODY)))
        assert len(server.bodies) == 2
    assert r.content == "ok" and r.attempts == 2


def test_chat_requests_carry_the_client_headers_and_cookies_as_httpx_would() -> None:
    """The chat fast path (URL and headers merged once) sends what httpx's own path sends: the key, the
    attribution headers, a fresh Content-Length per body, and a cookie a response set (a load
    balancer's sticky cookie), on the next chat request."""
    answers = Recorder(sse_response(OK_STREAM, headers={"set-cookie": "lb=blue; Path=/"}), ok(), ok())

    async def go(c: OpenRouterClient) -> None:
        await c.chat(BODY)
        await c.chat({**BODY, "messages": [{"role": "user", "content": "a longer prompt this time"}]})
        await c.chat(BODY)

    run(call(client_for(answers), go))
    first, second, third = answers.requests
    for req in answers.requests:
        assert str(req.url) == f"{BASE.rstrip('/')}/chat/completions"
        assert req.headers["authorization"] == f"Bearer {KEY}"
        assert req.headers["accept"] == "text/event-stream" and req.headers["x-title"] == "orbench-tests"
        assert int(req.headers["content-length"]) == len(req.content)
    assert "cookie" not in first.headers
    assert second.headers["cookie"] == "lb=blue" and third.headers["cookie"] == "lb=blue"
    assert first.content != second.content

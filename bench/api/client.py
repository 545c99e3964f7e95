"""HTTP access to OpenRouter (and any OpenAI-compatible server): chat, catalog, key, credits.

``OpenRouterClient`` wraps an injected ``httpx.AsyncClient`` (built once per run by
``bench.api.http.build_http_client``) and is the only place that knows OpenRouter's
URLs, error envelope (API.md section 6, read by ``bench.api.envelope``) and retry
rules. ``chat`` is the measured path: ``t0`` is stamped right before the request is
handed to the transport, every read is stamped as it arrives and fed to the pure SSE
parser and accumulator (``bench.api.sse``, ``bench.api.stream``), and nothing else runs
between a read and its stamp.

Retries: only 408, 429, 500/502/503/504/524/529 and transport failures, honouring
``Retry-After`` within ``RetryPolicy`` caps. A response that already delivered
generated output is never retried: that would pay for the tokens twice. A reused
keep-alive connection the server had closed (``bench.api.transport.DroppedConnection``)
is resent at once on a fresh connection, with no backoff: not a retry at all when the
server cannot have read the request, a retry under the same rules when it may have.
Each row says why its sends were repeated (``retry_reasons``, bench.records.RETRY_REASONS).

Every error message passes through ``_redact``: the API key never appears in a
message, a repr or a log line.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from bench.api import keys
from bench.api.account import Credits, KeyInfo, unwrap_data
from bench.api.catalog import Model, ModelEndpoints, parse_endpoints, parse_models
from bench.api.envelope import (
    clip_text,
    error_availability,
    metadata_hint,
    non_negative,
    numeric_status,
    parse_retry_after,
    status_message,
)
from bench.api.stream import StreamAccumulator, connection_facts, read_events
from bench.api.transport import CertificateError, DroppedConnection
from bench.errors import (
    AuthError,
    ConfigError,
    DeadlineExceeded,
    KeyWithheld,
    NetworkError,
    ProviderError,
    StreamError,
    error_for_status,
)
from bench.records import ChatResult, Clocks

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 524, 529})
"""HTTP statuses worth another attempt (API.md section 6.3); 400/401/402/403/404 never are."""

_SSE_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}
_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_KEY_PATTERN = re.compile(r"sk-or-[A-Za-z0-9_-]{8,}")
_FRESH = {"orbench_fresh_connection": True}  # request extension: do not take a pooled connection
_MAX_RESENDS = 3  # resends of a request no server can have read, per request


# ---------------------------------------------------------------- policy and records
@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. ``sleep`` is the waiting hook (tests shorten it)."""

    max_attempts: int = 4
    max_total_s: float = 60.0
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    seed: int | None = 0  # jitter is deterministic per client when set
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    retry_statuses: frozenset[int] = RETRY_STATUSES

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with equal jitter: between half and all of base * 2^(attempt-1)."""
        ceiling: float = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))  # int ** int is Any
        return ceiling * (0.5 + 0.5 * rng.random())


# ---------------------------------------------------------------- the API client
def headers_dict(headers: httpx.Headers) -> dict[str, str]:
    """``dict(headers)`` in one pass (httpx looks each key up by scanning the whole list):
    lower-case names, repeated ones joined with ", " as ``Headers.__getitem__`` does."""
    out: dict[str, str] = {}
    for name, value in headers.multi_items():
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


class OpenRouterClient:
    """OpenRouter's API over an injected ``httpx.AsyncClient``.

    With ``openai_compatible=True`` the same client talks to a generic server:
    it asks for usage in the stream (``stream_options.include_usage``) and the
    OpenRouter-only calls (key, credits, generation, endpoints) raise ConfigError.
    The mode is fixed at construction (``openai_compatible`` is read-only).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        openai_compatible: bool = False,
        withheld_key_env: str | None = None,
    ) -> None:
        self._http = http
        self._chat: tuple[httpx.URL, httpx.AsyncBaseTransport, httpx.Headers, httpx.Headers] | None = None
        self._withheld = withheld_key_env  # a 401 then says no key was sent, and how to send one
        self._retry = retry or RetryPolicy()
        self._rng = random.Random(self._retry.seed)
        self._openai_compatible = openai_compatible
        if api_key and "authorization" not in http.headers:
            http.headers["Authorization"] = f"Bearer {api_key}"
        self._secret = api_key or _bearer_token(http.headers.get("authorization"))

    def __repr__(self) -> str:
        return f"OpenRouterClient(base_url={str(self._http.base_url)!r}, openai_compatible={self.openai_compatible})"

    @property
    def openai_compatible(self) -> bool:
        """True for a generic OpenAI-compatible server (set at construction)."""
        return self._openai_compatible

    @property
    def supports_openrouter_api(self) -> bool:
        """False for a generic OpenAI-compatible server: skip key/credits/generation/endpoints."""
        return not self.openai_compatible

    async def aclose(self) -> None:
        await self._http.aclose()

    async def prewarm(self, n: int) -> int:
        """Open ``n`` idle keep-alive connections to the base URL; returns how many the pool holds after.

        Run it before a measured phase with ``n`` = its concurrency, so that no measured
        request carries a connect in its TTFT. The lean transport only connects (TCP +
        TLS, at most 32 at once, no HTTP request); httpx's own transport (behind a
        proxy) connects only for a request, so it sends ``n`` concurrent ``GET`` requests
        for the base URL itself (no key sent). Other transports (a test's MockTransport): nothing, 0.
        """
        url = self._http.base_url
        # httpx routes by URL pattern (proxy mounts); it has no public "which transport" call
        transport = self._http._transport_for_url(url)  # noqa: SLF001
        warm = getattr(transport, "prewarm", None)
        if warm is None:
            return 0
        count: int = await warm(url, n, timeout=self._http.timeout.connect)
        return count

    async def __aenter__(self) -> OpenRouterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ catalog, key, credits
    async def models_raw(self, **query: Any) -> dict[str, Any]:
        """``GET /models`` as sent (for snapshots). Lists become comma lists, bools "true"/"false"."""
        payload = await self._get_json("models", params=_query(query))
        return payload if isinstance(payload, dict) else {"data": payload}

    async def models(self, **query: Any) -> list[Model]:
        """The catalog, parsed; see API.md section 1.1 for the query parameters."""
        return parse_models(await self.models_raw(**query))

    async def endpoints(self, model_id: str) -> ModelEndpoints:
        """``GET /models/{id}/endpoints``: the providers serving one model."""
        self._require_openrouter("endpoints")
        path = f"models/{quote(model_id, safe='/:~')}/endpoints"
        return parse_endpoints(await self._get_json(path))

    async def key_info(self) -> KeyInfo:
        """``GET /key``; falls back to the legacy ``GET /auth/key`` on 404."""
        self._require_openrouter("key info")
        try:
            payload = await self._get_json("key")
        except ProviderError as err:
            if err.status != 404:
                raise
            payload = await self._get_json("auth/key")
        return KeyInfo.from_payload(payload)

    async def credits(self) -> Credits:
        """``GET /credits``. A normal key gets 401/403: AuthError saying a management key is needed."""
        self._require_openrouter("credits")
        try:
            payload = await self._get_json("credits")
        except AuthError as err:
            if isinstance(err, KeyWithheld):
                raise
            new = AuthError(
                f"GET /credits needs a management key: {err.message}",  # message starts "HTTP 4xx"
                status=err.status,
                code=err.code,
                body=err.body,
            )
            new.attempts = err.attempts
            raise new from None
        return Credits.from_payload(payload)

    async def generation(self, gen_id: str, *, lookups: int = 5, wait_s: float = 0.5) -> dict[str, Any]:
        """``GET /generation?id=``: the record appears a little after the response, so 404 is retried."""
        self._require_openrouter("generation lookup")
        for i in range(lookups):
            try:
                payload = await self._get_json("generation", params={"id": gen_id})
            except ProviderError as err:
                if err.status != 404 or i == lookups - 1:
                    raise
                await self._retry.sleep(wait_s * (i + 1))
                continue
            return unwrap_data(payload)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------ chat
    async def chat(
        self,
        body: dict[str, Any],
        *,
        stream: bool = True,
        timeout_s: float | None = None,
        stall_timeout_s: float | None = None,
        before_retry: Callable[[ProviderError], bool] | None = None,
        on_started: Callable[[str], None] | None = None,
    ) -> ChatResult:
        """POST /chat/completions and measure it.

        ``timeout_s`` bounds one attempt end to end; ``stall_timeout_s`` bounds the
        wait for any bytes (defaults to the httpx client's read timeout). Raises a
        ``ProviderError`` subclass with ``.attempts`` and, where anything came back,
        ``.result`` (the partial ChatResult, usage included: it may be billed).

        ``before_retry(err)`` is asked before every retry (the budget reserves the
        next attempt there) and stops the retries by returning False.
        ``on_started(generation_id)`` is called once, when the first chunk names the
        generation (the runner journals the request as in flight).
        """
        content = self._encode_chat(body, stream)
        timeout = self._attempt_timeout(stall_timeout_s)

        def once(fresh: bool) -> Awaitable[ChatResult]:
            return self._chat_once(content, stream, timeout, timeout_s, on_started, fresh)

        result, attempts = await self._retrying(once, before_retry)
        result.attempts = attempts
        return result

    def _encode_chat(self, body: Mapping[str, Any], stream: bool) -> bytes:
        payload = dict(body)
        payload["stream"] = stream
        if self.openai_compatible and stream:
            options = dict(payload.get("stream_options") or {})
            options.setdefault("include_usage", True)
            payload["stream_options"] = options
        elif not stream:
            payload.pop("stream_options", None)  # OpenAI rejects it without stream
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()

    def _attempt_timeout(self, stall_timeout_s: float | None) -> httpx.Timeout:
        base = self._http.timeout
        read = stall_timeout_s if stall_timeout_s is not None else base.read
        return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)

    async def _chat_once(
        self, content: bytes, stream: bool, timeout: httpx.Timeout, total_s: float | None,
        on_started: Callable[[str], None] | None = None, fresh: bool = False,
    ) -> ChatResult:
        request = self._chat_request(content, stream, timeout, fresh)
        clocks = Clocks(t0=0)
        acc = StreamAccumulator(clocks)
        acc.on_identity = on_started
        response: httpx.Response | None = None
        try:
            async with asyncio.timeout(total_s):
                clocks.t0 = time.perf_counter_ns()
                response = await self._send_chat(request)
                clocks.t_headers = time.perf_counter_ns()
                connection_facts(response, acc.result)
                try:
                    await self._read_chat(response, acc, stream)
                finally:
                    await response.aclose()
        except TimeoutError:  # asyncio.timeout fired: our end-to-end limit
            if not acc.done:
                raise self._failure(DeadlineExceeded(f"no complete response within {total_s} s"), acc) from None
        except httpx.TimeoutException as exc:
            if not acc.done:
                raise self._failure(DeadlineExceeded(self._timeout_message(exc, timeout)), acc) from None
        except httpx.TransportError as exc:
            if not acc.done:
                raise self._failure(self._network_error(_describe_exc(exc), exc), acc) from None
        return self._complete(acc, response)

    def _chat_request(self, content: bytes, stream: bool, timeout: httpx.Timeout, fresh: bool) -> httpx.Request:
        """``AsyncClient.build_request`` for chat, with the URL and headers merged once per client.

        httpx re-parses the URL, re-merges the headers and copies the cookie jar on every call: a
        tenth of the event loop's time at concurrency 64. The client's headers are fixed once it
        is built (``__init__`` sets the key); a jar with cookies takes httpx's own path."""
        if self._chat is None:
            http = self._http
            url = http._merge_url("chat/completions")  # noqa: SLF001 - httpx 0.28 (pinned); built once
            self._chat = (url, http._transport_for_url(url),  # noqa: SLF001 - as prewarm does
                          httpx.Headers(http._merge_headers(_SSE_HEADERS)),  # noqa: SLF001
                          httpx.Headers(http._merge_headers(_JSON_HEADERS)))  # noqa: SLF001
        url, _, sse, plain = self._chat
        extensions: dict[str, Any] = {"timeout": timeout.as_dict()}
        if fresh:
            extensions.update(_FRESH)
        if self._http.cookies:
            return self._http.build_request("POST", url, content=content, headers=sse if stream else plain,
                                            timeout=timeout, extensions=extensions)
        return httpx.Request("POST", url, content=content, headers=sse if stream else plain, extensions=extensions)

    async def _send_chat(self, request: httpx.Request) -> httpx.Response:
        """``AsyncClient.send(stream=True)`` without its auth, redirect and cookie layers, none of
        which a chat request uses (no auth flow, redirects not followed), unless the response sets
        a cookie or the jar has one: then httpx's own path, so a cookie behaves as with httpx."""
        if self._http.cookies or self._chat is None:
            return await self._http.send(request, stream=True)
        if self._http.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        response = await self._chat[1].handle_async_request(request)
        response.request = request
        if "set-cookie" in response.headers:
            self._http.cookies.extract_cookies(response)
        return response

    def _network_error(self, text: str, exc: httpx.TransportError) -> NetworkError:
        hopeless = _hopeless(exc)
        err = NetworkError(self._redact(text if hopeless is None else f"{text} (not retried: {hopeless})"))
        err.hopeless = hopeless
        if isinstance(exc, DroppedConnection):
            err.dropped = "maybe_read" if exc.server_read else "unsent"
        return err

    async def _read_chat(self, response: httpx.Response, acc: StreamAccumulator, stream: bool) -> None:
        acc.result.http_status = response.status_code
        if not 200 <= response.status_code < 300:
            body = await response.aread()
            acc.on_bytes(time.perf_counter_ns())
            acc.result.response_headers = headers_dict(response.headers)
            raise self._failure(self._status_error(response.status_code, response.headers, body), acc)
        if stream and response.headers.get("content-type", "").startswith("text/event-stream"):
            await read_events(response, acc)
        else:
            await self._read_body(response, acc)

    async def _read_body(self, response: httpx.Response, acc: StreamAccumulator) -> None:
        parts = []
        async for chunk in response.aiter_bytes():
            acc.on_bytes(time.perf_counter_ns())
            parts.append(chunk)
        t = time.perf_counter_ns()
        try:
            payload = json.loads(b"".join(parts))
        except ValueError:
            raise self._failure(ProviderError("the server sent a body that is not JSON",
                                              status=response.status_code), acc) from None
        acc.on_body(payload if isinstance(payload, dict) else {}, t)

    def _complete(self, acc: StreamAccumulator, response: httpx.Response | None) -> ChatResult:
        """The finished result, or a StreamError when the body carried an ``error`` object."""
        result = acc.finish()
        if response is not None:
            result.response_headers = headers_dict(response.headers)
            result.generation_id = result.generation_id or result.response_headers.get("x-generation-id")
        if result.stream_error is not None:
            raise self._stream_error(result)
        return result

    @staticmethod
    def _failure(err: ProviderError, acc: StreamAccumulator) -> ProviderError:
        err.result = acc.finish()
        return err

    def _stream_error(self, result: ChatResult) -> StreamError:
        error = result.stream_error or {}
        code = error.get("code")
        message = error.get("message") or "error object in the response"
        status = numeric_status(code)
        text = f"in-stream error {code}: {message}" if code is not None else f"in-stream error: {message}"
        dumped = json.dumps(error)
        body = json.loads(self._redact(dumped)) if self._redact(dumped) != dumped else error
        err = StreamError(self._redact(clip_text(text + metadata_hint(error.get("metadata")))),
                          status=status, code=code, body=body)
        err.result = result
        return err

    # ------------------------------------------------------------ plumbing
    async def _get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        async def once(fresh: bool) -> Any:
            try:
                response = await self._http.get(path, params=params, extensions=_FRESH if fresh else None)
            except httpx.TimeoutException as exc:
                raise DeadlineExceeded(self._redact(f"GET /{path}: {_describe_exc(exc)}")) from None
            except httpx.TransportError as exc:
                raise self._network_error(f"GET /{path}: {_describe_exc(exc)}", exc) from None
            if not 200 <= response.status_code < 300:
                raise self._status_error(response.status_code, response.headers, response.content)
            try:
                return response.json()
            except ValueError:
                raise ProviderError(f"GET /{path}: the body is not JSON", status=response.status_code) from None

        value, _ = await self._retrying(once)
        return value

    async def _retrying(
        self, once: Callable[[bool], Awaitable[T]],
        before_retry: Callable[[ProviderError], bool] | None = None,
    ) -> tuple[T, int]:
        """Run ``once(fresh)`` until it succeeds, the policy says stop or ``before_retry`` refuses;
        returns (value, attempts). ``fresh``: send on a new connection (after a dropped one)."""
        policy = self._retry
        used_s = 0.0
        attempt = 0
        resends = 0
        fresh = False
        failures: list[str] = []  # why each earlier attempt failed (429s are reported, not hidden)
        reasons: list[str] = []  # why each earlier send was repeated, resends included
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                value = await once(fresh)
                if isinstance(value, ChatResult):
                    value.failed_attempts = failures
                    value.retry_reasons = reasons + ["closed_idle"] * min(value.closed_idle, 1)
                return value, attempt
            except ProviderError as err:
                used_s += time.perf_counter() - started
                fresh = err.dropped is not None
                if err.dropped == "unsent" and resends < _MAX_RESENDS:
                    # the server cannot have read it: the same attempt again, nothing to book
                    resends += 1
                    attempt -= 1
                    reasons.append("dropped_unsent")
                    continue
                err.attempts = attempt
                err.failed_attempts = failures
                err.retry_reasons = reasons
                wait = self._next_wait(err, attempt, used_s)
                if wait is None or (before_retry is not None and not before_retry(err)):
                    raise
                failures.append(err.outcome)
                reasons.append("dropped" if fresh else err.outcome)
            if fresh:
                continue  # a dropped keep-alive connection: at once, no backoff
            await policy.sleep(wait)
            used_s += wait

    def _next_wait(self, err: ProviderError, attempt: int, used_s: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        policy = self._retry
        remaining = policy.max_total_s - used_s
        if attempt >= policy.max_attempts or remaining <= 0 or not self._retryable(err):
            return None
        if err.retry_after_s is not None:
            wait = min(err.retry_after_s, policy.max_delay_s)
        else:
            wait = policy.backoff_s(attempt, self._rng)
        return max(0.0, min(wait, remaining))

    def _retryable(self, err: ProviderError) -> bool:
        if isinstance(err.result, ChatResult) and err.result.has_output:
            return False  # never pay twice for generated tokens
        if isinstance(err, NetworkError):
            return err.hopeless is None  # a certificate failure or a refused header value: no
        if isinstance(err, DeadlineExceeded):
            return True
        return err.status in self._retry.retry_statuses

    def _status_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        text = self._redact(body.decode("utf-8", "replace"))
        try:
            parsed: Any = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        error = parsed.get("error") if isinstance(parsed, dict) else None
        availability = error_availability(error)
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is None and availability is not None:
            retry_after = non_negative(availability.get("retry_after"))
        message = status_message(status, error, availability, text)
        code = error.get("code") if isinstance(error, dict) else None
        if status == 401 and self._withheld and "authorization" not in self._http.headers:
            return KeyWithheld(keys.withheld_message(str(self._http.base_url), self._withheld), status=status,
                               code=code, body=parsed if parsed is not None else text[:2000])
        return error_for_status(
            status, self._redact(message), code=code, retry_after_s=retry_after,
            body=parsed if parsed is not None else text[:2000],
        )

    def _timeout_message(self, exc: httpx.TimeoutException, timeout: httpx.Timeout) -> str:
        if isinstance(exc, httpx.ReadTimeout):
            return f"stalled: no bytes for {timeout.read} s"
        if isinstance(exc, httpx.PoolTimeout):
            return f"no free connection within {timeout.pool} s"
        return self._redact(_describe_exc(exc))

    def _redact(self, text: str) -> str:
        if self._secret and self._secret in text:
            text = text.replace(self._secret, "[key]")
        return _KEY_PATTERN.sub("[key]", text)

    def _require_openrouter(self, what: str) -> None:
        if self.openai_compatible:
            raise ConfigError(f"{what} is an OpenRouter API call; {self._http.base_url} is a generic server")


def _hopeless(exc: httpx.TransportError) -> str | None:
    """Why a transport failure cannot go away on a retry (None: it may)."""
    if isinstance(exc, httpx.LocalProtocolError):
        return "orbench refused to send a header value, the same on every attempt"
    if isinstance(exc, CertificateError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "the server's certificate is not trusted, the same on every attempt"
    return None


def _describe_exc(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _bearer_token(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def _query(query: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (list, tuple, set, frozenset)):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out

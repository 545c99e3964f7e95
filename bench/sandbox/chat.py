"""``POST /chat/completions`` of the sandbox: validation, model choice, routing and faults.

Owns everything decided before the first byte of a chat response: which model serves
(aliases, the ``models`` fallback list, ``openrouter/auto``), which provider (routing.py,
with status faults applied per attempt and failed attempts recorded), what the answer
is (sim.py) and its simulated TTFT. The result is an ``Exchange`` that delivery.py
streams or sends. Randomness is seeded by (seed, request fingerprint, purpose).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import string
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from bench.sandbox import caching, conformance, sim
from bench.sandbox.catalog import Catalog, Endpoint, Model
from bench.sandbox.delivery import Delivery, Exchange, attempt_record
from bench.sandbox.faults import Fault, error_payload, parse_fault, pick_fault, status_fault_error
from bench.sandbox.httpwire import Request, json_response
from bench.sandbox.routing import RoutingError, plan_attempts
from bench.sandbox.state import SandboxState

FAILED_ATTEMPT_FRACTION = 0.25  # a failing provider answers after this share of its base TTFT
ACCOUNT_ERRORS = ("401", "402")  # faults about the account: no provider fallback
ID_ALPHABET = string.ascii_letters + string.digits


@dataclass
class SandboxConfig:
    """Behaviour knobs fixed at start-up."""

    seed: int = 0
    time_scale: float = 1.0
    answers: Mapping[str, Any] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    # A server of limited capacity (sweeps, demos): at most this many requests are served at
    # once, each at full speed; the rest wait in a queue, so TTFT grows and throughput plateaus.
    max_concurrent: int | None = None
    # Scripted changes over time (scenario.py: ``orbench sandbox --scenario FILE``); None = steady.
    scenario: Any = None


class ChatError(Exception):
    """A request that ends in an HTTP error before any output."""

    def __init__(self, status: int, payload: dict[str, Any], headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(payload["error"]["message"])
        self.status = status
        self.payload = payload
        self.headers = headers or []


def chat_error(status: int, message: str) -> ChatError:
    return ChatError(status, error_payload(status, message))


def fingerprint(body: dict[str, Any], request_id: str | None) -> str:
    """Hash of the body without the stream flag, plus ``X-Sandbox-Request-Id``."""
    core = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    text = json.dumps(core, sort_keys=True, ensure_ascii=False) + "|" + (request_id or "")
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class ChatService:
    """Serves chat completions for one sandbox server."""

    def __init__(self, catalog: Catalog, state: SandboxState, config: SandboxConfig) -> None:
        self.catalog = catalog
        self.state = state
        self.config = config
        self._ids = random.Random(os.urandom(16))  # generation ids are unique, not seeded
        self.delivery = Delivery(state, config.time_scale, self._upstream_id)
        self._slots = asyncio.Semaphore(config.max_concurrent) if config.max_concurrent else None
        self.prompt_cache = caching.PromptCache()  # per endpoint, each family's rule (caching.py)

    async def handle(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request (after a free slot, with ``max_concurrent``); False to drop the connection."""
        if self._slots is None:
            return await self._serve(req, reader, writer)
        async with self._slots:
            # The simulated schedule starts when service starts: the time spent queued lands
            # in the client's TTFT (and /generation's latency, which counts from arrival).
            req.received_loop_time = asyncio.get_running_loop().time()
            return await self._serve(req, reader, writer)

    async def _serve(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            ex = await self._prepare(req)
        except ChatError as err:
            req.extra["status"] = err.status
            writer.write(json_response(err.status, err.payload, err.headers, req.keep_alive))
            return req.keep_alive
        req.extra["status"] = 200
        req.extra["served"] = f"{ex.model.id} via {ex.endpoint.tag}"
        if ex.body.get("stream"):
            return await self.delivery.stream(ex, reader, writer)
        return await self.delivery.complete(ex, writer)

    # --- preparation ------------------------------------------------------------------------

    async def _prepare(self, req: Request) -> Exchange:
        body = _parse_body(req)
        if self.state.out_of_credit():
            raise chat_error(402, "Key limit exceeded: this simulated key has spent its limit.")
        fp = fingerprint(body, req.header("x-sandbox-request-id"))
        occurrence = self.state.next_occurrence(fp)
        requested = self._requested_models(body)
        faults = _FaultGate(self, _header_fault(req), fp)
        account = faults.active(requested[0])
        if account is not None and account.name in ACCOUNT_ERRORS:
            status, payload, headers = status_fault_error(account, "OpenRouter")
            raise ChatError(status, payload, headers)
        prompt_tokens, images = sim.prompt_size(body)
        wanted, model, endpoint, router, attempts = await self._route(
            body, requested, faults, prompt_tokens, images, fp, occurrence)
        fault = faults.active(wanted)
        if fault is not None and (fault.is_status or not fault.applies_to(endpoint.tag)):
            fault = None
        created = int(time.time())
        plan = self._plan(body, req, model, fp)
        if self.config.scenario is not None:
            endpoint = self.config.scenario.endpoint(model.id, endpoint)
            if self.config.scenario.degrades(model.id, endpoint, self._rng(fp, f"quality:{occurrence}")):
                plan.content = sim.filler_tokens(self._rng(fp, "filler"), max(1, len(plan.content)))
        cache = self.prompt_cache.use(model, endpoint, body)  # prefill is paid on the uncached part only
        ex = Exchange(
            req=req, body=body, gen_id=self._new_id(created), created=created, model=model,
            endpoint=endpoint, router=router, attempts=attempts, plan=plan,
            prompt_tokens=prompt_tokens, fault=fault, cache=cache,
            ttft_ms=sim.ttft_ms(endpoint, prompt_tokens - cache.cached_tokens, self._rng(fp, f"timing:{occurrence}")),
        )
        conformance.adjust(ex, self.config.seed, fp, occurrence, self.config.answers)  # verify's demo
        return ex

    def _plan(self, body: dict[str, Any], req: Request, model: Model, fp: str) -> sim.Plan:
        try:
            return sim.plan_answer(body, req.headers, model, self._rng(fp, "answer"), self.config.answers)
        except Exception as exc:  # a configured answer callable failed: say so, like a provider would
            raise chat_error(500, f"Sandbox answer function failed: {exc!r}") from exc

    def _requested_models(self, body: dict[str, Any]) -> list[Model]:
        ids = [body["model"]] if isinstance(body.get("model"), str) and body["model"] else []
        ids += [m for m in body.get("models") or [] if isinstance(m, str) and m not in ids]
        if not ids:
            raise chat_error(400, "No model specified (the sandbox has no account default model).")
        models = [m for m in (self.catalog.get(i) for i in ids) if m is not None]
        if not models:
            raise chat_error(400, f"{ids[0]} is not a valid model ID")
        return models

    def fault_fires(self, fault: Fault, fp: str) -> bool:
        hits = self.state.fault_hit(fp, fault.spec())
        return fault.times is None or hits <= fault.times

    async def _route(
        self, body: dict[str, Any], requested: list[Model], faults: "_FaultGate",
        prompt_tokens: int, images: int, fp: str, occurrence: int,
    ) -> tuple[Model, Model, Endpoint, str | None, list[dict[str, Any]]]:
        """(model asked, model serving, endpoint, router, failed attempts) of the first success."""
        attempts: list[dict[str, Any]] = []
        last_error: ChatError | None = None
        for wanted in requested:
            try:
                model, router = self._concrete(wanted, body, fp)
                _check_fits(model, prompt_tokens, images)
                endpoints = plan_attempts(model, body.get("provider"), body, prompt_tokens,
                                          self._rng(fp, f"route:{occurrence}"))
            except RoutingError as exc:
                last_error = chat_error(exc.status, exc.message)
                continue
            except ChatError as exc:
                last_error = exc
                continue
            fault = faults.active(wanted)
            for endpoint in endpoints:
                scenario = self.config.scenario
                if scenario is not None and scenario.fails(model.id, endpoint,
                                                           self._rng(fp, f"scenario:{occurrence}:{endpoint.tag}")):
                    last_error = await self._fail_attempt(parse_fault("503"), model, endpoint, attempts)
                    continue
                if fault is None or not fault.is_status or not fault.applies_to(endpoint.tag):
                    return wanted, model, endpoint, router, attempts
                last_error = await self._fail_attempt(fault, model, endpoint, attempts)
        assert last_error is not None
        raise last_error

    async def _fail_attempt(
        self, fault: Fault, model: Model, endpoint: Endpoint, attempts: list[dict[str, Any]]
    ) -> ChatError:
        wait_ms = FAILED_ATTEMPT_FRACTION * endpoint.ttft_ms
        await asyncio.sleep(wait_ms / 1000 * self.config.time_scale)
        status, payload, headers = status_fault_error(fault, endpoint.provider_name)
        attempts.append(attempt_record(model, endpoint, status, wait_ms, self._upstream_id()))
        return ChatError(status, payload, headers)

    def _concrete(self, wanted: Model, body: dict[str, Any], fp: str) -> tuple[Model, str | None]:
        model = self.catalog.resolve(wanted.id) or wanted
        if not model.is_router:
            return model, None
        plugins = [p for p in body.get("plugins") or [] if isinstance(p, dict) and p.get("id") == "auto-router"]
        allowed = plugins[0].get("allowed_models") if plugins else None
        choices = self.catalog.router_choices(model, allowed)
        if not choices:
            raise chat_error(400, "No models match the auto router's allowed_models.")
        return self._rng(fp, "auto").choice(choices), model.id

    def _rng(self, fp: str, purpose: str) -> random.Random:
        return random.Random(f"{self.config.seed}|{fp}|{purpose}")

    def _new_id(self, created: int) -> str:
        """``gen-<created>-<20 chars>`` like the real ids (API.md 0)."""
        return f"gen-{created}-" + "".join(self._ids.choices(ID_ALPHABET, k=20))

    def _upstream_id(self) -> str:
        return "chatcmpl-sim-" + "".join(self._ids.choices(ID_ALPHABET, k=20))

class _FaultGate:
    """Decides once per request and fault spec whether that fault fires (``times=N``)."""

    def __init__(self, service: ChatService, header: Fault | None, fp: str) -> None:
        self._service = service
        self._header = header
        self._fp = fp
        self._fired: dict[str, bool] = {}

    def active(self, model: Model) -> Fault | None:
        fault = pick_fault(self._header, self._service.config.faults, model)
        if fault is None:
            return None
        key = fault.spec()
        if key not in self._fired:
            self._fired[key] = self._service.fault_fires(fault, self._fp)
        return fault if self._fired[key] else None


def _header_fault(req: Request) -> Fault | None:
    spec = req.header("x-sandbox-fault")
    if not spec:
        return None
    try:
        return parse_fault(spec)
    except ValueError as exc:
        raise chat_error(400, str(exc)) from exc


def _parse_body(req: Request) -> dict[str, Any]:
    try:
        body = json.loads(req.body or b"null")
    except ValueError as exc:
        raise chat_error(400, f"Invalid JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise chat_error(400, "The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise chat_error(400, "messages: a non-empty list of message objects is required.")
    return body


def _check_fits(model: Model, prompt_tokens: int, images: int) -> None:
    if images and "image" not in model.input_modalities:
        raise chat_error(404, "No endpoints found that support image input")
    if model.context_length and prompt_tokens > model.context_length:
        raise chat_error(400, f"This endpoint's maximum context length is {model.context_length} tokens. "
                              f"However, you requested about {prompt_tokens} tokens. Please reduce the length.")



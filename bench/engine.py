"""Ties a suite, the catalog, the store and the runner into one run (CLI and dashboard).

``prepare()`` does everything that can fail on bad input before anything is sent
or written: load and validate the suite, fetch the catalog, check model ids,
build the plan and its cost estimate. ``execute()`` records the run and drives the
runner; ``prepare_resume()`` rebuilds the stored plan minus the finished requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from bench import __version__
import functools

from bench.budget import BOUND_DERIVATION, Budget, prompt_bound, request_ceiling
from bench.catalog import Model, Pricing, find_model, list_cost_usd, parse_models
from bench.catalog import to_decimal as catalog_decimal
from bench.client import OpenRouterClient, RetryPolicy, build_http_client
from bench.config import Settings
from bench.errors import AuthError, BenchError, ConfigError, NetworkError, ProviderError
from bench.journal import RunLock
from bench.plan import CaseRequest, PlannedRequest, Target, make_plan
from bench.records import ChatResult, RequestRow
from bench.runner import Progress, Runner, RunOptions, RunState
from bench.sink import StoreSink
from bench.judge import JUDGE_MAX_TOKENS, JUDGE_SYSTEM, JudgeLedger, make_judge_fn
from bench.store import Store, new_run_id
from bench.suites import OPENROUTER, Suite, load_suite
from bench import suites as suites_mod
from bench import checks as checks_mod
from bench import keys as keys_mod


@dataclass
class RunSpec:
    """What the user asked for (flags or dashboard widgets)."""

    suite_path: Path
    models: list[str] = field(default_factory=list)  # overrides the suite's models
    providers: list[str] = field(default_factory=list)  # names from the suite or JSON objects
    repeats: int | None = None
    concurrency: int = 4
    rate: float | None = None
    timeout_s: float = 120.0
    stall_timeout_s: float | None = 60.0
    warmup: bool = True
    budget_usd: Decimal | None = None
    allow_partial: bool = False
    lookup_generation: bool = False
    max_consecutive_failures: int = 5
    seed: int = 0
    name: str | None = None
    extra_endpoints: dict[str, Any] = field(default_factory=dict)  # e.g. the --local server
    add_models: list[str] = field(default_factory=list)  # appended to the suite's (or --model) list


@dataclass
class Prepared:
    spec: RunSpec
    suite: Suite
    targets: list[Target]
    plan: list[PlannedRequest]
    models: dict[str, Model]  # catalog entries by the id the user wrote
    estimate_usd: Decimal | None  # sum of ceilings; None when some price is unknown
    unpriced: list[str]
    catalog: list[Model]
    key_remaining_usd: float | None = None
    run_id: str | None = None  # set for a resume
    session: int = 0
    suite_changed: bool = False  # resume: the suite file differs from the one the run started with
    lock: RunLock | None = None  # resume: held from the plan until the run ends (one run, one writer)
    bound_lines: list[str] = field(default_factory=list)  # how the worst case was derived, per target
    in_flight_booked: list[str] = field(default_factory=list)  # resume: crashed sends and their cost
    # False when the base URL is a generic OpenAI-compatible server (its /models has no
    # OpenRouter prices) or no model of the run is on it: no key, credits or /generation calls.
    openrouter_api: bool = True

    @property
    def measured(self) -> int:
        return sum(1 for p in self.plan if not p.is_warmup)


# ------------------------------------------------------------------- clients
def endpoint_keys(suite: Suite | None, env: Mapping[str, str]) -> dict[str, str | None]:
    """Resolve each named endpoint's key from the environment variable the suite names.

    Called at the edge (CLI, dashboard) so library code never reads the environment;
    ``bench.keys`` decides (and refuses a key over plain http to a remote host).
    """
    return {name: keys_mod.endpoint_key(ep, env)
            for name, ep in (suite.endpoints.items() if suite is not None else [])}


def make_clients(settings: Settings, suite: Suite | None, concurrency: int,
                 keys: Mapping[str, str | None] | None = None, *,
                 openrouter_api: bool = True) -> dict[str, OpenRouterClient]:
    """One client per endpoint. ``openrouter_api=False`` (``Prepared.openrouter_api``): the
    base URL is a generic OpenAI-compatible server, or the run has no OpenRouter model, so
    the main client asks for usage in the stream and makes no OpenRouter-only call."""
    keys_mod.require_safe(settings.base_url, settings.api_key)
    clients = {
        OPENROUTER: OpenRouterClient(
            build_http_client(settings, concurrency), api_key=settings.api_key,
            retry=RetryPolicy(), openai_compatible=not openrouter_api,
        )
    }
    for name, ep in (suite.endpoints.items() if suite is not None else []):
        key = (keys or {}).get(name)
        keys_mod.require_safe(ep.base_url, key)
        # TLS trust and proxies carry over; attribution headers and the key do not
        ep_settings = dataclasses.replace(settings, base_url=ep.base_url, api_key=key, referer=None,
                                          title=None, sandbox=False)
        # Keep-alive stays on (a fresh TCP+TLS handshake per request would inflate
        # TTFT on remote servers); a reused connection that the server had closed
        # fails before any byte and is retried by the client as a transport error.
        clients[name] = OpenRouterClient(
            build_http_client(ep_settings, concurrency, fresh_connections=ep.fresh_connections),
            api_key=ep_settings.api_key, retry=RetryPolicy(), openai_compatible=True,
        )
    return clients


async def close_clients(clients: dict[str, OpenRouterClient]) -> None:
    for c in clients.values():
        await c.aclose()


# ------------------------------------------------------------------- prepare
def parse_provider_arg(text: str, suite: Suite) -> tuple[str, dict[str, Any] | None]:
    """``--provider NAME`` (a variant of the suite) or ``--provider '{json}'``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--provider {text!r}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"--provider {text!r}: expected a JSON object")
        suites_mod.validate_provider_object(obj, f"--provider {text}")
        name = _variant_name(obj)
        return name, obj
    if text == "default":
        return "default", None
    if text not in suite.providers:
        known = ", ".join(sorted(suite.providers)) or "none"
        raise ConfigError(f"--provider {text!r}: not a provider variant of the suite (known: {known})")
    return text, suite.providers[text]


def _variant_name(obj: dict[str, Any]) -> str:
    for key in ("only", "order"):
        if obj.get(key):
            return "+".join(str(x) for x in obj[key])
    if obj.get("sort"):
        s = obj["sort"]
        return f"sort:{s['by'] if isinstance(s, dict) else s}"
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def build_targets(suite: Suite, spec: RunSpec) -> list[Target]:
    model_specs = suite.model_specs(spec.models or None)
    known = {m.id for m in model_specs}
    if spec.add_models:
        model_specs += [m for m in suite.model_specs(spec.add_models) if m.id not in known]
    if spec.providers:
        variants = [parse_provider_arg(p, suite) for p in spec.providers]
    elif suite.providers:
        variants = list(suite.providers.items())
    else:
        variants = [("default", None)]
    targets: list[Target] = []
    for m in model_specs:
        endpoint, api_model = suite.route(m.id)
        if endpoint != OPENROUTER:
            targets.append(Target(m.id, endpoint, api_model, "default", None, dict(m.params)))
            continue
        for name, obj in variants:
            targets.append(Target(m.id, OPENROUTER, api_model, name, obj, dict(m.params)))
    return targets


def endpoint_pricing(suite: Suite, endpoint: str) -> Pricing | None:
    ep = suite.endpoints.get(endpoint)
    if ep is None or ep.prices is None:
        return None
    return Pricing.from_dict(ep.prices)


def uses_openrouter(suite: Suite, targets: list[Target]) -> bool:
    """Does the run send anything to the base URL (a model on it, or a judge)?"""
    return any(t.endpoint == OPENROUTER for t in targets) or bool(suite.judge_models)


def require_key(settings: Settings, suite: Suite, targets: list[Target]) -> None:
    """OpenRouter itself needs a key; the sandbox, another base URL or a run without
    OpenRouter models does not."""
    if (settings.api_key is None and not settings.sandbox and uses_openrouter(suite, targets)
            and keys_mod.is_openrouter_host(settings.base_url)):
        raise ConfigError(f"set {keys_mod.OPENROUTER_KEY_ENV}, or use --sandbox")


def speaks_openrouter(settings: Settings, raw_catalog: Mapping[str, Any]) -> bool:
    """OpenRouter, the sandbox, or a server whose /models carries OpenRouter's ``pricing``
    (tests' fakes, proxies); a vLLM or llama.cpp /v1/models has none."""
    if settings.sandbox or keys_mod.is_openrouter_host(settings.base_url):
        return True
    items = raw_catalog.get("data")
    return isinstance(items, list) and any(isinstance(m, dict) and isinstance(m.get("pricing"), dict)
                                           for m in items)


async def prepare(settings: Settings, spec: RunSpec, client: OpenRouterClient) -> Prepared:
    suite = load_suite(spec.suite_path)
    suite.endpoints.update(spec.extra_endpoints)
    if spec.repeats is not None:
        if spec.repeats < 1:
            raise ConfigError("--repeat must be at least 1")
        suite.repeats = spec.repeats
    targets = build_targets(suite, spec)
    require_key(settings, suite, targets)
    catalog: list[Model] = []
    openrouter_api = uses_openrouter(suite, targets)
    if openrouter_api:  # a run only on the suite's own endpoints needs no OpenRouter catalog
        raw = await client.models_raw()
        catalog = parse_models(raw)
        openrouter_api = speaks_openrouter(settings, raw)
        client.openai_compatible = not openrouter_api
    if not openrouter_api and spec.lookup_generation:
        raise ConfigError(f"--lookup-generation needs OpenRouter's /generation; no model of this run "
                          f"is on an OpenRouter API ({settings.base_url})")
    suites_mod.validate_models(
        suite,
        {m.id for m in catalog} | {m.canonical_slug for m in catalog if m.canonical_slug},
        models=[t.model for t in targets if t.endpoint == OPENROUTER],
    )
    models = {}
    for t in targets:
        if t.endpoint == OPENROUTER:
            found = find_model(catalog, t.model)
            if found is not None:
                models[t.model] = found
    cases = [CaseRequest(c.case_id, c.body, c.prompt_tokens_est) for c in suite.expand_cases()]
    if len({t.key for t in targets}) != len(targets):
        raise ConfigError("the same model and provider variant is listed twice")
    plan = make_plan(targets, cases, suite.repeats, warmup=spec.warmup and suite.warmup)
    estimate, unpriced = _price_plan(plan, models, suite)
    prep = Prepared(spec, suite, targets, plan, models, estimate, unpriced, catalog,
                    openrouter_api=openrouter_api)
    judge_usd, judge_note = _judge_estimate(prep)
    if judge_usd is None and judge_note is not None:
        prep.unpriced.append(f"{judge_note} (judge)")
        prep.estimate_usd = None
    elif judge_usd and prep.estimate_usd is not None:
        prep.estimate_usd += judge_usd
    prep.bound_lines = _bound_lines(prep)
    if judge_usd:
        prep.bound_lines.append(f"  + {judge_note}: worst case ${judge_usd:.6f} (answers at 16 bytes a token)")
    return prep


def _pricing_for(target: Target, models: dict[str, Model], suite: Suite) -> Pricing | None:
    if target.endpoint != OPENROUTER:
        return endpoint_pricing(suite, target.endpoint)
    m = models.get(target.model)
    return None if m is None else m.pricing


def _price_plan(
    plan: list[PlannedRequest], models: dict[str, Model], suite: Suite
) -> tuple[Decimal | None, list[str]]:
    """Reserve each request's true worst case (``budget.request_ceiling``); sum them."""
    total = Decimal(0)
    unpriced: set[str] = set()
    for item in plan:
        pricing = _pricing_for(item.target, models, suite)
        max_tokens = item.max_tokens
        if max_tokens is None:
            m = models.get(item.target.model)
            max_tokens = (m.top_provider_max_completion_tokens or m.context_length) if m else None
        if pricing is None or pricing.variable or max_tokens is None:
            if item.target.endpoint != OPENROUTER and pricing is None:
                item.max_cost_usd = Decimal(0)  # a local server with no prices costs nothing
                continue
            unpriced.add(item.target.model)
            continue
        item.max_cost_usd = request_ceiling(pricing, item.body, max_tokens)
        if item.max_cost_usd is None:
            unpriced.add(item.target.model)
        else:
            total += item.max_cost_usd
    return (None if unpriced else total), sorted(unpriced)


def _judge_estimate(prep: Prepared) -> tuple[Decimal | None, str | None]:
    """Worst case of the judge calls: one per judge check of every measured ok answer.

    The answer's length is bounded by its max_tokens at 16 bytes a token for this
    estimate; during the run each call reserves its exact worst case before it is sent.
    """
    cases = {c.case_id: c for c in prep.suite.expand_cases()}
    total, calls = Decimal(0), 0
    for item in prep.plan:
        case = cases.get(item.case_id)
        if item.is_warmup or case is None:
            continue
        for check in case.checks:
            if check.kind != "judge":
                continue
            model = check.arg.model or prep.suite.judge.model
            found = find_model(prep.catalog, model) if model else None
            if found is None or found.pricing.variable:
                return None, model
            answer_bytes = 16 * (item.max_tokens or 4096)
            body = {"messages": [{"role": "system", "content": JUDGE_SYSTEM},
                                 {"role": "user", "content": check.arg.rubric + "x" * answer_bytes}]}
            ceiling = request_ceiling(found.pricing, body, JUDGE_MAX_TOKENS)
            if ceiling is None:
                return None, model
            total += ceiling
            calls += 1
    return total, (f"{calls} judge calls" if calls else None)


def _bound_lines(prep: Prepared) -> list[str]:
    """Per target: the prompt bound and the worst case of one request, and how they were derived."""
    lines, seen = [BOUND_DERIVATION], set()
    for item in prep.plan:
        if item.target.key in seen or item.is_warmup:
            continue
        seen.add(item.target.key)
        bound = prompt_bound(item.body)
        images = f" + {bound.images} image(s)" if bound.images else ""
        cost = "unknown (no price)" if item.max_cost_usd is None else f"${item.max_cost_usd:.6f}"
        lines.append(f"  {item.target.model} [{item.target.variant}]: prompt <= {bound.tokens:,} tokens"
                     f"{images}, max_tokens {item.max_tokens}, worst case {cost} per attempt "
                     f"(case {item.case_id})")
    return lines


def check_budget(prep: Prepared) -> None:
    """Refuse a run whose ceiling exceeds --budget (unless --allow-partial) or the key's limit."""
    spec = prep.spec
    if spec.budget_usd is not None and not spec.allow_partial:
        if prep.estimate_usd is None:
            raise ConfigError(
                f"cannot guarantee --budget {spec.budget_usd}: no price for "
                f"{', '.join(prep.unpriced)}; use --allow-partial to run what fits"
            )
        if prep.estimate_usd > spec.budget_usd:
            raise ConfigError(
                f"estimated worst case ${prep.estimate_usd:.6f} exceeds --budget ${spec.budget_usd}; "
                "raise the budget, lower max_tokens/repeats, or use --allow-partial"
            )
    rem = prep.key_remaining_usd
    if rem is not None and prep.estimate_usd is not None and prep.estimate_usd > Decimal(str(rem)):
        raise ConfigError(
            f"estimated worst case ${prep.estimate_usd:.6f} exceeds the key's remaining limit ${rem:.6f}"
        )


# ------------------------------------------------------------------- execute
def _price_fn(prep: Prepared) -> Callable[[Target, ChatResult], tuple[Decimal | None, str | None]]:
    def price(target: Target, res: ChatResult) -> tuple[Decimal | None, str | None]:
        pricing = _pricing_for(target, prep.models, prep.suite)
        u = res.usage
        if pricing is None or u is None or u.prompt_tokens is None or u.completion_tokens is None:
            return None, None
        return list_cost_usd(
            pricing, u.prompt_tokens, u.completion_tokens, cached_tokens=u.cached_tokens or 0,
            cache_write_tokens=u.cache_write_tokens or 0,
        ), None

    return price


async def snapshot_key(store: Store, client: OpenRouterClient, run_id: str) -> None:
    """Record the key's usage and limit before and after a run (the credit_snapshots table).

    Best effort: a server without ``/key`` (a generic OpenAI-compatible one) or a
    failing lookup leaves no snapshot and never stops the run.
    """
    if not client.supports_openrouter_api:
        return  # a generic server has no /key; a run without OpenRouter models never asks it
    try:
        key = await client.key_info()
    except ProviderError:
        return
    store.save_credit_snapshot(source="key", label=key.label, limit_usd=key.limit,
                               limit_remaining_usd=key.limit_remaining, usage_usd=key.usage,
                               run_id=run_id)


def _settings_json(settings: Settings, prep: Prepared) -> dict[str, Any]:
    s = prep.spec
    return {
        "base_url": settings.base_url,  # never the key
        "sandbox": settings.sandbox,
        "models": [t.model for t in prep.targets],
        "providers": sorted({t.variant for t in prep.targets}),
        "repeats": prep.suite.repeats,
        "concurrency": s.concurrency,
        "rate": s.rate,
        "timeout_s": s.timeout_s,
        "warmup": s.warmup and prep.suite.warmup,
        "budget_usd": None if s.budget_usd is None else str(s.budget_usd),
        "allow_partial": s.allow_partial,
        "lookup_generation": s.lookup_generation,
        "seed": s.seed,
        "endpoints": {k: v.base_url for k, v in prep.suite.endpoints.items()},
    }


def record_run(settings: Settings, store: Store, prep: Prepared, run_id: str | None = None) -> str:
    run_id = run_id or new_run_id()
    snapshot_id = store.save_catalog_snapshot(prep.catalog, settings.base_url, settings.sandbox)
    store.create_run(
        run_id=run_id,
        name=prep.spec.name or prep.suite.name,
        suite_name=prep.suite.name,
        suite_path=str(prep.spec.suite_path),
        suite_hash=prep.suite.content_hash,
        tool_version=__version__,
        settings=_settings_json(settings, prep),
        catalog_snapshot_id=snapshot_id,
        simulated=settings.sandbox,
        plan=[p.to_json() for p in prep.plan],
    )
    return run_id


def make_check_fn(prep: Prepared, clients: dict[str, OpenRouterClient],
                  ledger: JudgeLedger) -> Any:
    cases = {c.case_id: c for c in prep.suite.expand_cases()}
    if not any(c.checks for c in cases.values()):
        return None

    def pricing_for(model: str) -> Pricing | None:
        found = find_model(prep.catalog, model)
        return None if found is None else found.pricing

    judge_fn = make_judge_fn(clients[OPENROUTER], prep.suite.judge.model, ledger, pricing_for)

    async def check(item: PlannedRequest, row: RequestRow, res: ChatResult | None, money: Any) -> None:
        case = cases.get(item.case_id)
        if case is None or not case.checks:
            return
        outcome = await checks_mod.evaluate_row(
            case.checks, output_text=row.output_text,
            tool_calls=res.tool_calls if res is not None else (),
            ttft_ms=row.ttft_ms, e2e_ms=row.e2e_ms, cost_usd=row.cost_usd, list_cost_usd=row.list_cost_usd,
            completion_tokens=row.completion_tokens, threshold=case.pass_threshold,
            judge_fn=functools.partial(judge_fn, money=money),
        )
        row.passed, row.score = outcome.passed, outcome.score
        row.check_detail = checks_mod.results_json(outcome)

    return check


async def execute(
    settings: Settings,
    store: Store,
    prep: Prepared,
    clients: dict[str, OpenRouterClient],
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_runner: Callable[[Runner], None] | None = None,
) -> tuple[str, RunState]:
    """Record the run (unless resuming) and run it to the end; returns (run_id, state).

    The run's lock (one run, one writer) is held from here, or from the resume's
    plan, until the run has ended and its rows are in the database.
    """
    if prep.run_id is None:
        run_id = new_run_id()
        lock = store.lock_run(run_id)
        try:
            record_run(settings, store, prep, run_id)
        except BaseException:
            lock.release()
            raise
    else:
        run_id = prep.run_id
        lock = prep.lock or store.lock_run(run_id)
    prep.lock = None
    try:
        return await _execute_locked(settings, store, prep, clients, run_id,
                                     on_progress=on_progress, on_runner=on_runner)
    finally:
        lock.release()


async def _execute_locked(
    settings: Settings, store: Store, prep: Prepared, clients: dict[str, OpenRouterClient],
    run_id: str, *, on_progress: Callable[[Progress], None] | None,
    on_runner: Callable[[Runner], None] | None,
) -> tuple[str, RunState]:
    store.update_run(run_id, status="running", status_reason=None)
    sink = StoreSink(store, heartbeat_run=run_id)  # the heartbeat: see m010_run_heartbeat
    ledger = JudgeLedger()
    spec = prep.spec
    budget = Budget(spec.budget_usd)
    if prep.run_id is not None:
        # Everything already at risk counts: answered sends, crashed or cancelled ones at
        # their worst case (or the cost /generation reported), earlier sessions, judges.
        budget.spent_usd = store.run_spend(run_id)
    runner = Runner(
        run_id, clients, sink,  # type: ignore[arg-type]
        options=RunOptions(
            concurrency=spec.concurrency, rate=spec.rate, timeout_s=spec.timeout_s,
            stall_timeout_s=spec.stall_timeout_s,
            max_consecutive_failures=spec.max_consecutive_failures, seed=spec.seed,
            session=prep.session, lookup_generation=spec.lookup_generation,
            prewarm_connections=spec.warmup and prep.suite.warmup,
        ),
        budget=budget, price_fn=_price_fn(prep), check_fn=make_check_fn(prep, clients, ledger),
        generation_fn=clients[OPENROUTER].generation if prep.openrouter_api else None,
        on_progress=on_progress,
    )
    runner.progress.spent_usd = budget.spent_usd
    if on_runner is not None:
        on_runner(runner)
    await snapshot_key(store, clients[OPENROUTER], run_id)
    try:
        state = await runner.run(prep.plan)
    except BaseException:
        runner.state.status = "failed" if runner.state.status == "running" else runner.state.status
        runner.state.reason = runner.state.reason or "the run crashed; resume with --resume"
        raise
    finally:
        await asyncio.to_thread(sink.close)
        if sink.lost:
            runner.state.status = "failed"
            runner.state.reason = (f"{runner.state.reason or 'the journal could not be written'}; "
                                   f"{len(sink.lost)} rows could not be written anywhere: {sink.error}")
        await snapshot_key(store, clients[OPENROUTER], run_id)
        extra: dict[str, Any] = {}
        if not settings.sandbox and store.served_by_sandbox(run_id):
            extra["simulated"] = True  # a sandbox reached through --base-url is still simulated
        store.update_run(
            run_id, status=runner.state.status, status_reason=runner.state.reason,
            finished_at=datetime.now(UTC), **extra,
        )
        store.build_aggregates_at_end(run_id)  # the dashboard's per-run aggregates (m011)
    return run_id, state


async def prepare_resume(settings: Settings, store: Store, run_ref: str, spec: RunSpec,
                         client: OpenRouterClient) -> Prepared:
    """The stored plan minus every request that already has a finished row."""
    run_id = store.resolve_run(run_ref)
    lock = store.lock_run(run_id)  # before reading what is done: a second resume stops here
    try:
        return await _prepare_resume_locked(settings, store, run_id, spec, client, lock)
    except BaseException:
        lock.release()
        raise


async def _book_in_flight(store: Store, client: OpenRouterClient, run_id: str) -> list[str]:
    """Sends a crash left ``started``: ask /generation what they cost and book it on the run.

    Their measurement is lost; their money is not. Without an answer they stay
    booked at their worst case. Either way the resume sends them again.
    """
    rows = store.in_flight_rows(run_id).to_dicts()
    gate = asyncio.Semaphore(8)

    async def look_up(row: dict[str, Any]) -> Decimal | None:
        if not (row["generation_id"] and row["endpoint"] == OPENROUTER and client.supports_openrouter_api):
            return None
        async with gate:
            try:
                gen = await client.generation(row["generation_id"], lookups=2, wait_s=0.25)
            except BenchError:
                return None
        return catalog_decimal(gen.get("total_cost", gen.get("usage")))

    notes = []
    for row, cost in zip(rows, await asyncio.gather(*(look_up(r) for r in rows))):
        if cost is not None:
            store.book_in_flight(run_id, row["request_idx"], row["session"], cost)
            notes.append(f"request {row['request_idx']}: sent before the crash, billed ${cost} (/generation)")
        else:
            notes.append(f"request {row['request_idx']}: sent before the crash, cost unknown, "
                         f"booked at its worst case ${row['max_cost_usd'] or 0}")
    return notes


async def _prepare_resume_locked(settings: Settings, store: Store, run_id: str, spec: RunSpec,
                                 client: OpenRouterClient, lock: RunLock) -> Prepared:
    run = store.get_run(run_id)
    store.ingest_journal(run_id)
    plan = [PlannedRequest.from_json(d) for d in run["plan"]]
    suite = load_suite(Path(run["suite_path"]))
    suite.endpoints.update(spec.extra_endpoints)
    catalog: list[Model] = []
    openrouter_api = uses_openrouter(suite, list({p.target.key: p.target for p in plan}.values()))
    if openrouter_api:  # a run only on the suite's own endpoints needs no OpenRouter catalog
        raw = await client.models_raw()
        catalog = parse_models(raw)
        openrouter_api = speaks_openrouter(settings, raw)
        client.openai_compatible = not openrouter_api
    booked = await _book_in_flight(store, client, run_id)
    done = store.finished_keys(run_id)
    todo = [p for p in plan if p.request_idx not in done]
    models = {m: found for m in {p.target.model for p in todo}
              if (found := find_model(catalog, m)) is not None}
    settings_json = run.get("settings") or {}
    spec.concurrency = spec.concurrency or int(settings_json.get("concurrency", 4))
    targets = list({p.target.key: p.target for p in todo}.values())
    # The plan (request bodies included) is stored, so a changed suite file does not
    # change what is sent; only its checks are used to score the new answers.
    prep = Prepared(spec, suite, targets, todo,
                    models, None, [], catalog, run_id=run_id,
                    session=store.next_session(run_id),
                    suite_changed=suite.content_hash != run["suite_hash"], lock=lock,
                    in_flight_booked=booked, openrouter_api=openrouter_api)
    if spec.budget_usd is None and settings_json.get("budget_usd"):
        spec.budget_usd = Decimal(settings_json["budget_usd"])
    return prep


async def plan_run(settings: Settings, spec: RunSpec, *, store: Store | None = None,
                   resume: str | None = None) -> Prepared:
    """Prepare (or prepare a resume) and check the key before anything is spent.

    A rejected key stops here. Servers without a ``/key`` endpoint (generic
    OpenAI-compatible ones) answer 404, which is fine. Network and auth failures
    become one-line ConfigErrors.
    """
    boot = make_clients(settings, None, spec.concurrency)
    client = boot[OPENROUTER]
    try:
        if resume:
            if store is None:
                raise ConfigError("resuming needs the database the run is in")
            prep = await prepare_resume(settings, store, resume, spec, client)
        else:
            prep = await prepare(settings, spec, client)
        try:
            if resume:
                require_key(settings, prep.suite, prep.targets)
            if settings.api_key and not settings.sandbox and prep.openrouter_api:
                try:
                    check_key(settings, prep, await client.key_info())
                except AuthError:
                    raise
                except ProviderError:
                    pass
        except BaseException:
            if prep.lock is not None:
                prep.lock.release()
            raise
        return prep
    except NetworkError as exc:
        raise ConfigError(f"cannot reach {settings.base_url}: {exc.message}") from None
    except AuthError as exc:
        raise ConfigError(f"the API key was rejected ({exc.status}): {exc.message}") from None
    finally:
        await close_clients(boot)


def check_key(settings: Settings, prep: Prepared, key: Any) -> None:
    """Store the key's remaining limit on the plan (when the server reports one)."""
    if key is not None and key.limit_remaining is not None:
        prep.key_remaining_usd = float(key.limit_remaining)


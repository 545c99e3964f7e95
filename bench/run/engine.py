"""Ties a suite, the catalog, the store and the runner into one run (CLI and dashboard).

``prepare()`` does everything that can fail on bad input before anything is sent
or written: load and validate the suite, fetch the catalog, check model ids,
build the plan and its cost estimate (targets and clients: bench.run.targets; prices
and the budget check: bench.run.budget). ``execute()`` records the run and drives the
runner; ``prepare_resume()`` rebuilds the stored plan minus the finished requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import __version__
from bench.api.catalog import Model, Pricing, find_model, parse_models
from bench.api.catalog import to_decimal as catalog_decimal
from bench.api.client import OpenRouterClient
from bench.config import Settings
from bench.errors import AuthError, BenchError, ConfigError, KeyWithheld, NetworkError, ProviderError
from bench.quality import checks as checks_mod
from bench.quality.judge import JudgeLedger, make_judge_fn
from bench.records import ChatResult, RequestRow
from bench.run import conversation as conversation_mod
from bench.run import synthetic as synthetic_mod
from bench.run.budget import Budget, bound_lines, item_ceiling, judge_estimate, price_fn, price_plan
from bench.run.plan import CaseRequest, PlannedRequest, make_plan
from bench.run.runner import Runner
from bench.run.spec import Prepared as Prepared  # re-exported: the CLI and the dashboard name it as engine.Prepared
from bench.run.spec import RunSpec as RunSpec
from bench.run.state import Progress, RequestHooks, RunOptions, RunState
from bench.run.targets import (
    build_targets,
    close_clients,
    generic_endpoint,
    make_clients,
    require_key,
    speaks_openrouter,
    uses_openrouter,
)
from bench.store.journal import RunLock
from bench.store.runs import new_run_id
from bench.store.sink import StoreSink
from bench.store.store import Store
from bench.store.team import hooks as team_hooks
from bench.suites import parse as suites_mod
from bench.suites.model import OPENROUTER as OPENROUTER
from bench.suites.model import Suite
from bench.suites.parse import gc_paused as gc_paused  # re-exported: planning pauses it too
from bench.suites.parse import load_suite


# ------------------------------------------------------------------- prepare
async def prepare(settings: Settings, suite: Suite, spec: RunSpec, client: OpenRouterClient) -> Prepared:
    """Build the plan of ``suite`` as ``spec`` asks and price it (``Prepared``); nothing is sent
    but /models. ``suite`` and ``spec`` are left as they were: the plan has its own copy."""
    with gc_paused():
        return await _prepare(settings, suite, spec, client)


def _run_suite_value(suite: Suite, spec: RunSpec) -> Suite:
    """The suite this run sends: the spec's extra endpoints and repeats applied to a copy."""
    if spec.repeats is not None and spec.repeats < 1:
        raise ConfigError("--repeat must be at least 1")
    return dataclasses.replace(
        suite, endpoints={**suite.endpoints, **spec.extra_endpoints},
        repeats=suite.repeats if spec.repeats is None else spec.repeats)


def fit_plan(plan: list[PlannedRequest], per_target: int) -> list[PlannedRequest]:
    """The first ``per_target`` measured requests of each target (warm-ups stay), renumbered."""
    kept: list[PlannedRequest] = []
    seen: dict[tuple[str, str], int] = {}
    for item in plan:
        if not item.is_warmup:
            seen[item.target.key] = seen.get(item.target.key, 0) + 1
            if seen[item.target.key] > per_target:
                continue
        kept.append(dataclasses.replace(item, request_idx=len(kept)))
    return kept


async def _fetch_catalog(settings: Settings, client: OpenRouterClient, needed: bool) -> tuple[list[Model], bool]:
    """(the catalog, whether the base URL speaks OpenRouter's API); a run only on the suite's
    own endpoints (``needed`` False) asks nothing and needs no OpenRouter catalog."""
    if not needed:
        return [], False
    raw = await client.models_raw()
    return parse_models(raw), speaks_openrouter(settings, raw)


async def _prepare(settings: Settings, suite: Suite, spec: RunSpec, client: OpenRouterClient) -> Prepared:
    suite = _run_suite_value(suite, spec)
    targets = build_targets(suite, spec)
    require_key(settings, suite, targets)
    catalog, openrouter_api = await _fetch_catalog(settings, client, uses_openrouter(suite, targets))
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
    if spec.fresh_seed is not None:
        cases = synthetic_mod.with_leads(cases, spec.fresh_seed)
    if len({t.key for t in targets}) != len(targets):
        raise ConfigError("the same model and provider variant is listed twice")
    # A suite of synthetic prompts alone has no case to warm up with: its probes are the warm-ups.
    plan = make_plan(targets, cases, suite.repeats, warmup=spec.warmup and suite.warmup) \
        if cases or not (suite.synthetic or suite.conversations or suite.synthetic_conversations) else []
    generic = functools.partial(generic_endpoint, suite, openrouter_api=openrouter_api)
    synthetic_mod.extend_plan(plan, targets, [*suite.synthetic, *conversation_mod.probe_specs(
        suite.synthetic_conversations)], seed=suite.seed, repeats=suite.repeats, generic=generic)
    conversation_mod.extend_plan(plan, targets, suite.conversations, suite.synthetic_conversations,
                                 cache=suite.cache, seed=suite.seed, repeats=suite.repeats, generic=generic,
                                 warmup=spec.warmup and suite.warmup)
    if spec.requests_per_target is not None:  # trimmed before pricing: the judge's worst case too
        plan = fit_plan(plan, spec.requests_per_target)
    estimate, unpriced = price_plan(plan, models, suite)
    prep = Prepared(spec, suite, targets, plan, models, estimate, unpriced, catalog,
                    openrouter_api=openrouter_api)
    judge_usd, judge_note = judge_estimate(prep)
    if judge_usd is None and judge_note is not None:
        prep.unpriced.append(f"{judge_note} (judge)")
        prep.estimate_usd = None
    elif judge_usd and prep.estimate_usd is not None:
        prep.estimate_usd += judge_usd
    prep.bound_lines = bound_lines(prep)
    if judge_usd:
        prep.bound_lines.append(f"  + {judge_note}: worst case ${judge_usd:.6f} (answers at 16 bytes a token)")
    return prep


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
        "connections": connection_mode(s),
        "budget_usd": None if s.budget_usd is None else str(s.budget_usd),
        "allow_partial": s.allow_partial,
        "lookup_generation": s.lookup_generation,
        "seed": s.seed,
        "endpoints": {k: v.base_url for k, v in prep.suite.endpoints.items()},
        **s.extra_settings,
    }


def connection_mode(spec: RunSpec) -> str:
    """``prewarmed`` (opened before the measured phase, the default) or ``cold`` (--cold-connections)."""
    return "cold" if spec.cold_connections else "prewarmed"


def record_run(settings: Settings, store: Store, prep: Prepared, run_id: str | None = None) -> str:
    run_id = run_id or new_run_id()
    snapshot_id = store.save_catalog_snapshot(prep.catalog, settings.base_url, settings.sandbox)
    store.create_run(
        run_id=run_id,
        name=prep.spec.name or prep.suite.name,
        suite_name=prep.suite.name,
        suite_path=str(prep.suite.path),
        suite_hash=prep.suite.content_hash,
        tool_version=__version__,
        settings=_settings_json(settings, prep),
        catalog_snapshot_id=snapshot_id,
        simulated=settings.sandbox,
        plan=[p.to_json() for p in prep.plan],
        origin=settings.origin,
    )
    return run_id


def make_check_fn(prep: Prepared, clients: dict[str, OpenRouterClient],
                  ledger: JudgeLedger) -> Any:
    cases = {c.case_id: c for c in prep.suite.expand_cases()}
    turn_checks = {(c.id, k): checks for c in prep.suite.conversations for k, checks in enumerate(c.checks, 1)}
    if not any(c.checks for c in cases.values()) and not any(turn_checks.values()):
        return None

    def pricing_for(model: str) -> Pricing | None:
        found = find_model(prep.catalog, model)
        return None if found is None else found.pricing

    judge_fn = make_judge_fn(clients[OPENROUTER], prep.suite.judge.model, ledger, pricing_for)

    async def check(item: PlannedRequest, row: RequestRow, res: ChatResult | None, money: Any) -> None:
        case = cases.get(item.case_id) if item.conversation is None else None
        checks = case.checks if case is not None else turn_checks.get((item.case_id, row.turn or 0), ())
        if not checks:
            return
        outcome = await checks_mod.evaluate_row(
            checks, output_text=row.output_text,
            tool_calls=res.tool_calls if res is not None else (),
            ttft_ms=row.ttft_ms, e2e_ms=row.e2e_ms, cost_usd=row.cost_usd, list_cost_usd=row.list_cost_usd,
            completion_tokens=row.completion_tokens, threshold=case.pass_threshold if case is not None else 1.0,
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
    hooks = _synthesizer(store, prep, run_id)  # before the sink: a resume reads its stored probes
    sink = StoreSink(store, heartbeat_run=run_id)  # the heartbeat: see m010_run_heartbeat
    pusher = team_hooks.start_pusher(settings, store, run_id)  # the team store, if any: never waited on
    ledger = JudgeLedger()
    spec = prep.spec
    budget = Budget(spec.budget_usd)
    if prep.run_id is not None:
        # Everything already at risk counts: answered sends, crashed or cancelled ones at
        # their worst case (or the cost /generation reported), earlier sessions, judges.
        budget.spent_usd = store.run_spend(run_id)
    runner = Runner(
        run_id, clients, sink,
        options=RunOptions(
            concurrency=spec.concurrency, rate=spec.rate, timeout_s=spec.timeout_s,
            stall_timeout_s=spec.stall_timeout_s,
            max_consecutive_failures=spec.max_consecutive_failures, seed=spec.seed,
            session=prep.session, lookup_generation=spec.lookup_generation,
            prewarm_connections=not spec.cold_connections,
        ),
        budget=budget, price_fn=price_fn(prep), check_fn=make_check_fn(prep, clients, ledger),
        generation_fn=clients[OPENROUTER].generation if prep.openrouter_api else None,
        on_progress=on_progress, hooks=hooks,
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
        team_hooks.stop_pusher(pusher)  # what is left goes up from its thread; the CLI waits after the summary
    return run_id, state


def _synthesizer(store: Store, prep: Prepared, run_id: str) -> RequestHooks | None:
    """The hooks that build bodies just before sending: synthetic prompts (from their target's probe
    answers) and conversation turns (from the answers before them). A resume's start from what
    earlier sessions stored, so they build the same prompts and histories."""
    synthetic = any(synthetic_mod.is_pending(p) for p in prep.plan)
    turns = any(conversation_mod.is_pending(p) for p in prep.plan)
    if not synthetic and not turns:
        return None
    reprice = lambda item: item_ceiling(item, prep.models, prep.suite)[0]  # noqa: E731
    synth = synthetic_mod.Synthesizer(reprice)
    talks = conversation_mod.Conversations(reprice, synth, synth.calibration)
    if prep.run_id is not None:
        run = store.get_run(run_id)
        plan = [PlannedRequest.from_json(d) for d in (run["plan"] if run is not None else None) or []]
        columns = tuple(dict.fromkeys((*synthetic_mod.PROBE_ROW_COLUMNS, *conversation_mod.ROW_COLUMNS)))
        rows = store.requests_frame(run_id, columns=columns).to_dicts()
        synth.load(plan, rows)
        talks.load(plan, rows)
    return talks if turns else synth


async def prepare_resume(settings: Settings, store: Store, run_ref: str, spec: RunSpec,
                         client: OpenRouterClient, suite: Suite | None = None) -> Prepared:
    """The stored plan minus every request that already has a finished row."""
    run_id = store.resolve_run(run_ref)
    lock = store.lock_run(run_id)  # before reading what is done: a second resume stops here
    try:
        return await _prepare_resume_locked(settings, store, run_id, spec, client, lock, suite)
    except BaseException:
        lock.release()
        raise


async def _book_in_flight(store: Store, client: OpenRouterClient, run_id: str,
                          openrouter_api: bool) -> list[str]:
    """Sends a crash left ``started``: ask /generation what they cost and book it on the run.

    Their measurement is lost; their money is not. Without an answer they stay
    booked at their worst case. Either way the resume sends them again.
    """
    rows = store.in_flight_rows(run_id).to_dicts()
    gate = asyncio.Semaphore(8)

    async def look_up(row: dict[str, Any]) -> Decimal | None:
        if not (row["generation_id"] and row["endpoint"] == OPENROUTER and openrouter_api):
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
                                 client: OpenRouterClient, lock: RunLock, suite: Suite | None = None) -> Prepared:
    """``suite``: the run's suite when it was built in code (a verify's, rebuilt from its settings);
    else the stored ``suite_path`` is read."""
    run = store.get_run(run_id)
    assert run is not None  # resolve_run found it, and runs are never deleted
    store.ingest_journal(run_id)
    plan = [PlannedRequest.from_json(d) for d in run["plan"]]
    loaded = suite if suite is not None else load_suite(Path(run["suite_path"]))
    suite = dataclasses.replace(loaded, endpoints={**loaded.endpoints, **spec.extra_endpoints})
    catalog, openrouter_api = await _fetch_catalog(
        settings, client, uses_openrouter(suite, list({p.target.key: p.target for p in plan}.values())))
    booked = await _book_in_flight(store, client, run_id, openrouter_api)
    done = store.finished_keys(run_id)
    todo = [p for p in plan if p.request_idx not in done]
    models = {m: found for m in {p.target.model for p in todo}
              if (found := find_model(catalog, m)) is not None}
    settings_json = run.get("settings") or {}
    stored_budget = settings_json.get("budget_usd")
    spec = dataclasses.replace(  # what the run started with fills what this resume leaves open
        spec, concurrency=spec.concurrency or int(settings_json.get("concurrency", 4)),
        budget_usd=Decimal(stored_budget) if spec.budget_usd is None and stored_budget else spec.budget_usd)
    targets = list({p.target.key: p.target for p in todo}.values())
    # The plan (request bodies included) is stored, so a changed suite file does not
    # change what is sent; only its checks are used to score the new answers.
    return Prepared(spec, suite, targets, todo,
                    models, None, [], catalog, run_id=run_id,
                    session=store.next_session(run_id),
                    suite_changed=suite.content_hash != run["suite_hash"], lock=lock,
                    in_flight_booked=booked, openrouter_api=openrouter_api)


async def plan_run(settings: Settings, suite: Suite | None, spec: RunSpec, *, store: Store | None = None,
                   resume: str | None = None) -> Prepared:
    """Prepare ``suite`` (or, with ``resume``, the stored run's plan) and check the key before
    anything is spent. Callers go through ``bench.run.session.run_suite``.

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
            prep = await prepare_resume(settings, store, resume, spec, client, suite)
        elif suite is None:
            raise ConfigError("give a suite, or a run to resume")
        else:
            prep = await prepare(settings, suite, spec, client)
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
    except KeyWithheld as exc:
        raise ConfigError(exc.message) from None
    except AuthError as exc:
        raise ConfigError(f"the API key was rejected ({exc.status}): {exc.message}") from None
    finally:
        await close_clients(boot)


def check_key(settings: Settings, prep: Prepared, key: Any) -> None:
    """Store the key's remaining limit on the plan (when the server reports one)."""
    if key is not None and key.limit_remaining is not None:
        prep.key_remaining_usd = float(key.limit_remaining)

"""One tick of a monitor: resume a crashed one or plan the next, guard the daily budget, run it,
snapshot the providers' catalog, then evaluate and record incidents and send their alerts.

The order is what makes a restart safe. The tick's row is written ('running') before anything is
sent and the run is tagged with it before its first send (the engine's ``on_runner`` hook), so a
``kill -9`` leaves a tick that the next start resumes with ``run --resume``'s guarantees (answered
requests are never sent again, crashed sends are booked). Incidents and alerts come before the
tick is marked finished: a crash in between repeats the (idempotent) evaluation and delivers what
was not delivered, never a second alert for an incident that already had one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.api.catalog import find_model
from bench.api.client import OpenRouterClient
from bench.api.http import build_http_client
from bench.config import Settings
from bench.errors import BenchError, ConfigError
from bench.monitor import alerts, incidents
from bench.results import trends
from bench.run import session
from bench.run.session import SessionHooks, SessionResult
from bench.run.spec import Prepared, RunSpec
from bench.run.state import Progress
from bench.store.store import Store
from bench.store.team import hooks as team_hooks
from bench.suites.model import OPENROUTER
from bench.suites.parse import load_suite

Note = Callable[[str], None]


@dataclass
class MonitorConfig:
    """A monitor as stored in ``monitors`` (the webhook URL is passed apart: it is never stored)."""

    name: str
    suite_path: str
    every_s: float = 1800.0
    jitter: float = 0.0
    budget_per_day_usd: Decimal | None = None
    options: dict[str, Any] = field(default_factory=dict)  # models, providers, concurrency, timeout_s, ...

    def save(self, store: Store) -> None:
        store.save_monitor(self.name, suite_path=self.suite_path, options=self.options, every_s=self.every_s,
                           jitter=self.jitter, budget_per_day_usd=self.budget_per_day_usd)

    @classmethod
    def load(cls, store: Store, name: str) -> MonitorConfig | None:
        row = store.get_monitor(name)
        if row is None:
            return None
        return cls(name=row["name"], suite_path=row["suite_path"], every_s=float(row["every_s"]),
                   jitter=float(row["jitter"]), budget_per_day_usd=row["budget_per_day_usd"],
                   options=dict(row["options"] or {}))


@dataclass
class TickResult:
    tick: int
    status: str  # finished | skipped | failed | cancelled
    run_id: str | None = None
    opened: list[trends.Decision] = field(default_factory=list)
    recovered: list[trends.Decision] = field(default_factory=list)
    note: str | None = None


def run_name(monitor: str, tick: int) -> str:
    return f"monitor {monitor} tick {tick}"


def spec_for(cfg: MonitorConfig, tick: int, budget_left: Decimal | None) -> RunSpec:
    """The tick's run: the monitor's options, fresh prompts (the tick number seeds them)."""
    o = cfg.options
    timeout_s = float(o.get("timeout_s", 120.0))
    return RunSpec(
        suite_path=Path(cfg.suite_path), models=list(o.get("models") or []),
        providers=list(o.get("providers") or []), repeats=o.get("repeats"),
        concurrency=int(o.get("concurrency", 4)), timeout_s=timeout_s, stall_timeout_s=min(60.0, timeout_s),
        warmup=bool(o.get("warmup", True)), budget_usd=budget_left,
        max_consecutive_failures=int(o.get("max_failures", 5)), seed=tick, name=run_name(cfg.name, tick),
        fresh_seed=int(o.get("seed_base", 0)) + tick,
    )


class _Skip(Exception):
    """The tick's plan would exceed the daily budget: nothing is sent."""


async def execute_run(settings: Settings, store: Store, cfg: MonitorConfig, tick: int, spec: RunSpec, *,
                      resume: str | None, env: Mapping[str, str], on_plan: Callable[[Prepared], None],
                      on_runner: Callable[[Any], None],
                      on_progress: Callable[[Progress], None] | None = None) -> SessionResult:
    """Run a tick through the one door for running a suite (``bench.run.session.run_suite``), with
    Ctrl-C/SIGTERM cancelling the run as ``orbench run`` does. The suite is read with the tick's
    seed (dataset samples rotate); a resume replays the stored plan instead."""
    suite = None if resume else load_suite(cfg.suite_path, seed=spec.fresh_seed)
    loop = asyncio.get_running_loop()

    def hook(runner: Any) -> None:
        on_runner(runner)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, runner.cancel)

    try:
        return await session.run_suite(settings, suite, spec, store=store, env=env, resume=resume,
                                       hooks=SessionHooks(on_plan=on_plan, on_progress=on_progress, on_runner=hook))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def run_tick(settings: Settings, store: Store, cfg: MonitorConfig, *, env: Mapping[str, str],
                   webhook_url: str | None = None, rules: trends.Rules | None = None, note: Note = lambda _: None,
                   on_progress: Callable[[Progress], None] | None = None) -> TickResult:
    """One tick now: the crashed one resumed, or the next one; then incidents and alerts."""
    rules = rules or trends.Rules(**cfg.options.get("rules", {}))
    store.init()
    last = store.last_tick(cfg.name)
    if last is not None and last["status"] == "running":
        tick, resume = int(last["tick"]), last["run_id"]
        note(f"monitor {cfg.name}: tick {tick} did not finish; " +
             (f"resuming its run {resume}" if resume else "it sent nothing; running it now"))
        if resume is None:
            _close_orphans(store, cfg.name, tick)
    else:
        tick, resume = (int(last["tick"]) + 1 if last is not None else 1), None
    started = datetime.now(UTC)
    result = await _run(settings, store, cfg, tick, resume, env, note, on_progress)
    if result.status in ("finished", "failed"):
        decisions = incidents.apply(store, cfg.name, tick, rules, note)
        result.opened = [d for d in decisions if d.action == "open"]
        result.recovered = [d for d in decisions if d.action == "recover"]
        if webhook_url:
            alerts.deliver_pending(store, cfg.name, tick, webhook_url, note)
        failure = team_hooks.push_incidents(settings, store, cfg.name)  # --team: where dashboards read them
        if failure:
            note(f"monitor {cfg.name}: incidents not on the team store yet: {failure}")
        store.end_tick(cfg.name, tick, result.status, result.note)
    if result.status in ("finished", "failed", "skipped"):
        store.set_next_tick(cfg.name, next_tick_at(started, cfg))
    return result


def next_tick_at(started: datetime, cfg: MonitorConfig, rng: random.Random | None = None) -> datetime:
    """One period after this tick's start, moved by up to +-jitter of the period."""
    shift = (rng or random.Random()).uniform(-cfg.jitter, cfg.jitter) if cfg.jitter else 0.0
    return started + timedelta(seconds=cfg.every_s * (1.0 + shift))


async def _run(settings: Settings, store: Store, cfg: MonitorConfig, tick: int, resume: str | None,
               env: Mapping[str, str], note: Note, on_progress: Callable[[Progress], None] | None) -> TickResult:
    spent = store.monitor_spent_since(cfg.name, datetime.now(UTC) - timedelta(days=1))
    budget = cfg.budget_per_day_usd
    spec = spec_for(cfg, tick, None if budget is None else budget - spent)

    def on_plan(prep: Prepared) -> None:
        if resume is None:
            skip = _over_budget(prep, budget, spent)
            if skip is not None:
                raise _Skip(skip)
            store.start_tick(cfg.name, tick, "running")  # before any send: a restart finds it

    def tag(runner: Any) -> None:
        store.tag_tick_run(cfg.name, tick, runner.run_id)  # before any send: a restart resumes it

    try:
        result = await execute_run(settings, store, cfg, tick, spec, resume=resume, env=env, on_plan=on_plan,
                                   on_runner=tag, on_progress=on_progress)
    except _Skip as skip:
        note(f"monitor {cfg.name}: tick {tick} skipped: {skip}")
        store.start_tick(cfg.name, tick, "skipped", note=str(skip))  # the row says why; nothing was sent
        return TickResult(tick, "skipped", note=str(skip))
    assert result.run_id is not None and result.state is not None  # not a dry run
    run_id, status = result.run_id, result.state.status
    await _snapshot_catalog(settings, store, cfg.name, tick, result.prep)
    if status == "cancelled":
        note(f"monitor {cfg.name}: tick {tick} cancelled; the next start resumes run {run_id}")
        return TickResult(tick, "cancelled", run_id)
    if status != "finished":
        run = store.get_run(run_id)
        reason = run["status_reason"] if run is not None else None
        return TickResult(tick, "failed", run_id, note=f"run {status}: {reason}")
    return TickResult(tick, "finished", run_id)


def _over_budget(prep: Prepared, budget: Decimal | None, spent: Decimal) -> str | None:
    """Why this tick must be skipped (its worst case would exceed the daily budget), or None."""
    if budget is None:
        return None
    if prep.estimate_usd is None:
        return f"--budget-per-day ${budget} is set and this tick's worst case is unknown (no price)"
    if spent + prep.estimate_usd > budget:
        return (f"its worst case ${prep.estimate_usd:.6f} would exceed --budget-per-day ${budget} "
                f"(${spent:.6f} spent in the last 24 h)")
    return None


def _close_orphans(store: Store, monitor: str, tick: int) -> None:
    """A crash between recording the tick's run and tagging it left an untagged run that sent
    nothing (the tag comes before the first send): mark it cancelled so no view waits for it."""
    frame = store.query("SELECT run_id FROM runs WHERE name = ? AND monitor IS NULL AND status IN "
                        "('planned', 'running')", [run_name(monitor, tick)])
    for run_id in frame["run_id"].to_list():
        store.update_run(run_id, status="cancelled", status_reason="its monitor tick crashed before any send")


async def _snapshot_catalog(settings: Settings, store: Store, monitor: str, tick: int,
                            prep: Prepared) -> None:
    """The endpoints (provider, prices) of each monitored OpenRouter model, for catalog incidents."""
    if not prep.openrouter_api:
        return
    models = sorted({t.model for t in prep.targets if t.endpoint == OPENROUTER})
    client = OpenRouterClient(build_http_client(settings, 1), api_key=settings.api_key)
    rows: list[dict[str, Any]] = []
    try:
        for model in models:
            try:
                found = await client.endpoints(model)
            except BenchError:
                continue  # a catalog hiccup is not an incident of the monitored provider
            listed = find_model(prep.catalog, model)
            expiry = listed.expiration_date if listed is not None else None
            for ep in found.endpoints:
                rows.append({"model": model, "provider": ep.tag or ep.provider_name or "?",
                             "prompt": ep.pricing.prompt, "completion": ep.pricing.completion,
                             "expiration_date": expiry})
    finally:
        await client.aclose()
    store.save_tick_catalog(monitor, tick, rows)


def resolve(store: Store, target: str, name: str | None) -> MonitorConfig:
    """``monitor tick SUITE|NAME``: the stored monitor of that name, or the one running that suite."""
    store.init()
    by_name = MonitorConfig.load(store, name or target)
    if by_name is not None:
        return by_name
    if Path(target).is_file():
        found = store.monitor_for_suite(str(Path(target).resolve()))
        if len(found) == 1:
            loaded = MonitorConfig.load(store, found[0])
            assert loaded is not None
            return loaded
    raise ConfigError(f"no monitor named {name or target!r}")

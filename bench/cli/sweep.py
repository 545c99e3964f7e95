"""``orbench sweep``: run a suite at each load level (one run per step) and find the knee.

Each step is an ordinary run driven through bench.run.session.run_suite (plan, budget check, execute),
tagged with the sweep's id and level; the figures come from bench.run.sweep over the stored
rows. ``--budget`` covers the whole sweep (each step may use what the earlier ones left);
``--resume SWEEP`` skips finished steps and resumes an interrupted one with the engine's
own resume, which never sends a paid request twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from bench.cli.common import api_options, api_settings, db_option, note, origin_option
from bench.cli.run import ProgressPrinter
from bench.config import Settings, parse_usd
from bench.errors import BudgetRefused, ConfigError
from bench.results.render import Column, fit_table, integer, num, rate
from bench.run import session, sweep
from bench.run.session import SessionHooks
from bench.run.spec import Prepared, RunSpec
from bench.store.runs import new_run_id
from bench.store.store import Store
from bench.suites.parse import load_suite

DEFAULT_RATE_CONCURRENCY = 64  # in-flight cap of an open-loop (rate) step


@dataclasses.dataclass
class SweepOptions:
    """Everything a sweep needs to run or resume (stored in ``sweeps.settings``)."""

    suite_path: str
    axis: str
    levels: list[float]
    slos: list[str]
    requests_per_step: int | None
    duration_per_step_s: float | None
    stop_at_knee: bool
    models: list[str]
    providers: list[str]
    budget_usd: str | None
    timeout_s: float
    concurrency_cap: int
    seed: int
    warmup: bool


def _step_count(opts: SweepOptions, level: float, suite_requests: int) -> int:
    """Measured requests per model x provider in one step."""
    if opts.requests_per_step is not None:
        return opts.requests_per_step
    if opts.duration_per_step_s is not None:  # enough to keep the step busy until its time is up
        per_s = level * 20 if opts.axis == "concurrency" else level * 1.5
        return max(suite_requests, math.ceil(opts.duration_per_step_s * per_s) + 10)
    # the suite's own requests, but at least 4 per slot / 10 s of arrivals, so a step saturates
    floor = 4 * level if opts.axis == "concurrency" else 10 * level
    return max(suite_requests, math.ceil(floor))


def _spec(opts: SweepOptions, level: float, budget_left: Decimal | None, sweep_id: str,
          repeats: int, per_target: int, extra: RunSpec) -> RunSpec:
    concurrency = int(level) if opts.axis == "concurrency" else opts.concurrency_cap
    return RunSpec(
        suite_path=Path(opts.suite_path), models=list(opts.models), providers=list(opts.providers),
        requests_per_target=per_target, extra_endpoints=dict(extra.extra_endpoints),
        add_models=list(extra.add_models),
        repeats=repeats, concurrency=concurrency, rate=level if opts.axis == "rate" else None,
        timeout_s=opts.timeout_s, stall_timeout_s=min(60.0, opts.timeout_s), warmup=opts.warmup,
        budget_usd=budget_left, allow_partial=opts.duration_per_step_s is not None,
        seed=opts.seed, name=f"sweep {sweep_id} {opts.axis}={level:g}",
    )


async def _run_step(settings: Settings, store: Store, opts: SweepOptions, sweep_id: str, level: float,
                    resume_run: str | None, budget_left: Decimal | None,
                    extra: RunSpec) -> tuple[str | None, str]:
    """One step: plan, check the budget, run; returns (run_id, status). 'over-budget' sends nothing."""
    suite = load_suite(Path(opts.suite_path))
    n_cases = len(suite.expand_cases())
    per_target = _step_count(opts, level, n_cases)
    spec = _spec(opts, level, budget_left, sweep_id, repeats=max(1, math.ceil(per_target / max(1, n_cases))),
                 per_target=per_target, extra=extra)
    loop = asyncio.get_running_loop()
    timed_out: list[bool] = []

    def show_step(prep: Prepared) -> None:
        worst = "" if prep.estimate_usd is None else f", worst case ${prep.estimate_usd.normalize():f}"
        note(f"step {opts.axis}={level:g}: {prep.measured} requests{worst}"
             + (f" (resuming run {resume_run})" if resume_run else ""))

    def hook(runner: Any) -> None:
        store.tag_sweep_run(runner.run_id, sweep_id, level)  # before any send: a resume finds it
        show_step(plans[-1])
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, runner.cancel)
        if opts.duration_per_step_s is not None:

            def time_out() -> None:
                timed_out.append(True)
                runner.cancel()

            loop.call_later(opts.duration_per_step_s, time_out)

    plans: list[Prepared] = []
    hooks = SessionHooks(on_plan=plans.append, on_progress=ProgressPrinter(), on_runner=hook)
    try:
        result = await session.run_suite(settings, suite, spec, store=store, env=os.environ,
                                         resume=resume_run, hooks=hooks)
    except BudgetRefused as exc:
        note(f"sweep stopped before {opts.axis}={level:g}: {exc}")
        return None, "over-budget"
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    assert result.run_id is not None and result.state is not None  # not a dry run
    run_id, state = result.run_id, result.state
    if timed_out and state.status == "cancelled":  # the step's time was up: that is its end
        store.update_run(run_id, status="finished",
                         status_reason=f"--duration-per-step {opts.duration_per_step_s:g}s reached")
        return run_id, "finished"
    return run_id, state.status


async def _sweep(settings: Settings, store: Store, opts: SweepOptions, sweep_id: str, use_local: bool) -> str:
    """Run every step not yet finished (the local model started once for all); returns the final status."""
    if not use_local:
        return await _steps(settings, store, opts, sweep_id, RunSpec())
    async with session.local_model(RunSpec(), note) as extra:
        return await _steps(settings, store, opts, sweep_id, extra)


async def _steps(settings: Settings, store: Store, opts: SweepOptions, sweep_id: str, extra: RunSpec) -> str:
    budget = parse_usd(opts.budget_usd, "--budget")
    slos = [sweep.parse_slo(s) for s in opts.slos]
    done = {r["sweep_level"]: r for r in store.sweep_runs(sweep_id).iter_rows(named=True)}
    for level in opts.levels:
        prior = done.get(level)
        if prior is not None and prior["status"] == "finished":
            note(f"step {opts.axis}={level:g}: finished earlier (run {prior['run_id']}), skipped")
        else:
            resume_run = prior["run_id"] if prior is not None else None
            # a resumed step's own spend is counted again by the engine's resume
            left = None if budget is None else budget - _spent(store, sweep_id, but=resume_run)
            _, status = await _run_step(settings, store, opts, sweep_id, level, resume_run,
                                        left, extra)
            if status == "over-budget":
                return "stopped"
            if status != "finished":
                return status
        if opts.stop_at_knee and _all_knees(store, sweep_id, opts, slos):
            note(f"--stop-at-knee: every model x provider has its knee; stopping after {opts.axis}={level:g}")
            return "finished"
    return "finished"


def _spent(store: Store, sweep_id: str, but: str | None = None) -> Decimal:
    """Money the sweep's steps have put at risk so far (``but`` one run)."""
    runs = [r for r in store.sweep_runs(sweep_id)["run_id"].to_list() if r != but]
    return sum((store.run_spend(r) for r in runs), Decimal(0))


def _all_knees(store: Store, sweep_id: str, opts: SweepOptions, slos: list[Any]) -> bool:
    steps = sweep.sweep_steps(store, sweep_id, opts.axis, slos)
    targets = {sweep.target_key(s["model"], s["provider"]) for s in steps}
    return bool(targets) and targets <= set(sweep.knees(steps, opts.axis))


def _table(result: dict[str, Any]) -> str:
    axis = result["axis"]
    cols = [Column(axis, axis, integer if axis == "concurrency" else num, priority=0),
            Column("group", "model [provider]", priority=0, align="left"),
            Column("n", fmt=integer, priority=1), Column("req_per_s", "req/s", num, priority=0),
            Column("output_tok_per_s", "out tok/s", num, priority=1),
            Column("goodput_req_per_s", "goodput", num, priority=1),
            Column("ttft_p50_ms", "TTFT p50", num, priority=2), Column("ttft_p95_ms", "TTFT p95", num, priority=1),
            Column("tpot_p50_ms", "TPOT p50", num, priority=3), Column("e2e_p95_ms", "e2e p95", num, priority=2),
            Column("error_rate", "errors", rate, priority=2), Column("rate_limited_rate", "429s", rate, priority=4)]
    rows = [{**s, "group": sweep.target_key(s["model"], s["provider"])} for s in result["steps"]]
    return fit_table(rows, cols, None)[0]


@click.command("sweep")
@click.argument("suite", required=False, type=click.Path(dir_okay=False))
@click.option("--concurrency", "-c", "concurrency", default=None,
              help="Concurrency levels, e.g. 1,2,4,8,16,32 (the in-flight cap with --rate: one number).")
@click.option("--rate", default=None, help="Open-loop levels instead: Poisson arrivals per second, e.g. 1,2,4.")
@click.option("--requests-per-step", type=click.IntRange(min=1), default=None,
              help="Measured requests per model x provider in each step.")
@click.option("--duration-per-step", "duration_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per step instead (requests still in flight at the end are cancelled).")
@click.option("--slo", "slos", multiple=True,
              help="Latency objective for goodput, e.g. 'ttft_p95_ms<=500' (repeatable).")
@click.option("--stop-at-knee", is_flag=True, help="Stop once every model x provider has shown its knee.")
@click.option("--model", "-m", "models", multiple=True, help="Model id (repeatable); overrides the suite.")
@click.option("--provider", "-p", "providers", multiple=True, help="Provider variant or JSON object (repeatable).")
@click.option("--budget", default=None, help="USD ceiling for the whole sweep.")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True,
              help="Per-request timeout, seconds.")
@click.option("--no-warmup", is_flag=True, help="Skip the warm-up request of each step.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for arrivals and bootstraps.")
@click.option("--resume", default=None, metavar="SWEEP", help="Resume SWEEP (id, prefix or 'latest').")
@click.option("--json", "as_json", is_flag=True, help="Print the sweep JSON (steps, knee, max_goodput).")
@click.option("--local", "use_local", is_flag=True,
              help="Start the real local model (llama.cpp) and add local/gemma3-270m.")
@db_option
@origin_option
@api_options
def sweep_cmd(suite: str | None, concurrency: str | None, rate: str | None, requests_per_step: int | None,
              duration_s: float | None, slos: tuple[str, ...], stop_at_knee: bool, models: tuple[str, ...],
              providers: tuple[str, ...], budget: str | None, timeout_s: float, no_warmup: bool, seed: int,
              resume: str | None, as_json: bool, use_local: bool, db_path: str | None,
              base_url: str | None, sandbox: bool) -> None:
    """Run SUITE at each load level (one run per step); report throughput, latency, goodput and the knee."""
    opts = None if resume else _options(  # bad flags fail before anything starts
        suite, concurrency, rate, requests_per_step, duration_s, slos, stop_at_knee, models, providers,
        budget, timeout_s, no_warmup, seed)
    with api_settings(base_url, sandbox, db_path) as settings:
        store = Store(settings.db_path)
        if opts is None:
            assert resume is not None
            store.init()
            found = store.get_sweep(resume)
            sweep_id, opts = found["sweep_id"], SweepOptions(**found["settings"]["options"])
            if budget is not None:
                opts.budget_usd = budget
            store.update_sweep(sweep_id, "running")
        else:
            store.init()
            sweep_id = "sweep-" + new_run_id()
            store.create_sweep(sweep_id, suite_path=opts.suite_path, axis=opts.axis, levels=opts.levels,
                               settings={"options": dataclasses.asdict(opts), "slos": opts.slos})
        note(f"sweep {sweep_id}: {opts.axis} {', '.join(f'{v:g}' for v in opts.levels)}")
        try:
            status = asyncio.run(_sweep(settings, store, opts, sweep_id, use_local))
        except BaseException:
            store.update_sweep(sweep_id, "failed", "the sweep crashed; resume with --resume")
            raise
    reason = {"stopped": "the next step's worst case exceeds what is left of --budget",
              "cancelled": f"cancelled; continue it with: orbench sweep --resume {sweep_id}"}.get(status)
    store.update_sweep(sweep_id, status, reason)
    _report(store, sweep_id, as_json)
    if status == "cancelled":
        note(f"sweep {sweep_id} cancelled; continue it with: orbench sweep --resume {sweep_id}")
        sys.exit(130)
    if status not in ("finished", "stopped"):
        raise ConfigError(f"sweep {sweep_id} {status}; resume it with: orbench sweep --resume {sweep_id}")


def _report(store: Store, sweep_id: str, as_json: bool) -> None:
    result = sweep.sweep_json(store, sweep_id)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    click.echo(_table(result))
    for line in sweep.summary_lines(result):
        click.echo(line)


def _options(suite: str | None, concurrency: str | None, rate_levels: str | None,
             requests_per_step: int | None, duration_s: float | None, slos: tuple[str, ...],
             stop_at_knee: bool, models: tuple[str, ...], providers: tuple[str, ...], budget: str | None,
             timeout_s: float, no_warmup: bool, seed: int) -> SweepOptions:
    """Validate the flags into SweepOptions (one line per mistake, naming the flag)."""
    if not suite:
        raise click.UsageError("give a SUITE file, or --resume SWEEP")
    if not Path(suite).is_file():
        raise ConfigError(f"{suite}: no such suite file")
    if requests_per_step is not None and duration_s is not None:
        raise ConfigError("use either --requests-per-step or --duration-per-step, not both")
    if timeout_s <= 0:
        raise ConfigError("--timeout must be positive")
    parse_usd(budget, "--budget")
    for s in slos:
        sweep.parse_slo(s)
    cap = DEFAULT_RATE_CONCURRENCY
    if rate_levels is not None:
        axis, levels = "rate", sweep.parse_levels(rate_levels, "--rate", integer=False)
        if concurrency is not None:
            caps = sweep.parse_levels(concurrency, "--concurrency", integer=True)
            if len(caps) != 1:
                raise ConfigError("--concurrency with --rate is the in-flight cap: give one number")
            cap = int(caps[0])
    elif concurrency is not None:
        axis, levels = "concurrency", sweep.parse_levels(concurrency, "--concurrency", integer=True)
    else:
        raise ConfigError("give the load levels: --concurrency 1,2,4,... or --rate 1,2,4,...")
    return SweepOptions(suite_path=str(Path(suite).resolve()), axis=axis, levels=levels, slos=list(slos),
                        requests_per_step=requests_per_step, duration_per_step_s=duration_s,
                        stop_at_knee=stop_at_knee, models=list(models), providers=list(providers),
                        budget_usd=budget, timeout_s=timeout_s, concurrency_cap=cap, seed=seed,
                        warmup=not no_warmup)

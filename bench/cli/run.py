"""``orbench run``: plan, estimate, guard the budget, execute, summarise, gate."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from bench.api import keys
from bench.cli.common import (
    EXIT_GATE,
    api_options,
    api_settings,
    db_option,
    note,
    note_gates,
    origin_option,
    output_options,
)
from bench.cli.results import emit_summary
from bench.config import Settings, parse_usd
from bench.errors import ConfigError
from bench.results import gates, report, summary
from bench.results.render import Output, emit, usd
from bench.run import conversation, session, synthetic
from bench.run.runner import Runner
from bench.run.session import SessionHooks, SessionResult
from bench.run.spec import Prepared, RunSpec
from bench.run.state import Progress
from bench.store.store import Store
from bench.store.team import hooks as team_hooks
from bench.suites.model import OPENROUTER, Suite
from bench.suites.parse import load_suite


def _verify_suite(store: Store, resume: str) -> Any:
    """A verify's suite is built in code, not read from a file: rebuild it from the run's settings."""
    if not store.path.exists():
        return None
    run = store.get_run(store.resolve_run(resume))
    meta = (run.settings or {}).get("verify") if run is not None else None
    if not meta:
        return None
    from bench.run import verify

    return verify.rebuild_suite(meta)


class ProgressPrinter:
    """Progress with req/s and an ETA: redrawn in place on a terminal (at most ten times a
    second), else one line at most every ``every_s`` seconds (a CI log stays short), plus
    the final line."""

    def __init__(self, stream: Any = None, every_s: float = 10.0, clock: Any = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = 0.1 if self.tty else every_s
        self.clock = clock
        self._t0: float | None = None
        self._last: float | None = None
        self._finished = False

    def __call__(self, p: Progress) -> None:
        now = self.clock()
        if self._t0 is None:
            self._t0 = now
        final = p.done >= p.total
        if self._finished or (not final and self._last is not None and now - self._last < self.every_s):
            return
        self._last, self._finished = now, final
        text = progress_text(p, now - self._t0)
        if self.tty:
            bar = "#" * int((p.done / p.total if p.total else 1.0) * 24)
            self.stream.write(f"\r[{bar:<24}] {text}\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(f"progress: {text}\n")
        self.stream.flush()


def progress_text(p: Progress, elapsed_s: float) -> str:
    """'8/15 done, 3 in flight, 0 errors (0 rate-limited), 2.1 req/s, ETA 0:03, spent $0.00064'."""
    rate = p.done / elapsed_s if elapsed_s > 0 else 0.0
    if p.done >= p.total:
        eta = f"took {_clock(elapsed_s)}"
    else:
        eta = f"ETA {_clock((p.total - p.done) / rate)}" if rate > 0 else "ETA --:--"
    return (f"{p.done}/{p.total} done, {p.in_flight} in flight, {p.errors} errors "
            f"({p.rate_limited} rate-limited), {rate:.1f} req/s, {eta}, spent {usd(p.spent_usd)}")


def _clock(seconds: float) -> str:
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


def _connections_line(prep: Prepared) -> str:
    if prep.spec.cold_connections:
        return ("connections: cold (--cold-connections): each connection is opened by its first measured "
                "request, whose TTFT includes the connect (flagged conn_reused = false)")
    return (f"connections: {prep.spec.concurrency} per endpoint opened before the measured phase "
            "(TCP/TLS only, nothing sent or billed), warm-up request or not")


def _plan_text(prep: Prepared, settings: Settings | None = None,
               env: dict[str, str] | None = None) -> str:
    lines = [f"suite {prep.suite.name!r}: {len(prep.targets)} targets x "
             f"{len({p.case_id for p in prep.plan if not p.is_probe})} cases x {prep.suite.repeats} repeats = "
             f"{prep.measured} requests (+{len(prep.plan) - prep.measured} warm-up)"]
    for t in prep.targets:
        lines.append(f"  {t.model} [{t.variant}] via {t.endpoint}")
    lines.extend(synthetic.plan_lines(prep.plan))
    lines.extend(conversation.plan_lines(prep.plan, prep.suite.cache))
    if prep.estimate_usd is not None:
        lines.append(f"estimated worst case (an upper bound for any tokenizer, at list price): "
                     f"${prep.estimate_usd:.6f}")
    elif prep.run_id is None:
        lines.append(f"estimated worst case: unknown (no price for {', '.join(prep.unpriced)})")
    lines.extend(prep.bound_lines)
    lines.append(_connections_line(prep))
    lines.extend(f"resume: {n}" for n in prep.in_flight_booked)
    if settings is not None:
        # Which variable's value goes to which URL (names only, never a key character).
        used = {t.endpoint for t in prep.targets} | ({OPENROUTER} if prep.suite.judge_models else set())
        lines += ["  " + line for line in keys.plan_lines(settings.base_url, prep.suite.endpoints,
                                                           env if env is not None else {}, used)]
        if not prep.openrouter_api and OPENROUTER in used:
            lines.append(f"  {settings.base_url} is an OpenAI-compatible server (no OpenRouter prices "
                         "in its /models): usage from the stream, no key/credits/generation calls")
        lines.extend(team_hooks.plan_lines(settings))
    return "\n".join(lines)


async def _run(settings: Settings, suite: Suite | None, spec: RunSpec, store: Store, resume: str | None,
               dry_run: bool, use_local: bool, printer: ProgressPrinter | None) -> SessionResult:
    loop = asyncio.get_running_loop()

    def show_plan(prep: Prepared) -> None:
        note(_plan_text(prep, settings, dict(os.environ)))
        if prep.suite.repeats > 1 and any(not p.synthetic for p in prep.plan if not p.is_warmup) \
                or any(p.is_warmup and not p.is_probe for p in prep.plan):
            # METRICS.md "Benchmark hygiene": no response-caching header is ever sent, but
            # providers may reuse a prompt prefix they saw a moment ago.
            note("note: the same prompts are sent more than once (repeats/warm-up); providers with prefix "
                 "caching may answer later ones faster (cached_tokens in the rows shows when they did)")
        if prep.suite_changed:
            note(f"note: {prep.suite.path} changed since the run started; the stored plan is resent "
                 "as it was, and the new file's checks score the answers")

    def hook(runner: Runner) -> None:
        try:
            loop.add_signal_handler(signal.SIGINT, runner.cancel)
            loop.add_signal_handler(signal.SIGTERM, runner.cancel)
        except (NotImplementedError, RuntimeError):
            pass

    hooks = SessionHooks(on_plan=show_plan, on_progress=printer, on_runner=hook, note=note)
    try:
        result = await session.run_suite(settings, suite, spec, store=store, env=os.environ, resume=resume,
                                         dry_run=dry_run, with_local=use_local, hooks=hooks)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
    if dry_run:
        note("dry run: nothing was sent")
    return result


@click.command("run")
@click.argument("suite", required=False, type=click.Path(dir_okay=False))
@click.option("--model", "-m", "models", multiple=True, help="Model id (repeatable); overrides the suite.")
@click.option("--provider", "-p", "providers", multiple=True,
              help="Provider variant name from the suite, or a JSON provider object (repeatable).")
@click.option("--repeat", "repeats", type=int, default=None, help="Repeats per case (overrides the suite).")
@click.option("--concurrency", "-c", type=int, default=4, show_default=True, help="Requests in flight.")
@click.option("--rate", type=float, default=None, help="Open loop: Poisson arrivals per second.")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True,
              help="Per-request timeout, seconds.")
@click.option("--no-warmup", is_flag=True, help="Skip the warm-up request per model x provider.")
@click.option("--cold-connections", is_flag=True,
              help="Measure cold starts: do not open connections before the measured phase.")
@click.option("--budget", default=None, help="USD ceiling for the whole run.")
@click.option("--allow-partial", is_flag=True, help="Start even if the worst case exceeds --budget.")
@click.option("--dry-run", is_flag=True, help="Print the plan and the estimate; send nothing.")
@click.option("--resume", default=None, metavar="RUN", help="Resume RUN (id, prefix or 'latest').")
@click.option("--lookup-generation", is_flag=True, help="Fill provider and server latency from /generation.")
@click.option("--max-failures", type=int, default=5, show_default=True,
              help="Skip a model x provider after this many failures in a row (0 = never).")
@click.option("--fail-on", "fail_on", multiple=True, help="CI gate, e.g. 'ttft_p95_ms>1500' (repeatable).")
@click.option("--junit", type=click.Path(dir_okay=False), default=None,
              help="Write JUnit XML: a testcase per case x model x provider, and one per gate and group.")
@click.option("--summary-md", type=click.Path(dir_okay=False), default=None, help="Write a Markdown summary.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for arrivals and bootstraps.")
@click.option("--name", default=None, help="A name for the run.")
@output_options  # --json: the run's summary object (with run_id); --csv/--nl: one row per group
@click.option("--local", "use_local", is_flag=True,
              help="Start the real local model (llama.cpp, Gemma 3 270M) and add local/gemma3-270m.")
@click.option("--local-ctx-size", type=click.IntRange(256, 32768), default=4096, show_default=True,
              help="With --local: the model server's context size in tokens (llama-server -c).")
@db_option
@origin_option
@api_options
def run_cmd(suite: str | None, models: tuple[str, ...], providers: tuple[str, ...],
            repeats: int | None, concurrency: int, rate: float | None, timeout_s: float,
            no_warmup: bool, cold_connections: bool, budget: str | None, allow_partial: bool, dry_run: bool,
            resume: str | None, lookup_generation: bool, max_failures: int,
            fail_on: tuple[str, ...], junit: str | None, summary_md: str | None, seed: int,
            name: str | None, output: Output, use_local: bool, local_ctx_size: int, db_path: str | None,
            base_url: str | None, sandbox: bool) -> None:
    """Run SUITE across models x providers x cases x repeats and store every request."""
    if not suite and not resume:
        raise click.UsageError("give a SUITE file, or --resume RUN")
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if rate is not None and rate <= 0:
        raise ConfigError("--rate must be positive")
    if timeout_s <= 0:
        raise ConfigError("--timeout must be positive")
    gate_list = [gates.parse_gate(g) for g in fail_on]
    spec = RunSpec(
        suite_path=Path(suite) if suite else None, models=list(models),
        providers=list(providers), repeats=repeats, concurrency=concurrency, rate=rate,
        timeout_s=timeout_s, stall_timeout_s=min(60.0, timeout_s), warmup=not no_warmup,
        cold_connections=cold_connections, budget_usd=parse_usd(budget, "--budget"), allow_partial=allow_partial,
        lookup_generation=lookup_generation, max_consecutive_failures=max_failures,
        seed=seed, name=name, local_ctx_size=local_ctx_size,
    )
    if suite and not Path(suite).is_file():
        raise ConfigError(f"{suite}: no such suite file")
    with api_settings(base_url, sandbox, db_path) as settings:
        suite_value = None if resume else load_suite(Path(suite or "."))  # a resume runs the stored plan
        store = Store(settings.db_path)
        if resume:  # a verify's suite was built in code: the resume rebuilds it from the run's settings
            suite_value = _verify_suite(store, resume)
        result = asyncio.run(_run(settings, suite_value, spec, store, resume, dry_run, use_local,
                                  ProgressPrinter()))
    run_id = result.run_id
    if run_id is None:
        return
    groups = summary.run_summary(store, run_id)
    results = gates.evaluate(gate_list, groups)
    run = store.get_run(run_id)
    assert run is not None  # _run created it, and runs are never deleted
    if output.fmt == "table":
        emit_summary(groups, run, output.wide)
    gates_failed = note_gates(results)
    for line in team_hooks.unpushed_lines(settings, store, run_id):  # the server was down at the end
        note(line)
    if junit:
        cases = gates.case_results(report.current_rows(store.requests_frame(run_id)))
        Path(junit).write_text(gates.junit_xml(results, run["suite_name"] or "orbench", cases))
    if summary_md:
        Path(summary_md).write_text(report.summary_markdown(groups, run) + "\n" +
                                    gates.results_markdown(results))
    if output.fmt == "json":
        click.echo(json.dumps(report.summary_json(groups, run, results), indent=2,
                              default=str))
    elif output.fmt != "table":
        emit([dict(r, run_id=run_id) for r in groups], [], output)
    if run["status"] in ("failed", "stopped"):
        raise ConfigError(f"run {run_id} {run['status']}: {run['status_reason']}")
    if run["status"] == "cancelled":
        note(f"run {run_id} cancelled; continue it with: orbench run --resume {run_id}")
        sys.exit(130)
    if gates_failed:
        sys.exit(EXIT_GATE)

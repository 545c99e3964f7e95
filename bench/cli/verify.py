"""``orbench verify``: does each provider serve MODEL faithfully? A CI gate (exit 3 on a deviation)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from bench.cli.common import EXIT_GATE, api_options, api_settings, db_option, note, origin_option
from bench.cli.run import ProgressPrinter
from bench.config import parse_usd
from bench.errors import ConfigError
from bench.results import conformance
from bench.run import verify as verify_mod
from bench.run.spec import Prepared
from bench.store.store import Store
from bench.store.team import hooks as team_hooks

SANDBOX_TIME_SCALE = 0.02  # the demo's simulated providers answer 50x faster than their real timing


@click.command("verify")
@click.argument("model")
@click.option("--providers", default="all", show_default=True,
              help="'all' of MODEL's providers, or NAME,NAME... (provider tags, as `orbench endpoints` lists).")
@click.option("--reference", default=None,
              help="The provider the others are compared with (default: the model author's own, else the "
                   "one whose answers agree most with the others).")
@click.option("--endpoint", "endpoints", multiple=True, metavar="NAME=URL",
              help="Add an OpenAI-compatible server of the same model (vLLM, llama.cpp) to verify (repeatable).")
@click.option("--requests", "requests", type=int, default=None,
              help="About N requests per provider (default: the built-in probe set, about 380).")
@click.option("--suite", "suite_file", type=click.Path(dir_okay=False), default=None,
              help="A suite file whose cases are added as accuracy probes.")
@click.option("--budget", default=None, help="USD ceiling for the whole verify (a hard stop).")
@click.option("--dry-run", is_flag=True, help="Print the requests and the worst case per provider; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON to stdout.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None,
              help="Write JUnit XML: one testcase per provider x dimension.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstraps (and of --sandbox).")
@click.option("--concurrency", "-c", type=int, default=8, show_default=True, help="Requests in flight.")
@db_option
@api_options
@origin_option
def verify_cmd(model: str, providers: str, reference: str | None, endpoints: tuple[str, ...],
               requests: int | None, suite_file: str | None, budget: str | None, dry_run: bool,
               as_json: bool, junit: str | None, seed: int, concurrency: int, db_path: str | None,
               base_url: str | None, sandbox: bool) -> None:
    """Check that each provider of MODEL serves it faithfully, against a reference provider."""
    if requests is not None and requests < 1:
        raise ConfigError("--requests must be at least 1")
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if suite_file is not None and not Path(suite_file).is_file():
        raise ConfigError(f"--suite {suite_file}: no such file")
    spec = verify_mod.VerifySpec(
        model=model,
        providers=None if providers.strip() in ("", "all") else [p.strip() for p in providers.split(",") if p.strip()],
        reference=reference, endpoints=dict(verify_mod.parse_endpoint_flag(e) for e in endpoints),
        requests=requests, suite_file=Path(suite_file) if suite_file else None,
        budget_usd=parse_usd(budget, "--budget"), seed=seed, concurrency=concurrency,
    )
    options = {"seed": seed, "time_scale": SANDBOX_TIME_SCALE}
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(api_settings(base_url, sandbox, db_path, sandbox_options=options))
        store = Store(settings.db_path)
        run_id = asyncio.run(_verify(settings, spec, store, dry_run))
    if run_id is None:
        return
    run = store.get_run(run_id)
    assert run is not None  # _verify created it
    if run.status in ("failed", "stopped"):
        raise ConfigError(f"verify run {run_id} {run.status}: {run.status_reason}")
    for line in team_hooks.unpushed_lines(settings, store, run_id):  # the team store was down at the end
        note(line)
    result = conformance.verify_run(store, run_id, seed=seed)
    _report(result, as_json)
    if junit:
        Path(junit).write_text(conformance.junit_xml(result), encoding="utf-8")
    if run.status == "cancelled":
        note(f"verify {run_id} cancelled; the verdicts above use the answers so far "
             f"(continue it with: orbench run --resume {run_id})")
        sys.exit(130)
    if result.deviates:
        sys.exit(EXIT_GATE)


async def _verify(settings: Any, spec: verify_mod.VerifySpec, store: Store, dry_run: bool) -> str | None:
    plan = await verify_mod.build_plan(settings, spec)

    def show(prep: Prepared) -> None:
        note("\n".join([*verify_mod.plan_lines(plan, prep), *team_hooks.plan_lines(settings)]))

    loop = asyncio.get_running_loop()

    def hook(runner: Any) -> None:  # Ctrl-C or SIGTERM: stop sending, keep every answer, resumable
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, runner.cancel)

    try:
        run_id, _ = await verify_mod.run_verify(settings, plan, store, dry_run=dry_run, show=show,
                                                on_progress=ProgressPrinter(), on_runner=hook)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    if run_id is None:
        note("dry run: nothing was sent")
    return run_id


def _report(result: conformance.VerifyResult, as_json: bool) -> None:
    note(f"reference: {result.reference} ({result.reference_reason}); {result.tests} tests, each at "
         f"{100 * result.level:.2f}% (Bonferroni: at most a 5% chance of any false 'deviates' in this verify)")
    for p in result.providers:
        if p.served_by_other:
            note(f"  {p.provider}: {p.served_by_other} answer(s) served by another provider, left out")
        for d in conformance.DIMENSIONS:
            dim = p.dimensions[d]
            if dim.verdict in ("deviates", "uncertain"):
                more = f" ({dim.more_requests_needed} more requests would settle it)" \
                    if dim.more_requests_needed else ""
                note(f"  {p.provider} {d}: {dim.verdict}{more}: {dim.detail.split(' | ')[0]}")
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(conformance.matrix_text(result))

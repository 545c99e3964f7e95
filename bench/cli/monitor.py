"""``orbench monitor SUITE --every 30m``, ``orbench monitor tick SUITE|NAME`` and ``orbench trends``.

``monitor`` is a click group whose default command is the long-running scheduler: a first
argument that is not a subcommand (``tick``) is the SUITE of ``monitor SUITE ...``. Each tick is
an ordinary run (bench.monitor.tick); the state (next tick, open incidents) lives in the database.
``monitor tick`` runs one tick now and exits 3 when an incident opened (cron, systemd timers,
GitHub Actions ``schedule:``). The alert webhook URL is a secret: it is taken from the flag or
ORBENCH_ALERT_WEBHOOK, used, and never stored or printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import polars as pl

from bench.cli.common import EXIT_GATE, api_options, api_settings, db_option, note, origin_option, team_options
from bench.cli.run import ProgressPrinter
from bench.config import parse_usd
from bench.errors import ConfigError
from bench.monitor.tick import MonitorConfig, TickResult, resolve, run_tick
from bench.results import trends
from bench.results.render import Output, emit
from bench.store.store import Store

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, flag: str) -> float:
    """'30m', '1s', '2h', '7d' or plain seconds -> seconds; ConfigError naming the flag."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if m is None or float(m.group(1)) <= 0:
        raise ConfigError(f"{flag} {text!r}: expected a duration such as 30s, 30m, 2h or 7d")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def parse_until(text: str) -> datetime:
    """--until: an ISO time (UTC when it has no zone) or a duration from now."""
    try:
        return datetime.now(UTC) + timedelta(seconds=parse_duration(text, "--until"))
    except ConfigError:
        pass
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--until {text!r}: expected an ISO time (2026-12-31T18:00) or a duration (8h)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class MonitorGroup(click.Group):
    """``monitor SUITE ...`` and ``monitor tick ...`` side by side: anything that is not a
    subcommand goes to the default command ``start``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


def tick_options(f: Any) -> Any:
    """What a tick runs with: run's options, the monitor's name, its daily budget and alerts."""
    options = [
        click.option("--name", default=None, help="The monitor's name (default: the suite file's name)."),
        click.option("--budget-per-day", "budget_per_day", default=None,
                     help="USD per 24 h; a tick whose worst case would exceed it is skipped (with a row)."),
        click.option("--alert-webhook", "webhook", default=None, envvar="ORBENCH_ALERT_WEBHOOK",
                     help="POST incidents here (Slack/Discord/Teams); also ORBENCH_ALERT_WEBHOOK. Never stored."),
        click.option("--model", "-m", "models", multiple=True, help="Model id (repeatable); overrides the suite."),
        click.option("--provider", "-p", "providers", multiple=True,
                     help="Provider variant name from the suite, or a JSON provider object (repeatable)."),
        click.option("--repeat", "repeats", type=int, default=None, help="Repeats per case (overrides the suite)."),
        click.option("--concurrency", "-c", type=click.IntRange(min=1), default=4, show_default=True,
                     help="Requests in flight."),
        click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=120.0,
                     show_default=True, help="Per-request timeout, seconds."),
        click.option("--no-warmup", is_flag=True, help="Skip the warm-up request per model x provider."),
        click.option("--max-failures", type=int, default=5, show_default=True,
                     help="Skip a model x provider after this many failures in a row (0 = never)."),
        click.option("--window", "window", type=click.IntRange(min=1), default=3, show_default=True,
                     help="Latest window, in ticks: longer = fewer false alarms, later detection."),
        click.option("--min-effect", "min_effect", type=click.FloatRange(min=0), default=0.2, show_default=True,
                     help="A latency incident needs the p50 this much worse (0.2 = 20%%) as well as beyond the noise."),
        click.option("--outage-error-rate", "outage_error_rate", type=click.FloatRange(0, 1), default=0.5,
                     show_default=True,
                     help="An outage: the error rate over the window (and the latest tick) above this."),
        db_option, api_options, origin_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _config(suite: str, name: str | None, every_s: float, jitter: float, budget_per_day: str | None,
            kw: dict[str, Any]) -> MonitorConfig:
    if not Path(suite).is_file():
        raise ConfigError(f"{suite}: no such suite file")
    if not 0 <= jitter < 1:
        raise ConfigError("--jitter must be at least 0 and below 1")
    options = {"models": list(kw["models"]), "providers": list(kw["providers"]), "repeats": kw["repeats"],
               "concurrency": kw["concurrency"], "timeout_s": kw["timeout_s"], "warmup": not kw["no_warmup"],
               "max_failures": kw["max_failures"],
               "rules": {"latest_ticks": kw["window"], "outage_ticks": kw["window"], "latency_effect": kw["min_effect"],
                         "outage_error_rate": kw["outage_error_rate"]}}
    return MonitorConfig(name=name or Path(suite).stem, suite_path=str(Path(suite).resolve()), every_s=every_s,
                         jitter=jitter, budget_per_day_usd=parse_usd(budget_per_day, "--budget-per-day"),
                         options=options)


def _report(result: TickResult, name: str) -> None:
    opened, recovered = len(result.opened), len(result.recovered)
    note(f"monitor {name}: tick {result.tick} {result.status}"
         + (f" (run {result.run_id})" if result.run_id else "")
         + (f": {result.note}" if result.note else "")
         + f"; {opened} incident(s) opened, {recovered} recovered")


@click.group("monitor", cls=MonitorGroup)
def monitor_group() -> None:
    """Probe SUITE on a schedule: orbench monitor SUITE --every 30m, or orbench monitor tick SUITE|NAME.

    Each tick is an ordinary run tagged with the monitor's name; latency, outage, quality, catalog
    and routing incidents open and recover with their evidence (see orbench trends)."""


@monitor_group.command("start", hidden=True)
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--every", "every", required=True, help="Period between ticks, e.g. 30m, 1h, 1s.")
@click.option("--jitter", type=float, default=0.2, show_default=True,
              help="Move each tick by up to this share of the period (spreads load).")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop once the monitor has this many ticks in all (a restart continues the count).")
@click.option("--until", "until", default=None, help="Stop at this time (ISO, UTC) or after this duration (8h).")
@tick_options
def start_cmd(suite: str, every: str, jitter: float, count: int | None, until: str | None, name: str | None,
              budget_per_day: str | None, webhook: str | None, db_path: str | None, base_url: str | None,
              sandbox: bool, **kw: Any) -> None:
    """Probe SUITE every --every in one long process (state in the database: a restart continues)."""
    cfg = _config(suite, name, parse_duration(every, "--every"), jitter, budget_per_day, kw)
    stop_at = parse_until(until) if until else None
    with api_settings(base_url, sandbox, db_path) as settings:
        store = Store(settings.db_path)
        store.init()
        cfg.save(store)
        note(f"monitor {cfg.name}: {Path(cfg.suite_path).name} every {every}, state in {settings.db_path}")
        while True:
            ticks = store.monitor_ticks(cfg.name)
            done = ticks.filter(pl.col("status") != "running").height if not ticks.is_empty() else 0
            if count is not None and done >= count:
                note(f"monitor {cfg.name}: {done} ticks, --count {count} reached")
                return
            if not _wait_due(store, cfg.name, stop_at):
                note(f"monitor {cfg.name}: --until reached")
                return
            result = asyncio.run(run_tick(settings, store, cfg, env=dict(os.environ), webhook_url=webhook,
                                          note=note, on_progress=ProgressPrinter(every_s=60.0)))
            _report(result, cfg.name)
            if result.status == "cancelled":
                sys.exit(130)


def _wait_due(store: Store, name: str, stop_at: datetime | None) -> bool:
    """Sleep until the next tick is due (now for a running or first tick); False if --until comes first."""
    last = store.last_tick(name)
    row = store.get_monitor(name)
    due = None if row is None or (last is not None and last["status"] == "running") else row["next_tick_at"]
    while True:
        now = datetime.now(UTC)
        if stop_at is not None and now >= stop_at:
            return False
        if due is None or now >= due:
            return True
        left = (due - now).total_seconds()
        if stop_at is not None:
            left = min(left, max(0.0, (stop_at - now).total_seconds()))
        time.sleep(min(left, 1.0) + 0.001)


@monitor_group.command("tick")
@click.argument("target", metavar="SUITE|NAME")
@click.option("--every", "every", default="30m", show_default=True,
              help="The period recorded for a new monitor (sets when the next tick is due).")
@tick_options
def tick_cmd(target: str, every: str, name: str | None, budget_per_day: str | None, webhook: str | None,
             db_path: str | None, base_url: str | None, sandbox: bool, **kw: Any) -> None:
    """Run one tick of a monitor now, then the alert check; exit 3 when an incident opened."""
    with api_settings(base_url, sandbox, db_path) as settings:
        store = Store(settings.db_path)
        try:
            cfg = resolve(store, target, name)
            if Path(target).is_file():  # flags given with a suite file update the stored monitor
                cfg = _config(target, cfg.name, cfg.every_s, cfg.jitter, budget_per_day, kw)
        except ConfigError:
            if not Path(target).is_file():
                raise
            cfg = _config(target, name, parse_duration(every, "--every"), 0.0, budget_per_day, kw)
        cfg.save(store)
        result = asyncio.run(run_tick(settings, store, cfg, env=dict(os.environ), webhook_url=webhook, note=note,
                                      on_progress=ProgressPrinter(every_s=60.0)))
    _report(result, cfg.name)
    if result.status == "cancelled":
        sys.exit(130)
    if result.opened:
        sys.exit(EXIT_GATE)


# ------------------------------------------------------------------- trends
@click.command("trends")
@click.option("--monitor", "monitor", default=None, help="The monitor (default: the only one in the database).")
@click.option("--since", default="7d", show_default=True, help="Incidents opened in this span (and any still open).")
@click.option("--json", "as_json", is_flag=True, help="Print the trends JSON (baseline, latest, changes, incidents).")
@team_options
@db_option
def trends_cmd(monitor: str | None, since: str, as_json: bool, db_path: str | None) -> None:
    """Latest window vs baseline per model x provider x metric, beyond the noise or not, and the incidents.

    With --team URL (or ORBENCH_TEAM_DB) the team's new entries are pulled first; a monitor run on
    this machine and pushed with --team is then current there too."""
    from bench.cli.results import open_store

    since_at = datetime.now(UTC) - timedelta(seconds=parse_duration(since, "--since"))
    store = open_store(db_path)
    names = store.list_monitors()["name"].to_list()
    if monitor is None:
        if len(names) != 1:
            raise ConfigError("--monitor: " + (f"choose one of {', '.join(names)}" if names
                                               else f"no monitor in {store.path}"))
        monitor = names[0]
    elif monitor not in names:
        origins = store.query("SELECT DISTINCT origin FROM runs WHERE monitor = $m ORDER BY origin",
                              {"m": monitor})["origin"].to_list()
        if origins:  # pulled from the team store: its incidents live with the machine that runs it
            raise ConfigError(f"--monitor {monitor!r}: runs on another machine (origin "
                              f"{', '.join(map(str, origins))}); its windows and incidents are reported there, "
                              "and the dashboard's Trends page shows its ticks per origin")
        raise ConfigError(f"--monitor {monitor!r}: no such monitor in {store.path}")
    result = trends.trends_json(store, monitor, since=since_at)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    _print_trends(result)


def _print_trends(result: dict[str, Any]) -> None:
    latest, baseline = result["latest"], result["baseline"]
    click.echo(f"monitor {result['monitor']}: latest ticks {latest['ticks'] if latest else '-'} "
               f"vs baseline ticks {baseline['ticks'] if baseline else '-'}")
    rows = [{**c, "change": None if c["change"] is None else round(float(c["change"]), 4)}
            for c in result["changes"]]
    emit(rows, ["model", "provider", "metric", "baseline", "latest", "change", "beyond_noise"], Output("table"))
    click.echo(f"incidents: {len(result['incidents'])}")
    for inc in result["incidents"]:
        state = f"recovered at tick {inc['recovered_tick']}" if inc["recovered_tick"] else "OPEN"
        click.echo(f"  {inc['kind']:<8} {inc['model']} [{inc['provider']}] {inc['metric']}: "
                   f"opened at tick {inc['opened_tick']}, {state}")


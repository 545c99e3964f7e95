"""CLI commands over stored results: runs, show, compare, export, dashboard."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from bench.cli.common import (
    EXIT_GATE,
    db_option,
    note,
    note_gates,
    origin_filter,
    origin_filter_option,
    output_options,
    team_options,
    team_overrides,
    wide_option,
)
from bench.config import Settings
from bench.errors import ConfigError
from bench.results import compare, export, report
from bench.results.render import (
    Column,
    Output,
    emit,
    hidden_note,
    integer,
    num,
    pct,
    rate,
    terminal_width,
    usd,
    when,
)
from bench.results.summary import run_summary
from bench.store.runs import RunRecord
from bench.store.store import Store
from bench.store.team import hooks as team_hooks


def open_store(db_path: str | None, pull: bool = True) -> Store:
    """The store a read command reads; with --team / ORBENCH_TEAM_DB, the team's new entries are
    pulled into it first (``pull=False``: a command that writes, which pushes instead)."""
    settings = Settings.from_env(db_path=db_path, **team_overrides())
    team = team_hooks.team_of(settings)
    if team is not None and pull:
        from bench.store.team.pull import pull as pull_team
        from bench.store.team.schema import TeamUnreachable

        try:
            res = pull_team(Store(settings.db_path), team, on_skip=note)
            note(f"team: pulled {res.entries} new entries from {team.redacted}")
        except TeamUnreachable as exc:  # say so, then read what the cache holds
            note(f"team: NOT pulled, showing the local cache as last synced ({exc})")
    if not Path(settings.db_path).exists():
        raise ConfigError(f"{settings.db_path}: no database yet; run `orbench run SUITE` first")
    return Store(settings.db_path)


def emit_summary(groups: Sequence[Mapping[str, Any]], run: RunRecord, wide: bool = False) -> None:
    """The summary table on stdout, fitted to the terminal unless ``wide``; its notes on stderr."""
    text, hidden = report.summary_table(groups, run, None if wide else terminal_width())
    click.echo(text)
    for line in report.summary_notes(groups, run):
        note(line)
    if hidden:
        note(hidden_note(hidden, None if wide else terminal_width()))


TURN_COLUMNS = [
    Column("group", "model [provider]", priority=0, min_width=20, align="left"), Column("turn", priority=0),
    Column("n", fmt=integer, priority=1), Column("cache_hit_rate", "cache hits", rate, priority=1),
    Column("cost_usd_mean", "$/turn", usd, priority=2),
    Column("ttft_p50_cached_ms", "TTFT p50 cached", num, priority=1),
    Column("ttft_p50_uncached_ms", "TTFT p50 uncached", num, priority=1),
    Column("cached_tokens_mean", "cached tok (mean)", integer, priority=3),
]


def _emit_turns(store: Store, run_id: str, wide: bool) -> None:
    """A run with conversations: cache hits, cost and TTFT (cached vs uncached) by turn."""
    from bench.results import conversations

    turns = conversations.by_turn(conversations.turn_rows(store, [run_id]))
    if not turns:
        return
    rows = sorted((dict(t, group=f"{t['model']} [{t['provider_variant']}]",
                        cached_tokens_mean=None if t["cached_tokens_mean"] is None else round(t["cached_tokens_mean"]))
                   for t in turns), key=lambda r: (r["group"], r["turn"]))
    text, _ = report_fit(rows, TURN_COLUMNS, None if wide else terminal_width())
    click.echo("\nconversations by turn (ok turns)\n" + text)


def report_fit(rows: list[dict[str, Any]], columns: list[Column], width: int | None) -> tuple[str, list[str]]:
    from bench.results.render import fit_table

    return fit_table(rows, columns, width)


RUNS_COLUMNS = [
    Column("run_id", "run", priority=0), Column("name", priority=3, min_width=12),
    Column("status", priority=1), Column("origin", priority=4), Column("started_at", "started (UTC)", when, priority=2),
    Column("planned", fmt=integer, priority=4), Column("n_ok", "ok", integer, priority=5),
    Column("cost_usd", "cost", usd, priority=6), Column("simulated", priority=7),
    Column("status_reason", "why", priority=8, min_width=12),
]


@click.command("runs")
@team_options
@db_option
@output_options
def runs_cmd(db_path: str | None, output: Output) -> None:
    """List stored runs, newest first."""
    frame = open_store(db_path).list_runs()
    emit(frame.to_dicts(), RUNS_COLUMNS, output, fields=frame.columns)  # CSV keeps its header at 0 runs


@click.command("show")
@click.argument("run", default="latest")
@origin_filter_option
@team_options
@db_option
@output_options
@click.option("--exclude-cold", is_flag=True,
              help="Leave requests that opened a new connection out of the latency percentiles.")
def show_cmd(run: str, db_path: str | None, output: Output, exclude_cold: bool) -> None:
    """Per model x provider: n, errors, TTFT percentiles with 95% CI, TPOT, tokens, cost."""
    store = open_store(db_path)
    run_id = store.resolve_run(run, origin_filter())
    groups = run_summary(store, run_id, exclude_cold)
    meta = store.get_run(run_id)
    assert meta is not None  # resolve_run found it, and runs are never deleted
    if output.fmt == "table":
        emit_summary(groups, meta, output.wide)
        _emit_turns(store, run_id, output.wide)
        return
    emit([dict(r, run_id=run_id) for r in groups], [], output)


COMPARE_FIELDS = compare.FIELDS
COMPARE_COLUMNS = [
    Column("group", "model [provider]", priority=0, min_width=20, align="left"),
    Column("metric", priority=0), Column("n_a", fmt=integer, priority=7), Column("n_b", fmt=integer, priority=7),
    Column("p50_a", "A p50", priority=1), Column("p50_b", "B p50", priority=1),
    Column("change", priority=3), Column("change_pct", "change %", pct, priority=2),
    Column("ci", "95% CI of change", priority=6), Column("verdict", priority=1),
]


def _compare_rows(a_id: str, b_id: str, store: Store, seed: int) -> list[dict[str, Any]]:
    rows = compare.compare_runs(store, a_id, b_id, seed=seed)
    if not rows:
        note("the two runs share no model x provider")
    return rows


def _compare_display(row: dict[str, Any]) -> dict[str, Any]:
    """One compare row as a person reads it: error rates as percentages, the CI as one cell."""
    f = rate if row["metric"] == "error rate" else num

    def signed(v: Any) -> str:
        return "" if v is None else ("+" if v > 0 else "") + f(v)

    ci = "" if row.get("ci_lo") is None else f"[{signed(row['ci_lo'])}, {signed(row['ci_hi'])}]"
    return dict(row, p50_a=f(row["p50_a"]), p50_b=f(row["p50_b"]), change=signed(row["change"]), ci=ci)


@click.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@origin_filter_option
@team_options
@db_option
@output_options
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
def compare_cmd(run_a: str, run_b: str, db_path: str | None, output: Output, seed: int) -> None:
    """Change per metric from RUN_A to RUN_B per model x provider, and whether it beats the noise."""
    store = open_store(db_path)
    rows = _compare_rows(store.resolve_run(run_a, origin_filter()), store.resolve_run(run_b, origin_filter()),
                         store, seed)
    emit(rows, COMPARE_COLUMNS, output, fields=COMPARE_FIELDS, table_rows=[_compare_display(r) for r in rows])


@click.command("export")
@click.argument("run", default="latest")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "json", "md"]), default="csv",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output file (default stdout; required for parquet). CSV/JSON/Markdown files get the "
                   "run's metadata in FILE.meta.json; Parquet carries it inside.")
@click.option("--summary", is_flag=True, help="Export the summary table instead of per-request rows.")
@click.option("--include-warmup", is_flag=True, help="Keep warm-up rows in per-request exports.")
@click.option("--csv-header", is_flag=True,
              help="Put the run's metadata above the CSV as '# key: value' lines (CSV only).")
@team_options
@db_option
def export_cmd(run: str, fmt: str, output: str | None, summary: bool, include_warmup: bool,
               csv_header: bool, db_path: str | None) -> None:
    """Write RUN's per-request rows (or --summary) as CSV, Parquet, JSON or Markdown, with its metadata."""
    if csv_header and fmt != "csv":
        raise ConfigError(f"--csv-header needs --format csv, not --format {fmt}")
    if fmt == "parquet" and output is None:
        raise ConfigError("--format parquet needs -o FILE")
    store = open_store(db_path)
    run_id = store.resolve_run(run)
    if summary:
        frame = export.summary_frame(run_summary(store, run_id))
    else:
        frame = export.request_frame(store.requests_frame(run_id), include_warmup)
    meta = export.run_metadata(store.get_run(run_id), kind="summary" if summary else "requests", fmt=fmt,
                               rows=frame.height, include_warmup=include_warmup)
    data = export.render(frame, fmt, meta, csv_header=csv_header)
    if output is None:
        sys.stdout.write(data if isinstance(data, str) else data.decode())
        return
    Path(output).write_bytes(data.encode() if isinstance(data, str) else data)
    sidecar = "" if fmt == "parquet" else f" (metadata in {export.write_sidecar(output, meta)})"
    note(f"wrote {frame.height} rows to {output}{sidecar}")


@click.command("dashboard")
@click.option("--port", type=int, default=8501, show_default=True)
@team_options
@db_option
def dashboard_cmd(port: int, db_path: str | None) -> None:
    """Start the Streamlit dashboard on 127.0.0.1."""
    import importlib.util

    spec = importlib.util.find_spec("dashboard")  # found, not imported: bench never imports the dashboard
    if spec is None or spec.origin is None:
        raise ConfigError("the dashboard package is not installed beside bench")
    here = Path(spec.origin).resolve().parent  # the installed package, or the checkout's folder
    env = dict(os.environ)
    if db_path:
        env["ORBENCH_DB"] = db_path
    team = team_hooks.team_of(Settings.from_env(**team_overrides()))  # checked here: one line, exit 1
    if team is not None:
        env["ORBENCH_TEAM_DB"] = team.url  # to the server process only (its environment, never a file)
        if team_overrides()["team_insecure"]:
            env["ORBENCH_TEAM_INSECURE"] = "1"
        note(f"dashboard: reading the team store {team.redacted} through {Settings.from_env(db_path=db_path).db_path}")
    cmd = [sys.executable, "-m", "streamlit", "run", str(here / "app.py"), *_streamlit_flags(here),
           "--server.address", "127.0.0.1", "--server.port", str(port)]
    note(f"dashboard: http://127.0.0.1:{port}")
    sys.stderr.flush()
    # Become the server (no child left behind when this process is stopped by its pid).
    os.execve(sys.executable, cmd, env)


def _streamlit_flags(here: Path) -> list[str]:
    """dashboard/streamlit_config.toml as ``--section.key value`` flags: the same settings from any folder
    (Streamlit itself reads only ./.streamlit/config.toml, which in a checkout links to that file)."""
    import tomllib

    config = tomllib.loads((here / "streamlit_config.toml").read_text(encoding="utf-8"))
    flags = []
    for section, values in config.items():
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{section}.{key}", text]
    return flags


@click.command("check")
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--run", "run_ref", default="latest", show_default=True, help="The stored run to re-score.")
@team_options
@db_option
@click.option("--base-url", default=None, help="API for judge checks (default OPENROUTER_BASE_URL).")
@click.option("--sandbox", is_flag=True, help="Send judge checks to the in-process sandbox.")
@click.option("--fail-on", "fail_on", multiple=True, help="Gate on the new scores, e.g. 'pass_rate<0.9'.")
@click.option("--json", "as_json", is_flag=True, help="Print the new summary as JSON.")
@wide_option
def check_cmd(suite: str, run_ref: str, db_path: str | None, base_url: str | None, sandbox: bool,
              fail_on: tuple[str, ...], as_json: bool, wide: bool) -> None:
    """Re-score RUN with SUITE's current checks; sends nothing to the benchmarked models."""
    import asyncio

    from bench.cli.common import api_settings
    from bench.results import gates
    from bench.run import rescore

    gate_list = [gates.parse_gate(g) for g in fail_on]
    store = open_store(db_path, pull=False)
    run_id = store.resolve_run(run_ref)
    with api_settings(base_url, sandbox, db_path) as settings:
        n = asyncio.run(rescore.rescore_run(settings, store, Path(suite), run_id))
    note(f"re-scored {n} requests of run {run_id}")
    failure = team_hooks.push_run(settings, store, run_id)  # the new scores to the team store, if any
    if failure:
        note(f"team store: not pushed yet ({failure}); `orbench team push` sends it later")
    groups = run_summary(store, run_id)
    results = gates.evaluate(gate_list, groups)
    meta = store.get_run(run_id)
    assert meta is not None  # resolve_run found it, and runs are never deleted
    if as_json:
        import json

        click.echo(json.dumps(report.summary_json(groups, meta, results), indent=2, default=str))
    else:
        emit_summary(groups, meta, wide)
    if note_gates(results):
        sys.exit(EXIT_GATE)

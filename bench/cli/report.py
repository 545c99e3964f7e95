"""``orbench report``: one self-contained HTML file of stored runs (see bench.results.html_report)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bench.cli.common import db_option, note, team_options
from bench.errors import ConfigError


@click.command("report")
@click.argument("runs", nargs=-1, required=True)
@click.option("--baseline", default=None, metavar="RUN",
              help="Mark each run's changes against this run (beyond the noise or not).")
@click.option("-o", "--output", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="The HTML file to write ('-' for stdout).")
@team_options
@db_option
def report_cmd(runs: tuple[str, ...], baseline: str | None, output: str, db_path: str | None) -> None:
    """Write RUN... as one self-contained HTML report that opens offline.

    Holds the runs' metadata, the summary with 95% intervals, the latency, cost and
    quality charts, the frontier, changes against --baseline and the failed answers.
    RUN is a run id, a unique prefix of one, or `latest`.
    """
    from bench.cli.results import open_store
    from bench.results import html_report

    store = open_store(db_path)
    run_ids = [store.resolve_run(r) for r in runs]
    base_id = store.resolve_run(baseline) if baseline else None
    page = html_report.build_report(store, run_ids, base_id)
    if output == "-":
        sys.stdout.write(page)
        return
    try:
        Path(output).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"-o {output}: cannot write: {exc.strerror or exc}") from None
    note(f"wrote {output} ({len(page.encode()) / 1e6:.2f} MB, runs {', '.join(run_ids)})")

"""``orbench demo``: the bundled demo suite on the simulated sandbox, then the decision it supports.

The same suite as the dashboard's one-click demo (``bench.examples.DEMO_SUITE``): three cheap
models x four checked cases x 10 repeats, about 30 s, so the summary has intervals, pass rates
and cost per correct answer; then ``decide`` with the demo's minimum pass rate, so the first
thing a new user reads is a verdict per model.
"""

from __future__ import annotations

import click

from bench.cli.common import db_option, note
from bench.examples import DEMO_CONCURRENCY, DEMO_MIN_PASS_RATE, DEMO_SUITE, SUITES_DIR


@click.command("demo")
@db_option
def demo_cmd(db_path: str | None) -> None:
    """Run the demo suite on the simulated sandbox (no key, no network, ~30 s), then decide."""
    from bench.cli.decide import decide_cmd
    from bench.cli.run import run_cmd

    ctx = click.get_current_context()
    ctx.invoke(run_cmd, suite=str(SUITES_DIR / DEMO_SUITE), sandbox=True, db_path=db_path,
               concurrency=DEMO_CONCURRENCY, name="demo (sandbox)")
    note(f"\ndecide: which model meets pass_rate >= {DEMO_MIN_PASS_RATE} at the lowest cost")
    db = f" --db {db_path}" if db_path else ""
    try:
        ctx.invoke(decide_cmd, runs=("latest",), mins=(f"pass_rate={DEMO_MIN_PASS_RATE}",), db_path=db_path)
    finally:
        note(f"\nexplore it: orbench dashboard{db} (the Decide page), or orbench show latest{db}")

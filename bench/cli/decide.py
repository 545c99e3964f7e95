"""``orbench decide``: which model x provider meets your limits, ranked by one objective.

The engine is ``bench.results.decide`` (the dashboard's Decide page calls the same function); this module
only parses flags, reads the runs and prints. Exit 0 when a candidate meets every constraint, 3 when
none does, so CI can gate on "some model still fits".
"""

from __future__ import annotations

import json
import sys

import click

from bench.cli.common import db_option, note, origin_filter, origin_filter_option, team_options
from bench.cli.results import open_store
from bench.results import decide
from bench.results.decide_render import decision_text

_METRICS = ", ".join(sorted(decide.GATE_METRICS))


@click.command("decide")
@click.argument("runs", nargs=-1, required=True)
@click.option("--min", "mins", multiple=True, metavar="METRIC=VALUE",
              help=f"A lower limit, e.g. pass_rate=0.9 (repeatable). METRIC: {_METRICS}.")
@click.option("--max", "maxs", multiple=True, metavar="METRIC=VALUE",
              help="An upper limit, e.g. ttft_p95_ms=1500 or cost_per_request_usd=0.001 (repeatable).")
@click.option("--objective", type=click.Choice(list(decide.OBJECTIVES)), default="cost", show_default=True,
              help="Rank by lowest cost_per_request_usd, lowest e2e_p50_ms, or highest pass_rate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed of the gap test.")
@click.option("--by-origin", is_flag=True,
              help="One candidate per model x provider x origin: the same model measured from two regions "
                   "side by side (JSON: an \"origin\" field on each).")
@origin_filter_option
@team_options
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def decide_cmd(runs: tuple[str, ...], mins: tuple[str, ...], maxs: tuple[str, ...], objective: str,
               seed: int, db_path: str | None, as_json: bool, by_origin: bool) -> None:
    """Rank every model x provider of RUN(s) against --min/--max limits and recommend one.

    Several runs are pooled per model x provider. Each limit is judged on the metric's 95% interval:
    meets, fails, or uncertain (with how many more requests would settle it). Exits 3 when nothing
    meets every limit.
    """
    constraints = decide.parse_constraints(mins, maxs)  # bad flags fail before the database is read
    store = open_store(db_path)
    run_ids = [store.resolve_run(r, origin_filter()) for r in runs]
    decision = decide.decide_runs(store, run_ids, constraints, objective, seed=seed, by_origin=by_origin)
    if as_json:
        click.echo(json.dumps(decision.to_dict(), indent=2))
    else:
        simulated = any(getattr(store.get_run(r), "simulated", False) for r in run_ids)
        click.echo(decision_text(decision, simulated))
    if decision.exit_code:
        note("nothing meets every constraint (exit 3)")
        sys.exit(decision.exit_code)

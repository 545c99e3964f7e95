#!/usr/bin/env python3
"""Time the Results page's server work on a big database (see scripts/seed_big_db.py).

Two views of the same thing, both with cold caches:

1. The page's data functions (``bench.results.analytics``) and chart building, one by
   one, for the default selection (the newest run) and for every run at once
   (all rows), with ``to_dict()`` standing in for Streamlit's serialization.
2. The whole Results page script under ``streamlit.testing.AppTest``: the wall
   time of one script run, first for the default selection, then after
   selecting every run in the Runs filter.
3. Run A vs run B (the Compare page's bootstrap over every ok value, ``bench.results.compare``)
   for the two newest runs, and the whole Compare page script (cold cache).

    .venv/bin/python scripts/seed_big_db.py data/big.duckdb
    .venv/bin/python scripts/bench_dashboard.py data/big.duckdb
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import analytics, compare, summary  # noqa: E402
from bench.store.store import Store  # noqa: E402
from dashboard import charts  # noqa: E402

Step = tuple[str, Callable[[], Any]]


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def results_steps(store: Store, run_ids: tuple[str, ...]) -> tuple[list[tuple[str, float]], int]:
    """Everything the Results page computes for ``run_ids``, timed step by step."""
    f = analytics.Filters(run_ids)
    times: list[tuple[str, float]] = []

    def step(name: str, fn: Callable[[], Any]) -> Any:
        dt, out = _timed(fn)
        times.append((name, dt))
        return out

    step("runs list", lambda: analytics.runs(store))
    step("filter options", lambda: analytics.filter_options(store, run_ids))
    records = step("group stats (counts, rates, money, quantiles)", lambda: summary.summarize(store, f))
    groups = summary.frame(records)
    step("percentile CIs (TTFT)", lambda: summary.add_cis(store, f, [dict(r) for r in records], "ttft_ms"))
    tl, total = step("timeline window (newest run)",
                     lambda: analytics.timeline(store, f, run_ids[0], 0, 2000))
    drift = step("drift bins (newest run)", lambda: analytics.drift(store, f, run_ids[0]))
    rows = int(groups["n"].sum()) if groups.height else 0

    def build() -> None:
        rates = analytics.rates(groups)
        for metric, label in (("ttft_ms", "TTFT"), ("e2e_ms", "e2e"), ("decode_tps", "tok/s")):
            charts.latency_with_errors(analytics.box_stats(groups, metric), rates, label, label).to_dict()
        charts.cost_chart(analytics.cost_frame(groups)).to_dict()
        charts.timeline_chart(tl, total).to_dict()
        charts.drift_chart(drift).to_dict()

    step("charts built + serialized (6)", build)
    if groups.height:
        times.append(("(percentiles " + ("sketched" if groups["sketched"][0] else "exact") + ")", 0.0))
    return times, rows


def page_script_times(db: Path, all_runs: list[str]) -> dict[str, float]:
    """Wall time of Results page script runs under AppTest (cold cache each)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["ORBENCH_DB"] = str(db)
    os.environ.setdefault("OPENROUTER_BASE_URL", "http://127.0.0.1:9/api/v1")  # never contacted here
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300)
    at.run()  # imports and first render (not counted)
    at.switch_page("app_pages/results.py").run()  # whichever page is the default
    out: dict[str, float] = {}
    st.cache_data.clear()
    dt, _ = _timed(at.run)
    out["Results page, newest run (cold cache)"] = dt
    dt, _ = _timed(at.run)
    out["Results page, newest run (warm cache)"] = dt
    st.cache_data.clear()
    dt, _ = _timed(lambda: at.multiselect(key="results-runs").set_value(all_runs).run())
    out[f"Results page, all {len(all_runs)} runs (cold cache)"] = dt
    if at.exception:
        raise SystemExit(f"the page raised: {at.exception[0].message}")
    return out


def compare_times(db: Path, store: Store, all_runs: list[str], page: bool) -> dict[str, float]:
    """Run A vs run B over every ok value (two newest runs), then the Compare page script (cold)."""
    out: dict[str, float] = {}
    if len(all_runs) < 2:
        return out
    dt, rows = _timed(lambda: compare.compare_runs(store, all_runs[1], all_runs[0], by="variant",
                                                   metrics=("ttft_ms", "e2e_ms"), error_rates=False))
    n = sum(r["n_a"] + r["n_b"] for r in rows)
    out[f"run A vs B, {len(rows)} comparisons over {n:,} values"] = dt
    if page:
        import streamlit as st
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300)
        at.run()
        at.switch_page("app_pages/compare.py").run()
        st.cache_data.clear()
        dt, _ = _timed(at.run)
        out["Compare page (cold cache)"] = dt
        if at.exception:
            raise SystemExit(f"the page raised: {at.exception[0].message}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", nargs="?", default="data/big.duckdb")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of the step timings (median shown)")
    ap.add_argument("--no-page", action="store_true", help="skip the AppTest page timing")
    ap.add_argument("--exact", action="store_true",
                    help="ignore the per-run aggregates: time the exact per-request queries")
    args = ap.parse_args(argv)
    db = Path(args.db)
    if not db.exists():
        raise SystemExit(f"{db}: no such database; run scripts/seed_big_db.py first")
    if args.exact:  # no selection is big enough for the aggregates (the page reads it too)
        analytics.aggregates.MIN_ROWS = 2**62
    store = Store(db)
    runs = store.list_runs()
    all_runs = runs["run_id"].to_list()
    total_rows = int(store.query("SELECT count(*) AS n FROM requests")["n"][0])
    print(f"database {db}: {total_rows:,} request rows in {len(all_runs)} runs; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    for label, ids in (("newest run", tuple(all_runs[:1])), ("all runs", tuple(all_runs))):
        samples: list[list[tuple[str, float]]] = []
        for _ in range(args.repeat):
            times, rows = results_steps(store, ids)
            samples.append(times)
        print(f"\nResults data + charts, {label} ({rows:,} rows), median of {args.repeat}:")
        totals = []
        for i, (name, _) in enumerate(samples[0]):
            med = statistics.median(s[i][1] for s in samples)
            print(f"  {name:48s} {med * 1000:8.0f} ms")
        totals = [sum(dt for _, dt in s) for s in samples]
        print(f"  {'total':48s} {statistics.median(totals) * 1000:8.0f} ms  (min {min(totals) * 1000:.0f})")
    if not args.no_page:
        print("\nWhole Results page script (AppTest, one run each):")
        for name, dt in page_script_times(db, all_runs).items():
            print(f"  {name:48s} {dt * 1000:8.0f} ms")
    print("\nRun A vs run B (bench.results.compare, every ok value, 2,000 resamples):")
    for name, dt in compare_times(db, store, all_runs, not args.no_page).items():
        print(f"  {name:48s} {dt * 1000:8.0f} ms")
    print(f"\nload average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

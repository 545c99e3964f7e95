#!/usr/bin/env python3
"""Time ``orbench trends`` and the Trends page over a monitor history (scripts/seed_monitor_history.py),
and the pages a monitor's many runs could slow down (Results: the run list), each cold: a new process
whose first page it is, and ("in a running dashboard") the first visit after the home page, data caches
still empty (the process has loaded Altair and pandas by then, see ``dashboard.ui.warm_once``).

    .venv/bin/python scripts/seed_monitor_history.py data/year.duckdb
    .venv/bin/python scripts/bench_trends.py data/year.duckdb
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = """
import os, sys, time
sys.path.insert(0, {root!r})
os.environ["ORBENCH_DB"] = {db!r}
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({app!r}, default_timeout=120)
for k, v in {params!r}.items():  # a link with the view in its URL
    at.query_params[k] = v
if {after_home!r}:  # a running dashboard: the link's session served its home page (Decide) first
    at.run()
    time.sleep(1.0)  # a user reads the home page before the click
at.switch_page({page!r})
t = time.perf_counter()
at.run()
took = time.perf_counter() - t
assert not at.exception, at.exception
assert at.radio(key="trends-since").value == {params!r}.get("since", "7d") if {page!r}.endswith("trends.py") else True
print(f"{{took:.3f}}")
"""


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _page(db: Path, page: str, params: dict[str, str], after_home: bool = False) -> tuple[float, float, float]:
    """(the page's script run, the whole new process, its CPU seconds), wall seconds. ``after_home``:
    the page is the second one the new process serves (its data caches still empty)."""
    code = PAGE.format(root=str(ROOT), db=str(db), app=str(ROOT / "dashboard" / "app.py"), page=page, params=params,
                       after_home=after_home)
    t, cpu = time.perf_counter(), _cpu()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1]), time.perf_counter() - t, _cpu() - cpu


def _cli(*args: str) -> tuple[float, None, float]:
    t, cpu = time.perf_counter(), _cpu()
    subprocess.run([str(Path(sys.executable).parent / "orbench"), *args], capture_output=True, check=True)
    return time.perf_counter() - t, None, _cpu() - cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    load = Path("/proc/loadavg").read_text()[:14]
    print(f"database {args.db}: {args.db.stat().st_size / 1e6:.1f} MB; load average {load}")
    for label, fn in (
        ("orbench trends (table)", lambda: _cli("trends", "--db", str(args.db))),
        ("orbench trends --json", lambda: _cli("trends", "--db", str(args.db), "--json")),
        ("Trends page, 7d (opens on now)", lambda: _page(args.db, "app_pages/trends.py", {"since": "7d"})),
        ("Trends page, 365d", lambda: _page(args.db, "app_pages/trends.py", {"since": "365d"})),
        ("Trends page, 7d, in a running dashboard (after its home page, caches empty)",
         lambda: _page(args.db, "app_pages/trends.py", {"since": "7d"}, after_home=True)),
        ("Trends page, 365d, in a running dashboard",
         lambda: _page(args.db, "app_pages/trends.py", {"since": "365d"}, after_home=True)),
        ("Results page (run list)", lambda: _page(args.db, "app_pages/results.py", {})),
        ("Results page, in a running dashboard", lambda: _page(args.db, "app_pages/results.py", {}, after_home=True)),
        ("Decide page", lambda: _page(args.db, "app_pages/decide.py", {})),
    ):
        runs: list[tuple[float, float | None, float]] = [fn() for _ in range(args.repeat)]  # type: ignore[misc]
        cpu = ", ".join(f"{r[2]:.2f}" for r in runs)
        if runs[0][1] is None:
            print(f"{label}: whole process {', '.join(f'{r[0]:.2f}' for r in runs)} s wall (CPU {cpu} s)")
        else:
            print(f"{label}: page run {', '.join(f'{r[0]:.2f}' for r in runs)} s; whole new process "
                  f"{', '.join(f'{r[1]:.2f}' for r in runs if r[1] is not None)} s wall (CPU {cpu} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

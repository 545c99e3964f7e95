#!/usr/bin/env python3
"""The Results page over a team store against the same rows in a local file (a script that prints
numbers, not a test), on a throwaway PostgreSQL 15.

A local file is seeded (scripts/seed_big_db.py), pushed whole to the team store (``orbench team
push``'s function), and pulled into an empty cache (``orbench team pull``'s). Then the Results page
(AppTest, every run selected: every row read) is timed on the local file, and on the cache with the
team store set, as ``orbench dashboard --team URL`` runs it: the page's header pulls first (nothing
new) and says "team: HOST/DB, N runs from K origins".

    .venv/bin/python scripts/bench_team_dashboard.py --rows 2000000 --runs 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _postgres import Cluster  # noqa: E402

from bench.store.store import Store  # noqa: E402
from bench.store.team.pull import pull  # noqa: E402
from bench.store.team.push import push  # noqa: E402
from bench.store.team.schema import init_schema  # noqa: E402
from bench.store.team.url import parse_team_url  # noqa: E402

PAGE = """
import os, sys, time
sys.path.insert(0, {root!r})
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({app!r}, default_timeout=600)
at.run()  # the home page first: a running dashboard
assert not at.exception, at.exception
at.switch_page("app_pages/results.py")
t = time.perf_counter()
at.run()
first = time.perf_counter() - t
assert not at.exception, at.exception
runs = at.multiselect(key="results-runs")
runs.set_value(list(runs.options))
t = time.perf_counter()
at.run()
every = time.perf_counter() - t
assert not at.exception, at.exception
header = [c.value for c in at.caption if "team:" in c.value]
print(f"{{first:.2f}} {{every:.2f}} {{header[0] if header else '-'}}")
"""


def page(db: Path, team_url: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORBENCH_", "OPENROUTER_"))}
    env["ORBENCH_DB"] = str(db)
    if team_url:
        env["ORBENCH_TEAM_DB"] = team_url
    code = PAGE.format(root=str(ROOT), app=str(ROOT / "dashboard" / "app.py"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode:
        return "failed: " + out.stderr.strip().splitlines()[-1]
    first, every, header = out.stdout.strip().splitlines()[-1].split(" ", 2)
    return f"newest run {first} s, every run {every} s; header: {header}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-team-dash-"))
    local = tmp / "local" / "orbench.duckdb"
    local.parent.mkdir()
    t = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "scripts" / "seed_big_db.py"), str(local), "--rows", str(args.rows),
                    "--runs", str(args.runs)], check=True, capture_output=True)
    print(f"[seed] {args.rows:,} rows in {args.runs} runs: {time.perf_counter() - t:.1f} s, "
          f"{local.stat().st_size / 1e6:.0f} MB", flush=True)
    cluster = Cluster()
    cluster.start()
    try:
        cluster.sql("CREATE DATABASE team")
        url = cluster.url("team")
        team = parse_team_url(url)
        init_schema(team)
        t = time.perf_counter()
        res = push(Store(local), team, None, origin="seed")
        wall = time.perf_counter() - t
        print(f"[push] {res.new.get('request', 0):,} request rows in {wall:.1f} s = "
              f"{res.new.get('request', 0) / wall:,.0f} rows/s", flush=True)
        cache = tmp / "cache" / "orbench.duckdb"
        t = time.perf_counter()
        got = pull(Store(cache), team)
        wall = time.perf_counter() - t
        print(f"[pull] {got.requests:,} request rows into an empty cache in {wall:.1f} s = "
              f"{got.requests / wall:,.0f} rows/s; cache {cache.stat().st_size / 1e6:.0f} MB", flush=True)
        for _ in range(args.repeat):
            print(f"[results page] local file: {page(local, None)}", flush=True)
            print(f"[results page] team store (cache + header pull): {page(cache, url)}", flush=True)
    finally:
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Start-up cost of the CLI: median wall time of ``orbench --help`` against ``python -c "import click"``.

Both run as fresh interpreters (what a user or a CI step pays), alternately, ``--runs``
times each after one untimed warm-up of each (so the OS file cache is warm for both). The
ratio says what orbench adds on top of click itself; the lazy command registry in
bench.cli is what keeps it small.

    python scripts/bench_startup.py            # 10 runs each
    python scripts/bench_startup.py --runs 30 --command "models --help"
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall_s(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each command (default 10)")
    parser.add_argument("--command", default="--help", help="orbench arguments to time (default --help)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    env["PYTHONPATH"] = str(ROOT)
    orbench = [sys.executable, "-m", "bench", *shlex.split(args.command)]
    click_only = [sys.executable, "-c", "import click"]
    wall_s(orbench, env), wall_s(click_only, env)  # warm-up, untimed
    times: dict[str, list[float]] = {"orbench": [], "click": []}
    for _ in range(args.runs):
        times["orbench"].append(wall_s(orbench, env))
        times["click"].append(wall_s(click_only, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"orbench {args.command}: median {med['orbench'] * 1000:.0f} ms over {args.runs} runs")
    print(f'python -c "import click": median {med["click"] * 1000:.0f} ms over {args.runs} runs')
    print(f"ratio: {med['orbench'] / med['click']:.2f}")


if __name__ == "__main__":
    main()

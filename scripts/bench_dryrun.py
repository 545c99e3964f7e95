"""Time ``orbench run SUITE --dry-run`` on a suite whose dataset is a 100,000-row CSV (bound: <= 5 s).

    .venv/bin/python scripts/bench_dryrun.py [--rows 100000] [--times 3] [--profile OUT.prof] [--code DIR]

Builds the CSV and a one-model suite reading it in a temp folder, then runs the real CLI
(``python -m bench run SUITE --dry-run --sandbox``) in a fresh subprocess ``--times`` times:
interpreter start, sandbox, catalog, suite expansion, plan, estimate and printing included.
Prints each wall time, the best and the median. ``--profile`` runs one more time under
cProfile and writes the stats there (``python -m pstats OUT.prof``). The figures depend on
the machine's load: the box has 2 cores shared with others, so run it twice. ``--code DIR``
times another checkout's ``bench`` (e.g. main, for a before/after on the same CSV).
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 5.0  # the bound

SUITE = """name: dry-run-100k
models: [openai/gpt-4o-mini]
warmup: false
defaults: {max_tokens: 16, temperature: 0}
datasets:
  - path: rows.csv
    id: "q{row}"
    system: Answer briefly.
    prompt: "Question {row}: {question}"
    tags: ["{category}"]
    checks: [{icontains: "{answer}"}]
"""


def write_files(folder: Path, rows: int) -> Path:
    """The CSV (trivia-like rows, one unused column) and the suite reading it; returns the suite."""
    with (folder / "rows.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["question", "answer", "category", "unused"])
        for i in range(rows):
            out.writerow([f"What is {i} plus {i}? [[answer: {2 * i}]]", 2 * i, f"c{i % 7}", "x" * 40])
    suite = folder / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    return suite


def _cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def dry_run(suite: Path, folder: Path, code: Path = ROOT, profile: Path | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``orbench run SUITE --dry-run --sandbox`` in a new process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    env |= {"PYTHONPATH": str(code), "ORBENCH_DB": str(folder / "orbench.duckdb")}
    prof = ["-m", "cProfile", "-o", str(profile)] if profile else []
    cmd = [sys.executable, *prof, "-m", "bench", "run", str(suite), "--dry-run", "--sandbox"]
    start, cpu = time.perf_counter(), _cpu_s()
    res = subprocess.run(cmd, env=env, cwd=folder, capture_output=True, text=True, check=False)
    took, cpu = time.perf_counter() - start, _cpu_s() - cpu
    if res.returncode != 0 or "dry run: nothing was sent" not in res.stderr:
        sys.exit(f"the dry run failed (exit {res.returncode}):\n{res.stderr[-2000:]}")
    return took, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the CSV (default 100,000)")
    parser.add_argument("--times", type=int, default=3, help="dry runs to time (default 3)")
    parser.add_argument("--profile", type=Path, default=None, help="also write cProfile stats here")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose bench/ to time (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orbench-dryrun-") as tmp:
        folder = Path(tmp)
        suite = write_files(folder, args.rows)
        size_mb = (folder / "rows.csv").stat().st_size / 1e6
        print(f"{args.code}: {args.rows:,} rows, {size_mb:.1f} MB CSV; python {sys.version.split()[0]}, "
              f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}")
        walls = []
        for i in range(args.times):
            wall, cpu = dry_run(suite, folder, args.code)
            walls.append(wall)
            print(f"dry run {i + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU (user + sys)")
        best, median = min(walls), statistics.median(walls)
        verdict = "within" if median <= LIMIT_S else "OVER"
        print(f"orbench run --dry-run: best {best:.2f} s, median {median:.2f} s ({verdict} the {LIMIT_S:g} s bound)")
        if args.profile:
            dry_run(suite, folder, args.code, args.profile)
            print(f"profile: {args.profile} (python -m pstats {args.profile})")


if __name__ == "__main__":
    main()

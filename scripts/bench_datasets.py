"""Time a suite whose ``datasets:`` item reads a large CSV (the issue's bound: --dry-run <= 5 s).

    .venv/bin/python scripts/bench_datasets.py [--rows 100000] [--sample N] [--dir /tmp/x]

Writes a CSV of N trivia-like rows and a one-model suite reading it, then prints the
wall-clock time of: load_suite (read + expand every row into a case), and the real CLI
``orbench run SUITE --dry-run --sandbox`` in a subprocess (interpreter start, sandbox,
catalog, plan and estimate included), plus the process's peak RSS. Figures depend on the
machine's load; run it twice.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.suites.parse import load_suite  # noqa: E402

SUITE = """name: big-dataset
models: [openai/gpt-4o-mini]
warmup: false
defaults: {{max_tokens: 16, temperature: 0}}
datasets:
  - path: big.csv
    id: "q{{row}}"
    system: Answer briefly.
    prompt: "Question {{row}}: {{question}}"
    tags: ["{{category}}"]
    checks: [{{icontains: "{{answer}}"}}]
{sample}"""


def write_files(folder: Path, rows: int, sample: int | None) -> Path:
    with (folder / "big.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["question", "answer", "category", "unused"])
        for i in range(rows):
            out.writerow([f"What is {i} plus {i}? [[answer: {2 * i}]]", 2 * i, f"c{i % 7}", "x" * 40])
    suite = folder / "big.yaml"
    suite.write_text(SUITE.format(sample=f"    sample: {sample}\n" if sample else ""), encoding="utf-8")
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=None)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="orbench-datasets-"))
    folder.mkdir(parents=True, exist_ok=True)
    suite_path = write_files(folder, args.rows, args.sample)
    size_mb = (folder / "big.csv").stat().st_size / 1e6
    print(f"{args.rows:,} rows, {size_mb:.1f} MB CSV in {folder}")

    start = time.perf_counter()
    suite = load_suite(suite_path)
    print(f"load_suite: {time.perf_counter() - start:.2f} s ({len(suite.cases):,} cases)")

    env = {**os.environ, "PYTHONPATH": str(ROOT), "ORBENCH_DB": str(folder / "orbench.duckdb")}
    cmd = [sys.executable, "-c", "import resource, runpy, sys; sys.argv = ['orbench', *sys.argv[1:]]\n"
           "try:\n    runpy.run_module('bench', run_name='__main__')\nfinally:\n"
           "    print(f'peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB', "
           "file=sys.stderr)", "run", str(suite_path), "--dry-run", "--sandbox"]  # fmt: skip
    start = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    peak = next((line for line in res.stderr.splitlines() if line.startswith("peak RSS")), "")
    print(f"orbench run --dry-run --sandbox: {took:.2f} s (exit {res.returncode}; {peak})")
    if res.returncode != 0:
        print(res.stderr[-2000:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

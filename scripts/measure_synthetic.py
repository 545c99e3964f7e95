"""Run a suite's ``synthetic:`` prompts and print how close each size came, per model x provider.

    .venv/bin/python scripts/measure_synthetic.py [SUITE] [-- RUN FLAGS...]

Default SUITE is bench/examples/suites/synthetic.yaml and the flags default to ``--sandbox``;
anything after ``--`` goes to ``orbench run`` as is (``-- --local --model local/gemma3-270m``,
``-- --base-url http://127.0.0.1:8000/v1``). The run goes to a temporary database. Prints,
per synthetic set and target: n, the asked size, min/max ``prompt_tokens`` and the min/max
relative error, and the two probe answers with the fitted line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.store.store import Store  # noqa: E402
from bench.suites.parse import load_suite  # noqa: E402

DEFAULT_SUITE = ROOT / "bench" / "examples" / "suites" / "synthetic.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", nargs="?", default=str(DEFAULT_SUITE))
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="after --: flags for orbench run")
    args = parser.parse_args()
    flags = [f for f in args.flags if f != "--"] or ["--sandbox"]
    sizes = {s.id: s.prompt_tokens for s in load_suite(args.suite).synthetic}
    if not sizes:
        print(f"{args.suite}: no synthetic: list", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "measure.duckdb"
        env = {**os.environ, "ORBENCH_DB": str(db), "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-m", "bench", "run", args.suite, "--json", *flags],
                              env=env, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        run_id = json.loads(proc.stdout)["run_id"]
        report(Store(db).requests_frame(run_id).to_dicts(), sizes)
    return 0


def report(rows: list[dict[str, object]], sizes: dict[str, int]) -> None:
    groups: dict[tuple[str, str], list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault((str(row["model"]), str(row["provider_variant"])), []).append(row)
    for (model, variant), mine in groups.items():
        probes = {str(r["case_id"]): r["prompt_tokens"] for r in mine if r["is_probe"]}
        print(f"{model} [{variant}]: probes {probes}")
        for set_id, asked in sizes.items():
            got = [int(r["prompt_tokens"]) for r in mine  # type: ignore[call-overload]  # row values are typed object
                   if r["case_id"] == set_id and r["outcome"] == "ok" and r["prompt_tokens"] is not None]
            if not got:
                reasons = {r["error"] for r in mine if r["case_id"] == set_id}
                print(f"  {set_id}: no answer ({'; '.join(str(x) for x in reasons)})")
                continue
            errors = [(g - asked) / asked * 100 for g in got]
            print(f"  {set_id}: n={len(got)} asked {asked}: prompt_tokens {min(got)}..{max(got)}, "
                  f"error {min(errors):+.2f} % .. {max(errors):+.2f} %")


if __name__ == "__main__":
    raise SystemExit(main())

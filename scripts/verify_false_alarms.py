"""How often does a verify flag a conforming provider? 20 seeded verifies on the sandbox.

Each verify runs the default probe set on the sandbox (a fresh seed each time, so the simulated
providers' temperature-0 noise differs) with sim-faithful as the reference and groq and
deepinfra (also conforming simulations) as the providers under test, and counts every
"deviates" among their dimensions. The correction promises at most about 5% of verifies with
any false "deviates"; this prints the exact count.

    .venv/bin/python scripts/verify_false_alarms.py [--verifies 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MODEL = "meta-llama/llama-3.3-70b-instruct"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifies", type=int, default=20)
    parser.add_argument("--providers", default="groq,deepinfra")
    args = parser.parse_args()
    flagged_total, flagged_verifies = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.verifies + 1):
            db = Path(tmp) / f"v{seed}.duckdb"
            proc = subprocess.run(
                [sys.executable, "-m", "bench", "verify", MODEL, "--sandbox", "--seed", str(seed), "--db", str(db),
                 "--providers", args.providers, "--reference", "sim-faithful", "--json"],
                capture_output=True, text=True, check=False)
            if proc.returncode not in (0, 3):
                sys.stderr.write(proc.stderr)
                return 1
            result = json.loads(proc.stdout)
            flags = [f"{p['provider']}.{d}" for p in result["providers"] if p["provider"] != result["reference"]
                     for d, v in p["dimensions"].items() if v["verdict"] == "deviates"]
            uncertain = [f"{p['provider']}.{d}" for p in result["providers"] if p["provider"] != result["reference"]
                         for d, v in p["dimensions"].items() if v["verdict"] == "uncertain"]
            flagged_total += len(flags)
            flagged_verifies += bool(flags)
            print(f"seed {seed:2d}: exit {proc.returncode}, deviates: {', '.join(flags) or 'none'}; "
                  f"uncertain: {', '.join(uncertain) or 'none'}")
    print(f"conforming providers ({args.providers}) over {args.verifies} seeded verifies: "
          f"{flagged_total} false 'deviates' in all dimensions together, in {flagged_verifies} verifies")
    return 0


if __name__ == "__main__":
    sys.exit(main())

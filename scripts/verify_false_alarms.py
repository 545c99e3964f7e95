"""How often does a verify flag a conforming provider? 20 seeded verifies on the sandbox.

Each verify is the sandbox demo (a fresh seed each time, so the simulated providers'
temperature-0 noise differs): sim-faithful (conforming) and the four misbehaving providers,
against groq (also a conforming simulation) as the reference. A false "deviates" is one on
sim-faithful, or one on a misbehaving provider outside its own dimension; the script counts
them all, and the true detections beside. The correction promises at most about 5% of verifies
with any false "deviates"; this prints the exact count.

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
OWN = {"sim-faithful": None, "sim-quantized": "accuracy", "sim-toolbreak": "tool_calls", "sim-tokenpad": "usage",
       "sim-ignoremax": "parameters"}  # provider -> the one dimension it misbehaves on


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifies", type=int, default=20)
    parser.add_argument("--reference", default="groq")
    args = parser.parse_args()
    flagged_total, flagged_verifies, detected = 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.verifies + 1):
            db = Path(tmp) / f"v{seed}.duckdb"
            proc = subprocess.run(
                [sys.executable, "-m", "bench", "verify", MODEL, "--sandbox", "--seed", str(seed), "--db", str(db),
                 "--providers", ",".join(OWN), "--reference", args.reference, "--json"],
                capture_output=True, text=True, check=False)
            if proc.returncode not in (0, 3):
                sys.stderr.write(proc.stderr)
                return 1
            result = json.loads(proc.stdout)
            flags = [f"{p['provider']}.{d}" for p in result["providers"] if p["provider"] != result["reference"]
                     for d, v in p["dimensions"].items() if v["verdict"] == "deviates" and OWN[p["provider"]] != d]
            found = sum(1 for p in result["providers"] for d, v in p["dimensions"].items()
                        if v["verdict"] == "deviates" and OWN.get(p["provider"]) == d)
            detected += found
            uncertain = [f"{p['provider']}.{d}" for p in result["providers"] if p["provider"] != result["reference"]
                         for d, v in p["dimensions"].items() if v["verdict"] == "uncertain"]
            flagged_total += len(flags)
            flagged_verifies += bool(flags)
            print(f"seed {seed:2d}: exit {proc.returncode}, {found}/4 misbehaviours found; false deviates: "
                  f"{', '.join(flags) or 'none'}; "
                  f"uncertain: {', '.join(uncertain) or 'none'}")
    print(f"over {args.verifies} seeded verifies: {flagged_total} false 'deviates' in all dimensions together "
          f"(sim-faithful, and the misbehaving providers outside their own dimension), in {flagged_verifies} "
          f"verifies; {detected}/{4 * args.verifies} misbehaviours found on their own dimension")
    return 0


if __name__ == "__main__":
    sys.exit(main())

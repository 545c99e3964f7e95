"""A sweep on the real local model (llama.cpp, Gemma 3 270M on this machine's cores) finds its knee."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import invoke

pytestmark = pytest.mark.local

SUITE = Path(__file__).resolve().parents[1] / "bench" / "examples" / "suites" / "sweep.yaml"


def test_sweep_on_the_local_model_finds_its_knee(cli_db: Path) -> None:
    code, out, err = invoke("sweep", str(SUITE), "--local", "--model", "local/gemma3-270m",
                            "--concurrency", "1,2,4,8,16", "--requests-per-step", "8", "--json")
    assert code == 0, err
    result = json.loads(out)
    key = next(iter({f"{s['model']} [{s['provider']}]" for s in result["steps"]}))
    assert all(s["error_rate"] == 0 for s in result["steps"])
    assert key in result["knee"], result["steps"]
    knee = result["knee"][key]
    steps = {s["concurrency"]: s for s in result["steps"]}
    after = min(level for level in steps if level > knee)
    assert steps[after]["req_per_s"] < 1.1 * steps[knee]["req_per_s"]

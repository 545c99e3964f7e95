"""orbench sweep end to end: real sandbox on 127.0.0.1 (with limited capacity), real DuckDB, real CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from bench.errors import ConfigError
from bench.run.sweep import Point, find_knee, parse_slo
from bench.sandbox import start_sandbox
from bench.store.store import Store
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "bench" / "examples" / "suites" / "sweep.yaml"
KEY = "openai/gpt-4o-mini [default]"


@pytest.fixture
def capacity4() -> Iterator[str]:
    """A simulated server that serves 4 requests at once at full speed; the rest queue."""
    with start_sandbox(time_scale=0.2, max_concurrent=4) as sb:
        yield sb.base_url


def _sweep(*args: str) -> tuple[int, dict, str]:
    code, out, err = invoke("sweep", str(SUITE), "--json", *args)
    return code, (json.loads(out) if out.strip() else {}), err


def test_sweep_finds_the_knee_at_the_servers_capacity(cli_db: Path, capacity4: str) -> None:
    code, result, err = _sweep("--base-url", capacity4, "--concurrency", "1,2,4,8,16",
                               "--requests-per-step", "16", "--slo", "ttft_p95_ms<=400")
    assert code == 0, err
    assert result["knee"] == {KEY: 4}
    steps = {s["concurrency"]: s for s in result["steps"]}
    assert sorted(steps) == [1, 2, 4, 8, 16]
    assert all(s["n"] == 16 and s["error_rate"] == 0 for s in steps.values())
    # throughput doubles up to the capacity, then plateaus while TTFT grows
    assert steps[2]["req_per_s"] > 1.6 * steps[1]["req_per_s"]
    assert steps[4]["req_per_s"] > 1.6 * steps[2]["req_per_s"]
    assert steps[8]["req_per_s"] < 1.1 * steps[4]["req_per_s"]
    assert steps[8]["ttft_p95_ms"] > 1.5 * steps[4]["ttft_p95_ms"]
    # queued requests miss the TTFT objective: goodput falls behind req/s past the knee
    assert steps[16]["goodput_req_per_s"] < steps[16]["req_per_s"]
    assert result["max_goodput"][KEY] in (4, 8)
    for name in ("req_per_s", "output_tok_per_s", "ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms",
                 "goodput_req_per_s", "n", "error_rate", "model", "provider"):
        assert name in steps[4]
    runs = Store(cli_db).query("SELECT run_id, sweep_level FROM runs WHERE sweep_id = ? ORDER BY sweep_level",
                               [result["sweep_id"]])
    assert runs["sweep_level"].to_list() == [1, 2, 4, 8, 16]


def test_sweep_stop_at_knee_stops_after_the_level_that_shows_it(cli_db: Path, capacity4: str) -> None:
    code, result, err = _sweep("--base-url", capacity4, "--concurrency", "2,4,8,16,32",
                               "--requests-per-step", "16", "--stop-at-knee")
    assert code == 0, err
    assert result["knee"] == {KEY: 4}
    assert sorted({s["concurrency"] for s in result["steps"]}) == [2, 4, 8]
    assert "--stop-at-knee" in err


def _worst_case(err: str) -> Decimal:
    found = re.search(r"worst case \$([0-9.]+)", err)
    assert found is not None, err
    return Decimal(found.group(1))


def test_sweep_budget_covers_the_whole_sweep_and_resume_continues(cli_db: Path) -> None:
    """A budget of one step's worst case runs that step and stops before the next; --resume
    with more budget skips the finished step and runs the rest."""
    with start_sandbox(time_scale=0) as sb:
        code, _, err = _sweep("--base-url", sb.base_url, "--concurrency", "1", "--requests-per-step", "4")
        one_step = _worst_case(err)
        code, result, err = _sweep("--base-url", sb.base_url, "--concurrency", "1,2", "--requests-per-step", "4",
                                   "--budget", str(one_step))
        assert code == 0, err
        assert "sweep stopped before concurrency=2" in err
        assert result["status"] == "stopped"
        assert {s["concurrency"] for s in result["steps"]} == {1}
        first_run = result["steps"][0]["run_id"]
        code, out, err = invoke("sweep", "--resume", result["sweep_id"], "--budget", "1", "--json",
                                "--base-url", sb.base_url)
    assert code == 0, err
    resumed = json.loads(out)
    assert "finished earlier" in err
    assert {s["concurrency"]: s["run_id"] for s in resumed["steps"]}[1] == first_run
    assert {s["concurrency"] for s in resumed["steps"]} == {1, 2}
    assert resumed["status"] == "finished"


def test_sweep_bad_flags_are_one_line_naming_the_flag(cli_db: Path) -> None:
    for args, flag in ((["--concurrency", "4,2"], "--concurrency"),
                       (["--concurrency", "1,x"], "--concurrency"),
                       (["--concurrency", "1,2", "--slo", "cost_usd<=1"], "--slo"),
                       (["--concurrency", "1,2", "--slo", "ttft_p95_ms<<1"], "--slo"),
                       (["--rate", "1,2", "--concurrency", "1,2"], "--concurrency"),
                       ([], "--concurrency")):
        code, _, err = invoke("sweep", str(SUITE), "--sandbox", *args)
        assert code == 1, (args, err)
        assert flag in err and len(err.strip().splitlines()) == 1, err
    assert not cli_db.exists() or Store(cli_db).query("SELECT count(*) AS n FROM runs")["n"].item() == 0


def test_find_knee_needs_a_plateau_and_growing_latency() -> None:
    rising = [Point(1, 10, 100, 500), Point(2, 20, 100, 500), Point(4, 40, 101, 505)]
    assert find_knee(rising) is None
    flat_but_faster = [Point(1, 10, 100, 500), Point(2, 10.5, 90, 480)]
    assert find_knee(flat_but_faster) is None  # no latency cost: not a knee
    knee = [Point(1, 10, 100, 500), Point(2, 19, 100, 500), Point(4, 20, 180, 900), Point(8, 20, 400, 2000)]
    assert find_knee(knee) == 2


def test_parse_slo_reuses_gate_syntax() -> None:
    gate = parse_slo("tpot_p50_ms<=50")
    assert (gate.metric, gate.op, gate.value) == ("tpot_p50_ms", "<=", 50)
    with pytest.raises(ConfigError, match="--slo"):
        parse_slo("nonsense")

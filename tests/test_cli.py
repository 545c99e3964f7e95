"""The CLI against real servers on loopback: the sandbox and the independent fake."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from bench.sandbox import start_sandbox
from bench.store.store import Store
from tests.conftest import invoke
from tests.fake_openrouter import PRICES, start_fake

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(cli_db: Path) -> Path:
    return cli_db


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_models_sandbox_json_has_30_plus_models_with_per_token_prices() -> None:
    code, out, err = invoke("models", "--sandbox", "--json")
    assert code == 0, err
    models = json.loads(out)
    real = [m for m in models if not m["variable_price"] and not m["id"].startswith("sandbox/")]
    assert len(real) >= 30
    mini = next(m for m in models if m["id"] == "openai/gpt-4o-mini")
    assert mini["prompt_usd_per_token"] == "0.00000015" and mini["prompt_usd_per_m"] == "0.15"
    assert "simulated" in err


def test_models_against_an_independent_server_lists_its_models() -> None:
    server = start_fake()
    code, out, err = invoke("models", "--base-url", server.base_url, "--json")
    assert code == 0, err
    assert sorted(m["id"] for m in json.loads(out)) == sorted(PRICES)
    code, out, _ = invoke("models", "--base-url", server.base_url, "--csv", "--sort", "price")
    assert out.splitlines()[0].startswith("id,") and out.splitlines()[1].startswith("acme/gamma,")
    code, out, _ = invoke("models", "--base-url", server.base_url, "--search", "beta")
    assert "acme/beta" in out and "acme/alpha" not in out


def test_models_filters_by_modality_price_and_context() -> None:
    code, out, _ = invoke("models", "--sandbox", "--json", "--modality", "image", "--max-price", "0.5",
                          "--min-context", "100000")
    models = json.loads(out)
    assert models
    for m in models:
        assert "image" in m["input_modalities"] + m["output_modalities"]
        assert float(m["prompt_usd_per_m"]) <= 0.5 and m["context_length"] >= 100000


def test_credits_with_a_rejected_key_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_fake()
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-bad")
    monkeypatch.setenv("ORBENCH_BASE_URL_KEY_ENV", "OPENROUTER_API_KEY")  # a non-OpenRouter URL needs it named
    code, _, err = invoke("credits", "--base-url", server.base_url)
    assert code == 1 and "rejected" in one_error_line(err)
    assert "sk-or-v1-bad" not in err


def test_credits_without_a_key_says_how_to_get_one() -> None:
    code, _, err = invoke("credits")
    assert code == 1 and "set OPENROUTER_API_KEY, or use --sandbox" in one_error_line(err)


def test_credits_on_the_sandbox_reports_key_and_the_management_key_rule() -> None:
    code, out, err = invoke("credits", "--sandbox", "--json")
    assert code == 0, err
    row = json.loads(out)[0]
    assert float(row["limit_usd"]) > 0 and row["total_credits_usd"] is None
    assert "management key" in err


def test_no_network_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = invoke("models", "--base-url", f"http://127.0.0.1:{port}/api/v1")
    assert code == 1 and "cannot reach" in one_error_line(err)


def test_unknown_model_for_endpoints_is_one_line() -> None:
    code, _, err = invoke("endpoints", "acme/nope", "--sandbox")
    assert code == 1 and "unknown model" in one_error_line(err.strip().splitlines()[-1])
    code, out, err = invoke("endpoints", "openai/gpt-4o-mini", "--sandbox", "--json")
    assert code == 0, err
    eps = json.loads(out)
    assert len(eps) >= 2 and all("(simulated)" in e["provider"] for e in eps)


def test_provider_variants_rate_lookup_show_compare_export(clean_env: Path, tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: variants\nmodels: [meta-llama/llama-3.3-70b-instruct]\nrepeats: 3\n"
                     "defaults: {max_tokens: 12}\ncases:\n  - id: a\n    prompt: hello there\n")
    with start_sandbox(time_scale=0.05) as sb:
        args = ["run", str(suite), "--base-url", sb.base_url, "--json", "--lookup-generation",
                "--provider", '{"only": ["groq"]}', "--provider", '{"only": ["deepinfra"]}']
        code, out, err = invoke(*args)
        assert code == 0, err
        run_a = json.loads(out)["run_id"]
        code, out, err = invoke(*args[:-4], "--provider", '{"only": ["groq"]}', "--rate", "20")
        assert code == 0, err
        run_b = json.loads(out)["run_id"]
    snaps = Store(clean_env).credit_snapshots().filter(pl.col("run_id") == run_a)
    assert snaps.height == 2 and snaps["source"].to_list() == ["key", "key"]
    before, after = snaps["usage_usd"].to_list()  # the sandbox books simulated spend on the key
    assert after > before
    rows = Store(clean_env).requests_frame(run_a).to_dicts()
    by_variant: dict[str, set[str]] = {}
    for r in rows:
        by_variant.setdefault(r["provider_variant"], set()).add(r["provider"])
        assert r["server_latency_ms"] is not None  # filled from /generation
    assert by_variant == {"groq": {"Groq (simulated)"}, "deepinfra": {"DeepInfra (simulated)"}}
    # interleaving: every round of the plan (one request per target, in plan order) has both variants
    measured = [r["provider_variant"] for r in sorted(rows, key=lambda r: r["request_idx"]) if not r["is_warmup"]]
    assert len(measured) == 6
    assert all(set(measured[i:i + 2]) == {"groq", "deepinfra"} for i in range(0, len(measured), 2)), measured
    code, out, _ = invoke("show", run_a)
    assert "groq" in out and "deepinfra" in out and "SIMULATED" in out
    code, out, _ = invoke("runs", "--json")
    assert {r["run_id"] for r in json.loads(out)} == {run_a, run_b}
    code, out, err = invoke("compare", run_a, run_b, "--json")
    assert code == 0, err
    cmp_rows = json.loads(out)
    assert any(r["metric"] == "TTFT ms" and r["verdict"] in ("beyond noise", "within noise") for r in cmp_rows)
    for fmt in ("csv", "json", "md"):
        code, out, err = invoke("export", run_a, "--format", fmt)
        assert code == 0 and "ttft_ms" in out, err
    code, out, _ = invoke("export", run_a, "--format", "csv", "--summary")
    assert out.splitlines()[0].startswith("model,")
    code, _, err = invoke("export", run_a, "--format", "parquet")
    assert code == 1 and "-o FILE" in one_error_line(err)
    code, _, err = invoke("show", "nonexistent-run")
    assert code == 1 and len(err.strip().splitlines()) == 1


def test_sandbox_command_serves_until_interrupted() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bench", "sandbox", "--port", str(port)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert f"127.0.0.1:{port}" in line and "simulated" in line
        t0 = time.monotonic()
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/models", timeout=5)
        assert r.status_code == 200 and r.headers["x-orbench-simulated"] == "true"
        assert time.monotonic() - t0 < 2
    finally:
        proc.send_signal(2)
        proc.wait(10)


def test_usd_amounts_parse_one_way_for_flags_and_the_run_page() -> None:
    """``config.parse_usd``: the CLI's --budget/--max-price and the dashboard's budget field."""
    from decimal import Decimal

    from bench.config import parse_usd
    from bench.errors import ConfigError

    assert parse_usd(" $0.50 ", "budget") == Decimal("0.50") and parse_usd("0", "--budget") == 0
    assert parse_usd(None, "--budget") is None and parse_usd("  ", "budget") is None
    for bad, why in (("abc", "not a number of USD"), ("-1", "non-negative"), ("NaN", "non-negative"),
                     ("inf", "non-negative")):
        with pytest.raises(ConfigError, match=why) as err:
            parse_usd(bad, "--budget")
        assert str(err.value).startswith("--budget") and "\n" not in str(err.value)
    code, _, err = invoke("models", "--sandbox", "--max-price", "-2")
    assert code == 1 and "--max-price must be a non-negative number of USD" in one_error_line(err)

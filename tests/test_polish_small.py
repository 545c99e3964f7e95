"""Small things from a new user's first hour: refused header values are not retried, one list of prices."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from bench.api.catalog import parse_models
from bench.api.client import OpenRouterClient, RetryPolicy
from bench.api.transport import LeanTransport
from bench.errors import NetworkError
from bench.records import PRICE_KEYS
from bench.store.store import Store
from tests._loopback import LoopbackServer


def test_a_refused_header_value_is_not_retried_and_says_why() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    with LoopbackServer([(0.0, b"data: [DONE]\n\n")]) as server:
        async def go() -> None:
            http = httpx.AsyncClient(base_url=server.base_url, transport=LeanTransport(2),
                                     headers={"X-Note": "a\r\nX-Evil: 1"})
            async with OpenRouterClient(http, retry=RetryPolicy(max_attempts=4, sleep=sleep)) as c:
                await c.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})

        with pytest.raises(NetworkError) as info:
            asyncio.run(go())
        assert server.bodies == []  # nothing went out
    assert info.value.attempts == 1 and slept == []
    assert "not retried: orbench refused to send a header value" in str(info.value)


def test_every_catalog_price_is_snapshotted_web_search_included(tmp_path: Path) -> None:
    prices = {k: f"0.00000{i + 1}" for i, k in enumerate(PRICE_KEYS)}
    store = Store(tmp_path / "db.duckdb")
    store.init()
    snap = store.save_catalog_snapshot(parse_models({"data": [{"id": "a/b", "name": "b", "pricing": prices}]}),
                                       "http://127.0.0.1/api/v1")
    row = store.catalog_prices(snap).to_dicts()[0]
    assert {k: row[k] for k in PRICE_KEYS} == {k: Decimal(v) for k, v in prices.items()}


def test_run_credits_and_suite_examples_take_the_shared_output_options(tmp_path: Path, cli_db: Path) -> None:
    import csv
    import io
    import json

    from tests.conftest import invoke

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmodels: [openai/gpt-4o-mini]\ncases:\n  - {id: a, prompt: hi}\n")
    code, out, err = invoke("run", str(suite), "--sandbox", "--csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["group"] for r in rows] == ["openai/gpt-4o-mini [default]", "TOTAL"] and rows[0]["run_id"]
    assert "connections: 4 per endpoint opened before the measured phase" in err
    code, out, err = invoke("credits", "--sandbox", "--nl")
    assert code == 0, err
    assert "usage_usd" in json.loads(out.splitlines()[0])
    code, out, err = invoke("suite", "examples", "--csv")
    assert code == 0, err
    assert "demo.yaml" in {r["file"] for r in csv.DictReader(io.StringIO(out))}
    code, _, err = invoke("run", str(suite), "--sandbox", "--json", "--csv")
    assert code == 2 and "choose one output format" in err


def test_the_local_model_server_takes_a_context_size(tmp_path: Path, cli_db: Path) -> None:
    from bench.local import LocalServer, server_command
    from tests.conftest import invoke

    cmd = server_command(Path("/bin/llama-server"), Path("m.gguf"), 8080, ctx_size=16384)
    assert cmd[cmd.index("-c") + 1] == "16384"
    assert LocalServer(tmp_path / "m.gguf", ctx_size=8192, port=1).ctx_size == 8192
    code, _, err = invoke("run", "x.yaml", "--local", "--local-ctx-size", "100")
    assert code == 2 and "--local-ctx-size" in err
    code, _, err = invoke("local", "serve", "--ctx-size", "999999")
    assert code == 2 and "--ctx-size" in err

"""Synthetic prompts on the real local model (llama.cpp, Gemma 3 270M): sized by its own tokenizer.

Marked ``local`` (run by ``scripts/ci_local.sh`` as ``pytest -m local``). The two probes read
llama-server's ``usage.prompt_tokens`` (Gemma's 262k SentencePiece vocabulary and the gemma chat
template), and every synthetic prompt must then land within 3% of its size. Sizes stay below
1,024 tokens so a prompt fits one slot of the 4,096-token context whatever the slot split.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bench.store.store import Store
from tests.conftest import invoke

pytestmark = pytest.mark.local

SIZES = {"short-in": 100, "mid-in": 500}
OUTPUT_TOKENS = 8


def test_synthetic_prompts_land_within_3_percent_on_the_local_model(cli_db: Path, tmp_path: Path) -> None:
    suite = tmp_path / "synthetic-local.yaml"
    suite.write_text(textwrap.dedent(f"""\
        name: synthetic-local
        models: [openai/gpt-4o-mini]   # replaced by --model below
        seed: 3
        synthetic:
          - {{id: short-in, prompt_tokens: {SIZES["short-in"]}, output_tokens: {OUTPUT_TOKENS}, count: 4}}
          - {{id: mid-in, prompt_tokens: {SIZES["mid-in"]}, output_tokens: {OUTPUT_TOKENS}, count: 4}}
    """), encoding="utf-8")
    code, out, err = invoke("run", str(suite), "--local", "--model", "local/gemma3-270m", "--json",
                            "--concurrency", "2")
    assert code == 0, err
    rows = Store(cli_db).requests_frame(json.loads(out)["run_id"]).to_dicts()
    probes = [r for r in rows if r["is_probe"]]
    measured = [r for r in rows if not r["is_probe"]]
    assert len(probes) == 2 and all(r["outcome"] == "ok" and r["is_warmup"] for r in probes)
    assert len(measured) == 8 and all(r["outcome"] == "ok" for r in measured), \
        [(r["case_id"], r["outcome"], r["error"]) for r in measured]
    assert all(r["token_source"] == "usage" for r in rows)
    errors = {case: [(r["prompt_tokens"] - size) / size for r in measured if r["case_id"] == case]
              for case, size in SIZES.items()}
    worst = {case: max(abs(e) for e in errs) for case, errs in errors.items()}
    assert all(len(errs) == 4 for errs in errors.values()) and all(w <= 0.03 for w in worst.values()), errors
    # ignore_eos + min_tokens reach llama-server: every answer is exactly output_tokens long
    assert {r["completion_tokens"] for r in measured} == {OUTPUT_TOKENS}

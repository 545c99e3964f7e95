"""Conversations on the real local model (llama.cpp, Gemma 3 270M): its prefix cache, reported.

Marked ``local`` (run by ``scripts/ci_local.sh`` as ``pytest -m local``). A 4-turn synthetic conversation
on a 300-token system prompt, once with ``cache: auto`` (``cache_prompt: true``) and once with
``cache: off`` (``cache_prompt: false``): llama-server reports the reused prefix in
``usage.prompt_tokens_details.cached_tokens``, so every later turn of the first run is a cache hit
and no turn of the second is. Sizes stay small so a conversation fits one slot of the 4,096-token
context whatever the slot split.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bench.store.store import Store
from tests.conftest import invoke

pytestmark = pytest.mark.local


def run(tmp_path: Path, db: Path, mode: str) -> list[dict[str, Any]]:
    suite = tmp_path / f"conv-{mode}.yaml"
    suite.write_text(textwrap.dedent(f"""\
        name: conversation-local
        models: [openai/gpt-4o-mini]   # replaced by --model below
        warmup: false
        cache: {mode}
        synthetic_conversations:
          - {{id: chat, system_tokens: 300, turns: 4, user_tokens: 30, output_tokens: 16, count: 1}}
    """), encoding="utf-8")
    code, out, err = invoke("run", str(suite), "--local", "--model", "local/gemma3-270m", "--json",
                            "--concurrency", "1")
    assert code == 0, err
    rows = Store(db).requests_frame(json.loads(out)["run_id"]).to_dicts()
    return sorted((r for r in rows if r["turn"] is not None), key=lambda r: r["turn"])


def test_llama_server_reuses_the_conversation_prefix_only_with_cache_prompt(cli_db: Path, tmp_path: Path) -> None:
    on = run(tmp_path, cli_db, "auto")
    assert [r["outcome"] for r in on] == ["ok"] * 4 and {r["completion_tokens"] for r in on} == {16}
    # turn k reads turn k-1's prompt back from the slot's cache: nearly all of it, since llama.cpp may
    # re-evaluate a few tokens at the end of the reused prefix (CI saw 339 of 344; the "off" run reads 0)
    for before, after in zip(on, on[1:]):
        assert after["cached_tokens"] >= 0.9 * before["prompt_tokens"], (before, after)
    off = run(tmp_path, cli_db, "off")
    assert [r["outcome"] for r in off] == ["ok"] * 4
    assert all(not r["cached_tokens"] for r in off), [r["cached_tokens"] for r in off]

"""``orbench check``: re-score a stored run with a suite's current checks.

Only stored answers are read (output text, tool calls, latency, cost); nothing is
sent to the benchmarked models. Judge checks, if any, call the judge model.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.api.client import OpenRouterClient, RetryPolicy
from bench.api.http import build_http_client
from bench.config import Settings
from bench.errors import ConfigError
from bench.quality import checks as checks_mod
from bench.quality.judge import JudgeLedger, make_judge_fn
from bench.records import ToolCall
from bench.results.report import current_rows
from bench.store.store import Store
from bench.suites.parse import load_suite


def stored_tool_calls(text: str | None) -> list[ToolCall]:
    if not text:
        return []
    return [ToolCall(i, c.get("id"), c.get("name"), c.get("arguments") or "")
            for i, c in enumerate(json.loads(text))]


async def rescore_run(settings: Settings, store: Store, suite_path: Path, run_id: str) -> int:
    suite = load_suite(suite_path)
    cases = {c.case_id: c for c in suite.expand_cases()}
    frame = current_rows(store.requests_frame(run_id))
    missing = sorted(set(frame["case_id"].to_list()) - set(cases)) if frame.height else []
    if missing:
        raise ConfigError(f"{suite_path}: run {run_id} has cases the suite lacks: {', '.join(missing[:5])}")
    ledger = JudgeLedger()
    http = build_http_client(settings, 2)
    client = OpenRouterClient(http, api_key=settings.api_key, retry=RetryPolicy())
    judge_fn = make_judge_fn(client, suite.judge.model, ledger)
    updates: list[tuple[int, int, bool | None, float | None, str | None]] = []
    try:
        for row in frame.iter_rows(named=True):
            case = cases[row["case_id"]]
            if row["outcome"] != "ok" or not case.checks:
                updates.append((row["request_idx"], row["session"], None, None, None))
                continue
            outcome = await checks_mod.evaluate_row(
                case.checks, output_text=row["output_text"],
                tool_calls=stored_tool_calls(row["tool_calls_json"]),
                ttft_ms=row["ttft_ms"], e2e_ms=row["e2e_ms"], cost_usd=row["cost_usd"],
                list_cost_usd=row["list_cost_usd"], completion_tokens=row["completion_tokens"],
                threshold=case.pass_threshold, judge_fn=judge_fn,
            )
            updates.append((row["request_idx"], row["session"], outcome.passed, outcome.score,
                            checks_mod.results_json(outcome)))
    finally:
        await client.aclose()
    store.update_checks(run_id, updates)
    if ledger.calls:
        store.add_judge_cost(run_id, ledger.calls, ledger.prompt_tokens, ledger.completion_tokens,
                             ledger.cost_usd)
    return sum(1 for u in updates if u[2] is not None)

"""The ``judge`` check: another model grades an answer against a rubric.

The judge's own tokens and cost are recorded separately from the benchmarked
request (they go into the check's detail and the ``judge_cost_usd`` total the
runner keeps), never into the benchmarked row's ``cost_usd``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bench.checks import JudgeSpec, JudgeVerdict
from bench.errors import BenchError

JUDGE_SYSTEM = (
    "You grade an answer against a rubric. Reply with JSON only: "
    '{"score": <number from 0 to 1>, "reason": "<one short sentence>"}'
)
_SCORE_RE = re.compile(r'"?score"?\s*[:=]\s*([0-9]*\.?[0-9]+)')


@dataclass
class JudgeLedger:
    """What judging cost, kept apart from the benchmarked requests."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    log: list[dict[str, Any]] = field(default_factory=list)


def parse_verdict(text: str) -> JudgeVerdict:
    """Read ``{"score": x, "reason": ...}``; tolerate prose around it."""
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            obj = json.loads(text[start:end + 1])
            score = float(obj["score"])
            return JudgeVerdict(min(1.0, max(0.0, score)), str(obj.get("reason", ""))[:300])
        except (ValueError, KeyError, TypeError):
            pass
    m = _SCORE_RE.search(text)
    if m:
        return JudgeVerdict(min(1.0, max(0.0, float(m.group(1)))), "score read from free text")
    raise BenchError(f"the judge did not return a score: {text[:120]!r}")


def make_judge_fn(client: Any, default_model: str | None, ledger: JudgeLedger) -> Any:
    """An async ``judge_fn(spec, answer) -> JudgeVerdict`` for ``checks.evaluate_checks_async``."""

    async def judge(spec: JudgeSpec, answer: str) -> JudgeVerdict:
        model = spec.model or default_model
        if not model:
            raise BenchError("judge check without a judge model (set judge.model in the suite)")
        body = {
            "model": model,
            "stream": False,
            "temperature": 0,
            "max_tokens": 200,
            "messages": [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": f"Rubric:\n{spec.rubric}\n\nAnswer:\n{answer}"},
            ],
        }
        res = await client.chat(body, stream=False, timeout_s=120)
        ledger.calls += 1
        if res.usage is not None:
            ledger.prompt_tokens += res.usage.prompt_tokens or 0
            ledger.completion_tokens += res.usage.completion_tokens or 0
            ledger.cost_usd += res.usage.cost_usd or Decimal(0)
        ledger.log.append({"model": res.served_model or model, "generation_id": res.generation_id,
                           "cost_usd": None if res.usage is None or res.usage.cost_usd is None
                           else str(res.usage.cost_usd)})
        return parse_verdict(res.content)

    return judge

"""The ``judge`` check: another model grades an answer against a rubric.

The judge's own tokens and cost are recorded separately from the benchmarked
request: on the scored row's ``judge_*`` columns during a run (inside the
budget), on the run's ``judge_*`` totals when ``orbench check`` re-scores; never
in the benchmarked row's ``cost_usd``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bench.api.catalog import Pricing, list_cost_usd
from bench.api.ceiling import maybe_billed, request_ceiling
from bench.errors import BenchError, ProviderError
from bench.quality.checks import JudgeVerdict
from bench.records import ChatResult
from bench.suites.checks import JudgeSpec

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


def make_judge_fn(client: Any, default_model: str | None, ledger: JudgeLedger,
                  pricing_for: Callable[[str], Pricing | None] | None = None) -> Any:
    """An async ``judge_fn(spec, answer, money=None) -> JudgeVerdict`` for the checks.

    With ``money`` (the runner's ``RowMoney``) each call reserves its worst case
    against the run's budget and journals it on the scored row before it is sent
    (retries reserve and journal again), then books what it cost there, journaled
    at once: a kill while the call is on the wire leaves its worst case on record. A call the budget cannot
    cover is not made: the check is recorded as not evaluated, with the reason.
    """

    async def judge(spec: JudgeSpec, answer: str, money: Any = None) -> JudgeVerdict:
        model = spec.model or default_model
        if not model:
            raise BenchError("judge check without a judge model (set judge.model in the suite)")
        body = {
            "model": model,
            "stream": False,
            "temperature": 0,
            "max_tokens": JUDGE_MAX_TOKENS,
            "messages": [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": f"Rubric:\n{spec.rubric}\n\nAnswer:\n{answer}"},
            ],
        }
        pricing = pricing_for(model) if pricing_for is not None else None
        book = None
        if money is not None:
            ceiling = request_ceiling(pricing, body, JUDGE_MAX_TOKENS) if pricing is not None else None
            book = money.reserve(ceiling)
            if book is None:
                why = (f"no price known for {model}" if ceiling is None
                       else f"its worst case ${ceiling} would cross the budget")
                raise BenchError(f"judge not called: {why}")
        res = await _judge_call(client, body, book, money)
        ledger.calls += 1
        usage = res.usage
        if usage is not None:
            ledger.prompt_tokens += usage.prompt_tokens or 0
            ledger.completion_tokens += usage.completion_tokens or 0
            ledger.cost_usd += usage.cost_usd or Decimal(0)
        if money is not None and book is not None:
            money.book(book, _judge_cost(res, pricing), usage.prompt_tokens if usage else None,
                       usage.completion_tokens if usage else None)
        ledger.log.append({"model": res.served_model or model, "generation_id": res.generation_id,
                           "cost_usd": None if usage is None or usage.cost_usd is None
                           else str(usage.cost_usd)})
        return parse_verdict(res.content)

    return judge


JUDGE_MAX_TOKENS = 200


async def _judge_call(client: Any, body: dict[str, Any], book: Any, money: Any) -> Any:
    """One judge request; with a booking, every retry reserves again and a failure is booked."""
    if book is None:
        return await client.chat(body, stream=False, timeout_s=120)

    def before_retry(err: ProviderError) -> bool:
        if not money.reserve_retry(book):  # the retry's worst case is journaled before it goes out
            return False  # err is the final attempt: booked once when the call ends
        book.failed_attempt(maybe_billed(err))
        return True

    try:
        return await client.chat(body, stream=False, timeout_s=120, before_retry=before_retry)
    except ProviderError as exc:
        money.book(book, None, None, None, billed=maybe_billed(exc))
        raise
    except BaseException:  # cancelled in flight: its worst case stays booked
        money.book(book, None, None, None)
        raise


def _judge_cost(res: ChatResult, pricing: Pricing | None) -> Decimal | None:
    """Reported cost, else the list price of the tokens; None (= the worst case) when neither is known."""
    usage = res.usage
    if usage is None:
        return None
    if usage.cost_usd is not None:
        return usage.cost_usd
    if pricing is not None and usage.prompt_tokens is not None and usage.completion_tokens is not None:
        return list_cost_usd(pricing, usage.prompt_tokens, usage.completion_tokens)
    return None

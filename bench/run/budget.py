"""Spend control: reported spend plus every reservation in flight never passes the budget.

Each *attempt* reserves its worst case before it is sent: the first attempt when
the request is dispatched, every retry again before it goes out (a retry that does
not fit is not made). When a request ends, its reservations are released and what
it really put at risk is booked (``AttemptBook``): the reported cost (else the list
cost) of the final attempt, and the worst case of every attempt whose cost cannot
be known (a stream that started and then failed, a timeout, a cancellation). An
attempt the server refused with an HTTP error status before any stream is booked
at zero. Judge calls reserve and book the same way.

The worst case of one attempt is ``bench.api.ceiling.request_ceiling``. Before a run,
``price_plan`` sums it over the plan (plus the judge calls' worst case) and
``check_budget`` refuses a plan that could cross ``--budget`` or the key's limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from bench.api.catalog import Model, Pricing, find_model, list_cost_usd
from bench.api.ceiling import BOUND_DERIVATION, prompt_bound, request_ceiling
from bench.errors import BudgetRefused
from bench.quality.judge import JUDGE_MAX_TOKENS, JUDGE_SYSTEM
from bench.records import ChatResult
from bench.run import conversation as conversation_mod
from bench.run.plan import PlannedRequest, Target
from bench.run.spec import Prepared
from bench.run.targets import endpoint_pricing
from bench.suites.model import OPENROUTER, Suite


@dataclass
class Budget:
    limit_usd: Decimal | None
    spent_usd: Decimal = Decimal(0)
    reserved_usd: Decimal = Decimal(0)
    unknown_cost_requests: int = field(default=0)

    def try_reserve(self, ceiling_usd: Decimal | None) -> bool:
        """Reserve one attempt's ceiling; False if it could cross the limit."""
        if self.limit_usd is None:
            if ceiling_usd is not None:
                self.reserved_usd += ceiling_usd
            return True
        if ceiling_usd is None:
            # No price known (variable-price router, unpriced endpoint): without a
            # ceiling we cannot promise the budget holds, so such requests are refused.
            self.unknown_cost_requests += 1
            return False
        if self.spent_usd + self.reserved_usd + ceiling_usd > self.limit_usd:
            return False
        self.reserved_usd += ceiling_usd
        return True

    def settle(self, reserved_usd: Decimal, spent_usd: Decimal) -> None:
        """Release reservations and book what the attempts really put at risk."""
        self.reserved_usd -= reserved_usd
        self.spent_usd += spent_usd

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.limit_usd is None:
            return None
        return self.limit_usd - self.spent_usd - self.reserved_usd


@dataclass
class AttemptBook:
    """The reservations and the money at risk of one request's attempts (or one judge call)."""

    budget: Budget
    ceiling_usd: Decimal | None
    reserved_usd: Decimal = Decimal(0)
    at_risk_usd: Decimal = Decimal(0)  # failed attempts whose cost cannot be known
    attempts: int = 0
    settled: bool = False

    def reserve(self) -> bool:
        """Reserve the next attempt; False when it would cross the budget."""
        if not self.budget.try_reserve(self.ceiling_usd):
            return False
        self.attempts += 1
        self.reserved_usd += self.ceiling_usd or Decimal(0)
        return True

    def failed_attempt(self, maybe_billed: bool) -> None:
        if maybe_billed:
            self.at_risk_usd += self.ceiling_usd or Decimal(0)

    def close(self, final_cost_usd: Decimal | None, final_maybe_billed: bool = True) -> Decimal:
        """Book the final attempt (its known cost, else its worst case) and release; returns the spend."""
        if self.settled:
            return self.at_risk_usd
        if final_cost_usd is not None:
            self.at_risk_usd += final_cost_usd
        elif final_maybe_billed and self.attempts:
            self.at_risk_usd += self.ceiling_usd or Decimal(0)
        self.budget.settle(self.reserved_usd, self.at_risk_usd)
        self.settled = True
        return self.at_risk_usd


def _pricing_for(target: Target, models: dict[str, Model], suite: Suite) -> Pricing | None:
    if target.endpoint != OPENROUTER:
        return endpoint_pricing(suite, target.endpoint)
    m = models.get(target.model)
    return None if m is None else m.pricing


def price_plan(
    plan: list[PlannedRequest], models: dict[str, Model], suite: Suite
) -> tuple[Decimal | None, list[str]]:
    """Reserve each request's true worst case (``ceiling.request_ceiling``); sum them."""
    total = Decimal(0)
    unpriced: set[str] = set()
    for item in plan:
        item.max_cost_usd, priced = item_ceiling(item, models, suite)
        if not priced:
            unpriced.add(item.target.model)
        elif item.max_cost_usd is not None:
            total += item.max_cost_usd
    return (None if unpriced else total), sorted(unpriced)


def item_ceiling(item: PlannedRequest, models: dict[str, Model], suite: Suite) -> tuple[Decimal | None, bool]:
    """(one attempt's worst case, whether it could be priced); a synthetic prompt not built yet
    is priced at its byte bound, a conversation turn with its history at its bound
    (``bench.run.conversation.bound_body``)."""
    pricing = _pricing_for(item.target, models, suite)
    max_tokens = item.max_tokens
    if max_tokens is None:
        m = models.get(item.target.model)
        max_tokens = (m.top_provider_max_completion_tokens or m.context_length) if m else None
    if pricing is None or pricing.variable or max_tokens is None:
        if item.target.endpoint != OPENROUTER and pricing is None:
            return Decimal(0), True  # a local server with no prices costs nothing
        return None, False
    ceiling = request_ceiling(pricing, conversation_mod.bound_body(item), max_tokens)
    return ceiling, ceiling is not None


def judge_estimate(prep: Prepared) -> tuple[Decimal | None, str | None]:
    """Worst case of the judge calls: one per judge check of every measured ok answer.

    The answer's length is bounded by its max_tokens at 16 bytes a token for this
    estimate; during the run each call reserves its exact worst case before it is sent.
    """
    cases = {c.case_id: c.checks for c in prep.suite.expand_cases()}
    turns = {(c.id, k): checks for c in prep.suite.conversations for k, checks in enumerate(c.checks, 1)}
    total, calls = Decimal(0), 0
    for item in prep.plan:
        turn = (item.conversation or {}).get("turn")
        checks = cases.get(item.case_id) if turn is None else turns.get((item.case_id, turn))
        if item.is_warmup or not checks:
            continue
        for check in checks:
            if check.kind != "judge":
                continue
            model = check.arg.model or prep.suite.judge.model
            found = find_model(prep.catalog, model) if model else None
            if found is None or found.pricing.variable:
                return None, model
            answer_bytes = 16 * (item.max_tokens or 4096)
            body = {"messages": [{"role": "system", "content": JUDGE_SYSTEM},
                                 {"role": "user", "content": check.arg.rubric + "x" * answer_bytes}]}
            ceiling = request_ceiling(found.pricing, body, JUDGE_MAX_TOKENS)
            if ceiling is None:
                return None, model
            total += ceiling
            calls += 1
    return total, (f"{calls} judge calls" if calls else None)


def bound_lines(prep: Prepared) -> list[str]:
    """Per target: the prompt bound and the worst case of one request, and how they were derived."""
    lines, seen = [BOUND_DERIVATION], set()
    for item in prep.plan:
        if item.target.key in seen or item.is_warmup:
            continue
        seen.add(item.target.key)
        bound = prompt_bound(conversation_mod.bound_body(item))
        images = f" + {bound.images} image(s)" if bound.images else ""
        cost = "unknown (no price)" if item.max_cost_usd is None else f"${item.max_cost_usd:.6f}"
        lines.append(f"  {item.target.model} [{item.target.variant}]: prompt <= {bound.tokens:,} tokens"
                     f"{images}, max_tokens {item.max_tokens}, worst case {cost} per attempt "
                     f"(case {item.case_id})")
    return lines


def check_budget(prep: Prepared) -> None:
    """Refuse a run whose ceiling exceeds --budget (unless --allow-partial) or the key's limit."""
    spec = prep.spec
    if spec.budget_usd is not None and not spec.allow_partial:
        if prep.estimate_usd is None:
            raise BudgetRefused(
                f"cannot guarantee --budget {spec.budget_usd}: no price for "
                f"{', '.join(prep.unpriced)}; use --allow-partial to run what fits"
            )
        if prep.estimate_usd > spec.budget_usd:
            raise BudgetRefused(
                f"estimated worst case ${prep.estimate_usd:.6f} exceeds --budget ${spec.budget_usd}; "
                "raise the budget, lower max_tokens/repeats, or use --allow-partial"
            )
    rem = prep.key_remaining_usd
    if rem is not None and prep.estimate_usd is not None and prep.estimate_usd > Decimal(str(rem)):
        raise BudgetRefused(
            f"estimated worst case ${prep.estimate_usd:.6f} exceeds the key's remaining limit ${rem:.6f}"
        )


# ------------------------------------------------------------------- pricing the answers
def price_fn(prep: Prepared) -> Callable[[Target, ChatResult], tuple[Decimal | None, str | None]]:
    def price(target: Target, res: ChatResult) -> tuple[Decimal | None, str | None]:
        pricing = _pricing_for(target, prep.models, prep.suite)
        u = res.usage
        if pricing is None or u is None or u.prompt_tokens is None or u.completion_tokens is None:
            return None, None
        return list_cost_usd(
            pricing, u.prompt_tokens, u.completion_tokens, cached_tokens=u.cached_tokens or 0,
            cache_write_tokens=u.cache_write_tokens or 0,
        ), None

    return price

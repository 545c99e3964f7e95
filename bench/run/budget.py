"""Spend control: reported spend plus every reservation in flight never passes the budget.

Each *attempt* reserves its worst case before it is sent: the first attempt when
the request is dispatched, every retry again before it goes out (a retry that does
not fit is not made). When a request ends, its reservations are released and what
it really put at risk is booked (``AttemptBook``): the reported cost (else the list
cost) of the final attempt, and the worst case of every attempt whose cost cannot
be known (a stream that started and then failed, a timeout, a cancellation). An
attempt the server refused with an HTTP error status before any stream is booked
at zero. Judge calls reserve and book the same way.

The worst case of one attempt is ``bench.api.ceiling.request_ceiling``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


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

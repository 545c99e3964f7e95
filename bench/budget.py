"""Spend control: a run never lets reported spend plus in-flight ceilings pass the budget.

Before a request is sent its worst case (``max_cost_usd``: prompt estimate at the
prompt price plus ``max_tokens`` at the completion price) is reserved; when it
finishes the reservation is replaced by what it really cost (reported cost, else
list cost, else the reservation itself, to stay on the safe side). A request
whose reservation would cross the budget is not sent and ends ``budget_skipped``.
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
        """Reserve a request's ceiling; False if it could cross the limit."""
        if self.limit_usd is None:
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

    def settle(self, ceiling_usd: Decimal | None, actual_usd: Decimal | None) -> None:
        """Release a reservation and book the actual cost (None = unknown = ceiling)."""
        if self.limit_usd is not None and ceiling_usd is not None:
            self.reserved_usd -= ceiling_usd
        if actual_usd is not None:
            self.spent_usd += actual_usd
        elif ceiling_usd is not None:
            self.spent_usd += ceiling_usd

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.limit_usd is None:
            return None
        return self.limit_usd - self.spent_usd - self.reserved_usd

"""What ``GET /key`` and ``GET /credits`` say about the key and the account, as typed records."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bench.api.catalog import to_decimal


@dataclass
class KeyInfo:
    """``GET /key`` (or the legacy ``/auth/key``): this key's cap and spend, USD."""

    label: str | None
    limit: Decimal | None
    limit_remaining: Decimal | None
    limit_reset: str | None
    usage: Decimal | None
    usage_daily: Decimal | None
    usage_weekly: Decimal | None
    usage_monthly: Decimal | None
    is_free_tier: bool | None
    is_management_key: bool | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_payload(cls, payload: Any) -> KeyInfo:
        d = unwrap_data(payload)
        management = d.get("is_management_key", d.get("is_provisioning_key"))
        return cls(
            label=d.get("label") if isinstance(d.get("label"), str) else None,
            limit=to_decimal(d.get("limit")),
            limit_remaining=to_decimal(d.get("limit_remaining")),
            limit_reset=d.get("limit_reset") if isinstance(d.get("limit_reset"), str) else None,
            usage=to_decimal(d.get("usage")),
            usage_daily=to_decimal(d.get("usage_daily")),
            usage_weekly=to_decimal(d.get("usage_weekly")),
            usage_monthly=to_decimal(d.get("usage_monthly")),
            is_free_tier=_bool(d.get("is_free_tier")),
            is_management_key=_bool(management),
            raw=d,
        )


@dataclass
class Credits:
    """``GET /credits``: account-wide USD purchased and used (management key only)."""

    total_credits: Decimal | None
    total_usage: Decimal | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def balance(self) -> Decimal | None:
        if self.total_credits is None or self.total_usage is None:
            return None
        return self.total_credits - self.total_usage

    @classmethod
    def from_payload(cls, payload: Any) -> Credits:
        d = unwrap_data(payload)
        return cls(to_decimal(d.get("total_credits")), to_decimal(d.get("total_usage")), raw=d)


def unwrap_data(payload: Any) -> dict[str, Any]:
    if isinstance(payload, dict):
        inner = payload.get("data", payload)
        return inner if isinstance(inner, dict) else {}
    return {}


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None

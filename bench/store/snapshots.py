"""Catalog price and credit balance snapshots (``catalog_snapshots``/``catalog_prices``,
``credit_snapshots``); ``SnapshotTables`` is mixed into ``bench.store.store.Store``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import polars as pl

from bench.records import PRICE_KEYS
from bench.store.connection import StoreBase, _quoted
from bench.store.runs import redact_url, utcnow

PRICE_FIELDS = PRICE_KEYS  # the one list (bench.records); m015 added web_search to catalog_prices


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _price_frame(snapshot_id: str, models: Sequence[Any]) -> pl.DataFrame:
    """Model-level price rows (provider NULL), money as exact text for DuckDB to cast."""
    records = []
    for m in models:
        pricing = getattr(m, "pricing", None)
        record: dict[str, Any] = {
            "snapshot_id": snapshot_id,
            "model_id": m.id,
            "canonical_slug": getattr(m, "canonical_slug", None),
            "provider": None,
        }
        for name in PRICE_FIELDS:
            record[name] = _money(getattr(pricing, name, None))
        for name in ("variable", "context_length"):
            record[name] = getattr(m, name, getattr(pricing, name, None))
        records.append(record)
    schema = {
        "snapshot_id": pl.String, "model_id": pl.String, "canonical_slug": pl.String,
        "provider": pl.String, **{n: pl.String for n in PRICE_FIELDS},
        "variable": pl.Boolean, "context_length": pl.Int64,
    }  # fmt: skip
    return pl.DataFrame(records, schema=schema)


class SnapshotTables(StoreBase):
    """Catalog prices and credit balances as they were read."""

    # -- catalog and credits -------------------------------------------------------

    def save_catalog_snapshot(
        self, models: Sequence[Any], base_url: str, simulated: bool = False
    ) -> str:
        """Store one catalog fetch (model-level prices) and return its snapshot id.

        Duck-typed: each model has .id, .canonical_slug, .pricing (Decimal fields
        PRICE_FIELDS) and .variable/.context_length (on the model or its pricing).
        """
        taken_at = utcnow()
        snapshot_id = f"cat-{taken_at:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        prices = _price_frame(snapshot_id, models)
        self._ensure_ready()
        with self._writing() as con:

            def insert() -> None:
                con.execute(
                    "INSERT INTO catalog_snapshots VALUES (?, ?, ?, ?, ?)",
                    [snapshot_id, taken_at, redact_url(base_url), simulated, len(models)],
                ).fetchall()
                con.register("_orbench_prices", prices)
                con.execute(
                    f"INSERT INTO catalog_prices ({_quoted(prices.columns)}) "
                    f"SELECT {_quoted(prices.columns)} FROM _orbench_prices"
                ).fetchall()
                con.unregister("_orbench_prices")

            self._in_transaction(con, insert)
        return snapshot_id

    def catalog_prices(self, snapshot_id: str) -> pl.DataFrame:
        return self._read(
            "SELECT * FROM catalog_prices WHERE snapshot_id = ? ORDER BY model_id, provider NULLS FIRST",
            [snapshot_id],
        )

    def catalog_snapshots(self) -> pl.DataFrame:
        return self._read("SELECT * FROM catalog_snapshots ORDER BY taken_at DESC")

    def save_credit_snapshot(
        self,
        *,
        source: str,
        label: str | None = None,
        limit_usd: Decimal | None = None,
        limit_remaining_usd: Decimal | None = None,
        usage_usd: Decimal | None = None,
        total_credits_usd: Decimal | None = None,
        total_usage_usd: Decimal | None = None,
        run_id: str | None = None,
        taken_at: datetime | None = None,
    ) -> None:
        """Record a balance reading from /key or /credits (money as Decimal)."""
        money = [limit_usd, limit_remaining_usd, usage_usd, total_credits_usd, total_usage_usd]
        self._write(
            "INSERT INTO credit_snapshots (taken_at, source, label, limit_usd, limit_remaining_usd, "
            "usage_usd, total_credits_usd, total_usage_usd, run_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [taken_at or utcnow(), source, label, *map(_money, money), run_id],
        )

    def credit_snapshots(self) -> pl.DataFrame:
        return self._read("SELECT * FROM credit_snapshots ORDER BY taken_at")

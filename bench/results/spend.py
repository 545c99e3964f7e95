"""Money over time: list prices per catalog snapshot, and billed and list USD per run or model."""

from __future__ import annotations

import polars as pl

from bench.store.store import Store


def price_history(store: Store, model_id: str) -> pl.DataFrame:
    """Model-level list prices per stored catalog snapshot, USD per 1M tokens, long format."""
    frame = store.query(
        """
        SELECT s.taken_at, s.simulated,
               CAST(p.prompt * 1000000 AS DOUBLE) AS prompt,
               CAST(p.completion * 1000000 AS DOUBLE) AS completion
        FROM catalog_prices AS p JOIN catalog_snapshots AS s USING (snapshot_id)
        WHERE (p.model_id = $model OR p.canonical_slug = $model) AND p.provider IS NULL
              AND NOT coalesce(p.variable, false)
        ORDER BY s.taken_at
        """,
        {"model": model_id},
    )
    if frame.is_empty():
        return pl.DataFrame(schema={"taken_at": pl.Datetime("us", "UTC"), "kind": pl.String,
                                    "usd_per_m": pl.Float64, "simulated": pl.Boolean})
    return frame.unpivot(index=["taken_at", "simulated"], on=["prompt", "completion"],
                         variable_name="kind", value_name="usd_per_m")


def spend_by(store: Store, key: str) -> pl.DataFrame:
    """Billed and list USD per run (``key="run"``) or per model (``"model"``), warm-ups included."""
    if key == "run":
        sql = """
            SELECT q.run_id, coalesce(r.name, q.run_id) AS name, r.simulated,
                   coalesce(r.started_at, r.created_at) AS started_at,
                   q.requests, q.billed_usd, q.list_usd
            FROM (SELECT run_id, count(*) AS requests, sum(cost_usd) AS billed_usd,
                         sum(list_cost_usd) AS list_usd
                  FROM requests GROUP BY run_id) AS q
            LEFT JOIN runs AS r USING (run_id)
            ORDER BY started_at DESC NULLS LAST, q.run_id DESC
        """
    elif key == "model":
        sql = """
            SELECT model, count(*) AS requests, sum(cost_usd) AS billed_usd,
                   sum(list_cost_usd) AS list_usd
            FROM requests GROUP BY model ORDER BY billed_usd DESC NULLS LAST, model
        """
    else:
        raise ValueError(f"spend_by: unknown key {key!r}")
    return store.query(sql)


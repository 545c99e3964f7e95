"""The Trends page's series: per tick and model x provider, each metric's median with its interval
band and the rolling median of the per-tick medians; and the ticks at which a listed price changed.

Read-only, one query each over the monitor's runs (``runs.monitor``) and their request rows; the
incident rules and windows live in ``bench.results.trends``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from bench.results.trends import SENT

_SERIES = """
WITH t AS (
    SELECT r.run_id, r.monitor, r.monitor_tick AS tick, coalesce(r.started_at, r.created_at) AS started_at,
           coalesce(r.origin, 'unknown') AS origin
    FROM runs AS r WHERE r.monitor IS NOT NULL AND ($monitor IS NULL OR r.monitor = $monitor)
      AND coalesce(r.started_at, r.created_at) >= $since
), g AS (
    SELECT t.monitor, t.origin, t.tick, t.started_at, q.model, q.provider_variant AS provider,
           count(*) FILTER (WHERE q.outcome IN (SELECT unnest($sent))) AS n,
           count(*) FILTER (WHERE q.outcome = 'ok') AS n_ok,
           avg(CAST(q.passed AS DOUBLE)) FILTER (WHERE q.outcome = 'ok') AS pass_rate,
           list(q.ttft_ms ORDER BY q.ttft_ms) FILTER (WHERE q.outcome = 'ok' AND q.ttft_ms IS NOT NULL) AS ttft,
           list(q.e2e_ms ORDER BY q.e2e_ms) FILTER (WHERE q.outcome = 'ok' AND q.e2e_ms IS NOT NULL) AS e2e,
           list(q.decode_tps ORDER BY q.decode_tps)
               FILTER (WHERE q.outcome = 'ok' AND q.decode_tps IS NOT NULL) AS tps
    FROM requests AS q JOIN t ON t.run_id = q.run_id
    WHERE NOT q.is_warmup
    GROUP BY ALL
)
SELECT monitor, origin, tick, started_at, model, provider, n, n_ok, pass_rate,
       CASE WHEN n > 0 THEN 1 - n_ok / n END AS error_rate,
       {metrics}
FROM g ORDER BY monitor, origin, model, provider, tick
"""
# The median's 95% interval by order statistics (normal approximation of the binomial ranks):
# ranks n/2 -+ 0.98 sqrt(n), clamped to the list; the exact ranks of stats.order_statistic_ranks
# differ by at most one at the sizes a tick has.
_MEDIAN_BAND = """
    CASE WHEN len({col}) > 0 THEN (list_extract({col}, CAST(floor((len({col}) + 1) / 2.0) AS BIGINT))
        + list_extract({col}, CAST(ceil((len({col}) + 1) / 2.0) AS BIGINT))) / 2.0 END AS {name}_p50,
    list_extract({col}, greatest(1, CAST(floor(len({col}) / 2.0 - 0.98 * sqrt(len({col}))) AS BIGINT))) AS {name}_lo,
    list_extract({col}, least(len({col}), CAST(ceil(len({col}) / 2.0 + 1 + 0.98 * sqrt(len({col}))) AS BIGINT)))
        AS {name}_hi"""
SERIES_METRICS = (("ttft", "ttft_ms"), ("e2e", "e2e_ms"), ("tps", "decode_tps"))


def tick_series(store: Any, monitor: str | None, since: datetime, rolling: str = "72h") -> pl.DataFrame:
    """Per tick and model x provider x origin: n, error rate, pass rate, and per metric the median
    with its interval band plus the rolling median of the per-tick medians over ``rolling`` (long
    format: one row per tick x target x metric). ``origin`` is where the tick ran: one value on a
    machine's own file, several on a team store's cache (the same monitor run from two regions)."""
    metrics = ",".join(_MEDIAN_BAND.format(col=col, name=name) for col, name in SERIES_METRICS)
    wide = store.query(_SERIES.format(metrics=metrics), {"monitor": monitor, "since": since, "sent": list(SENT)})
    if wide.is_empty():
        return pl.DataFrame(schema={"monitor": pl.String, "origin": pl.String, "tick": pl.Int32,
                                    "started_at": pl.Datetime("us", "UTC"), "model": pl.String,
                                    "provider": pl.String, "metric": pl.String,
                                    "p50": pl.Float64, "lo": pl.Float64, "hi": pl.Float64, "rolling_p50": pl.Float64,
                                    "n": pl.Int64, "error_rate": pl.Float64, "pass_rate": pl.Float64})
    parts = []
    for _, name in SERIES_METRICS:
        parts.append(wide.select(
            "monitor", "origin", "tick", "started_at", "model", "provider", "n", "error_rate", "pass_rate",
            pl.lit(name).alias("metric"), pl.col(f"{name}_p50").cast(pl.Float64).alias("p50"),
            pl.col(f"{name}_lo").cast(pl.Float64).alias("lo"), pl.col(f"{name}_hi").cast(pl.Float64).alias("hi")))
    long = pl.concat(parts).sort("monitor", "origin", "model", "provider", "metric", "started_at")
    rolled = long.with_columns(
        pl.col("p50").rolling_median_by("started_at", window_size=rolling).over(
            "monitor", "origin", "model", "provider", "metric").alias("rolling_p50"))
    result: pl.DataFrame = rolled.select("monitor", "origin", "tick", "started_at", "model", "provider", "metric",
                                         "p50", "lo", "hi", "rolling_p50", "n", "error_rate", "pass_rate")
    return result


def price_changes(store: Any, monitor: str | None) -> pl.DataFrame:
    """Ticks at which a provider's listed price changed (for the price-change marks)."""
    frame: pl.DataFrame = store.query(
        """
        SELECT c.monitor, c.tick, c.model, c.provider, c.prompt, c.completion,
               coalesce(r.started_at, r.created_at) AS started_at
        FROM (SELECT *, lag(prompt) OVER w AS prev_prompt, lag(completion) OVER w AS prev_completion
              FROM monitor_catalog WHERE $monitor IS NULL OR monitor = $monitor
              WINDOW w AS (PARTITION BY monitor, model, provider ORDER BY tick)) AS c
        JOIN runs AS r ON r.monitor = c.monitor AND r.monitor_tick = c.tick
        WHERE c.prev_prompt IS NOT NULL AND (c.prompt <> c.prev_prompt OR c.completion <> c.prev_completion)
        ORDER BY c.tick
        """, {"monitor": monitor})
    return frame

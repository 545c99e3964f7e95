#!/usr/bin/env python3
"""Seed a monitor's history: TICKS ticks every 30 minutes (default a year: 17,520 ticks of ~100
requests, ~1.75M rows), for timing the Trends page, ``orbench trends`` and the other pages.

The schema comes from the store's own migrations; runs, ticks and requests are generated inside
DuckDB from ``range()`` (as scripts/seed_big_db.py does). Two targets of one model (``groq``,
``together``), 50 requests each per tick; TTFT is log-normal with a daily cycle; ``groq`` has a
x1.5 latency step for a day in the middle of the history and ``together`` an outage of three
ticks, both recorded as incidents (opened and recovered); the endpoint list of every tick is in
``monitor_catalog``, with one price change. Every run is marked simulated: invented numbers.

    .venv/bin/python scripts/seed_monitor_history.py data/year.duckdb             # a year
    .venv/bin/python scripts/seed_monitor_history.py data/week.duckdb --ticks 336  # a week
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.store.migrations import migrate  # noqa: E402

MONITOR = "watch"
MODEL = "meta-llama/llama-3.3-70b-instruct"
PER_TARGET = 50
PERIOD = timedelta(minutes=30)

_RUNS = """
INSERT INTO runs (run_id, name, suite_name, settings, status, created_at, started_at, finished_at, simulated,
                  planned, monitor, monitor_tick)
SELECT 'tick-' || lpad(CAST(k AS VARCHAR), 6, '0'), 'monitor watch tick ' || k, 'watch', '{"seeded": true}',
       'finished', $t0 + to_minutes(CAST((k - 1) * 30 AS BIGINT)), $t0 + to_minutes(CAST((k - 1) * 30 AS BIGINT)),
       $t0 + to_minutes(CAST((k - 1) * 30 AS BIGINT)) + INTERVAL 20 SECOND, true, $per_tick, $monitor, k
FROM range(1, $ticks + 1) AS t(k)
"""
_TICKS = """
INSERT INTO monitor_ticks (monitor, tick, status, run_id, started_at, finished_at)
SELECT $monitor, k, 'finished', 'tick-' || lpad(CAST(k AS VARCHAR), 6, '0'),
       $t0 + to_minutes(CAST((k - 1) * 30 AS BIGINT)),
       $t0 + to_minutes(CAST((k - 1) * 30 AS BIGINT)) + INTERVAL 20 SECOND
FROM range(1, $ticks + 1) AS t(k)
"""
_REQUESTS = """
INSERT INTO requests BY NAME
WITH base AS (
    SELECT i, i // $per_tick + 1 AS k, i % $per_tick AS idx, (i % $per_tick) % 2 AS v,
           random() AS u1, random() AS u2, random() AS u3, random() AS u4
    FROM range($rows) AS t(i)
), shaped AS (
    SELECT *, CASE v WHEN 0 THEN 'groq' ELSE 'together' END AS variant,
           CASE v WHEN 0 THEN 'Groq (simulated)' ELSE 'Together (simulated)' END AS served,
           CASE v WHEN 0 THEN 220.0 ELSE 600.0 END
             * (1 + 0.15 * sin(2 * pi() * ((k - 1) % 48) / 48.0))                     -- time of day
             * CASE WHEN v = 0 AND k BETWEEN $slow_from AND $slow_to THEN 1.5 ELSE 1 END AS base_ms,
           CASE WHEN v = 1 AND k BETWEEN $down_from AND $down_to THEN 'provider_error'
                WHEN u3 < 0.005 THEN 'timeout' ELSE 'ok' END AS outcome,
           sqrt(-2 * ln(greatest(u1, 1e-12))) * cos(2 * pi() * u2) AS z
    FROM base
)
SELECT 'tick-' || lpad(CAST(k AS VARCHAR), 6, '0') AS run_id, idx AS request_idx, $model AS model,
       variant AS provider_variant, 'openrouter' AS endpoint, 'case-' || (idx // 2) % 5 AS case_id,
       CAST(idx // 10 AS BIGINT) AS repeat, false AS is_warmup, outcome, $model AS served_model,
       CASE WHEN outcome = 'ok' THEN served END AS provider,
       CASE outcome WHEN 'ok' THEN 200 WHEN 'timeout' THEN NULL ELSE 503 END AS http_status, 1 AS attempts,
       $t0 + to_minutes(CAST((k - 1) * 30 AS BIGINT)) + to_milliseconds(CAST(idx * 150 AS BIGINT)) AS started_at,
       CASE WHEN outcome = 'ok' THEN base_ms * exp(0.25 * z) END AS ttft_ms,
       CASE WHEN outcome = 'ok' THEN base_ms * exp(0.25 * z) END AS ttfa_ms,
       CASE WHEN outcome = 'ok' THEN base_ms * exp(0.25 * z) + 11 * 1000.0 / (CASE v WHEN 0 THEN 400 ELSE 80 END
            * (0.9 + 0.2 * u4)) END AS e2e_ms,
       CASE WHEN outcome = 'ok' THEN (CASE v WHEN 0 THEN 400 ELSE 80 END) * (0.9 + 0.2 * u4) END AS decode_tps,
       CASE WHEN outcome = 'ok' THEN 40 END AS prompt_tokens, CASE WHEN outcome = 'ok' THEN 12 END AS completion_tokens,
       CASE WHEN outcome = 'ok' THEN 'usage' END AS token_source,
       CASE WHEN outcome = 'ok' THEN CAST(0.0000098 AS DECIMAL(38,18)) END AS cost_usd,
       CASE WHEN outcome = 'ok' THEN 'reported' END AS cost_source,
       CASE WHEN outcome = 'ok' THEN u4 > 0.02 END AS passed
FROM shaped
"""
_CATALOG = """
INSERT INTO monitor_catalog
SELECT $monitor, k, $model, p.tag, CAST(p.prompt AS DECIMAL(38,18))
         * CASE WHEN p.tag = 'together' AND k >= $price_from THEN 1.2 ELSE 1 END,
       CAST(p.completion AS DECIMAL(38,18)), NULL
FROM range(1, $ticks + 1) AS t(k),
     (VALUES ('groq', '0.00000059', '0.00000079'), ('together', '0.00000088', '0.00000088'))
         AS p(tag, prompt, completion)
"""


def seed(path: Path, ticks: int, per_target: int = PER_TARGET, now: datetime | None = None) -> dict[str, float]:
    """Create ``path`` (replacing it) with a monitor whose last tick is ~now."""
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)
    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    t0 = end - PERIOD * (ticks - 1)
    per_tick = 2 * per_target
    mid = max(4, ticks // 2)
    params = {"monitor": MONITOR, "ticks": ticks, "t0": t0, "per_tick": per_tick}
    events = {"slow_from": mid, "slow_to": mid + 47, "down_from": mid + 100, "down_to": mid + 102,
              "price_from": max(2, ticks - 96)}
    timings: dict[str, float] = {}
    t = time.perf_counter()
    con = duckdb.connect(str(path))
    try:
        migrate(con, path)
        con.execute("INSERT INTO monitors (name, suite_path, options, every_s, jitter, next_tick_at) "
                    "VALUES (?, 'watch.yaml', '{}', 1800, 0, ?)", [MONITOR, end + PERIOD]).fetchall()
        con.execute(_RUNS, params).fetchall()
        con.execute(_TICKS, {k: v for k, v in params.items() if k != "per_tick"}).fetchall()
        con.execute("SELECT setseed(0.22)").fetchall()
        con.execute(_REQUESTS, {"rows": ticks * per_tick, "per_tick": per_tick, "t0": t0, "model": MODEL,
                                **{k: v for k, v in events.items() if k != "price_from"}}).fetchall()
        con.execute(_CATALOG, {"monitor": MONITOR, "ticks": ticks, "model": MODEL,
                               "price_from": events["price_from"]}).fetchall()
        _incidents(con, t0, events)
        con.execute("CHECKPOINT").fetchall()
    finally:
        con.close()
    timings["seed_s"] = time.perf_counter() - t
    return timings


def _incidents(con: duckdb.DuckDBPyConnection, t0: datetime, e: dict[str, int]) -> None:
    def at(k: int) -> datetime:
        return t0 + PERIOD * (k - 1)

    rows = [("inc-seed-1", "latency", "groq", "ttft_ms", e["slow_from"] + 1, e["slow_to"] + 1),
            ("inc-seed-2", "outage", "together", "error_rate", e["down_from"], e["down_to"] + 1)]
    for iid, kind, provider, metric, opened, recovered in rows:
        con.execute("INSERT INTO monitor_incidents (incident_id, monitor, kind, model, provider, metric, opened_tick, "
                    "recovered_tick, opened_at, recovered_at, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [iid, MONITOR, kind, MODEL, provider, metric, opened, recovered, at(opened), at(recovered),
                     json.dumps({"seeded": True})]).fetchall()
    con.execute("INSERT INTO monitor_incidents (incident_id, monitor, kind, model, provider, metric, opened_tick, "
                "opened_at, evidence) VALUES ('inc-seed-3', ?, 'catalog', ?, 'together', 'prompt_price', ?, ?, ?)",
                [MONITOR, MODEL, e["price_from"], at(e["price_from"]),
                 json.dumps({"before": "0.00000088", "after": "0.000001056"})]).fetchall()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default="data/year.duckdb")
    ap.add_argument("--ticks", type=int, default=17_520, help="30-minute ticks (17,520 = a year)")
    ap.add_argument("--per-target", type=int, default=PER_TARGET, help="requests per target per tick")
    args = ap.parse_args(argv)
    path = Path(args.path)
    timings = seed(path, args.ticks, args.per_target)
    rows = args.ticks * args.per_target * 2
    print(f"seeded {args.ticks:,} ticks ({rows:,} request rows) into {path} "
          f"({path.stat().st_size / 1e6:.1f} MB) in {timings['seed_s']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

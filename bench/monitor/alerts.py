"""Alert delivery: one POST when an incident opens and one when it recovers, never per tick.

Pending alerts are the events of this tick (a resumed tick's included) with no delivered
attempt yet; every attempt is recorded in ``alert_deliveries`` (without the URL), so a
restart after a crash delivers what was left and nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import polars as pl

from bench.api import webhook
from bench.monitor.incidents import describe
from bench.results import trends
from bench.store.store import Store


def _text(row: dict[str, Any], event: str) -> str:
    evidence = json.loads(row[f"{'evidence' if event == 'open' else 'recovery_evidence'}"] or "{}")
    decision = trends.Decision("open" if event == "open" else "recover", row["kind"], row["model"],
                               row["provider"], row["metric"], evidence)
    tick = row["opened_tick"] if event == "open" else row["recovered_tick"]
    return describe(decision, row["monitor"], tick)


def pending(store: Store, monitor: str, tick: int) -> list[tuple[dict[str, Any], str]]:
    """(incident row, 'open' | 'recovery') events of ``tick`` not yet delivered."""
    incidents = store.incidents(monitor)
    if incidents.is_empty():
        return []
    delivered = store.deliveries(monitor)
    done = set() if delivered.is_empty() else {
        (r["incident_id"], r["event"]) for r in delivered.filter(pl.col("delivered")).iter_rows(named=True)}
    out = []
    for row in incidents.iter_rows(named=True):
        if row["opened_tick"] == tick and (row["incident_id"], "open") not in done:
            out.append((row, "open"))
        if row["recovered_tick"] == tick and (row["incident_id"], "recovery") not in done:
            out.append((row, "recovery"))
    return out


def deliver_pending(store: Store, monitor: str, tick: int, url: str,
                    note: Callable[[str], None] = lambda _: None, **post: Any) -> int:
    """POST every pending alert of ``tick``; returns how many were delivered."""
    delivered = 0
    for row, event in pending(store, monitor, tick):
        incident = {"event": event, **trends.incidents_json(pl.DataFrame([row]))[0],
                    "monitor": monitor, "incident_id": row["incident_id"]}
        attempts = webhook.post_alert(url, webhook.payload(_text(row, event), incident), **post)
        for a in attempts:
            store.record_delivery(row["incident_id"], event, a.attempt, datetime.now(UTC), a.status_code,
                                  a.error, a.delivered)
        if attempts and attempts[-1].delivered:
            delivered += 1
        else:
            note(f"monitor {monitor}: the {event} alert of incident {row['incident_id']} was not delivered "
                 f"after {len(attempts)} attempts ({attempts[-1].error if attempts else 'none'})")
    return delivered

"""Incidents: apply what ``bench.results.trends.evaluate`` decided after a tick, once.

An incident opens once and recovers once. ``evaluate`` only proposes an opening when no incident
of that kind, target and metric is open, and a recovery only for an open one; ``recover_incident``
also refuses a second recovery, so evaluating the same tick twice (a restart after a crash
between the two) records nothing new.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from bench.results import trends
from bench.store.store import Store


def describe(d: trends.Decision, monitor: str, tick: int) -> str:
    """One line for people (notes, the alert's ``text``)."""
    target = f"{d.model} [{d.provider}]" if d.model else "catalog"
    what = {"open": "opened", "recover": "recovered"}[d.action]
    ev = d.evidence
    detail = ""
    if d.kind == "latency" and ev.get("baseline") is not None and ev.get("latest") is not None:
        detail = f": {d.metric} p50 {ev['baseline']:.1f} -> {ev['latest']:.1f} ({(ev.get('change') or 0):+.0%})"
    elif d.kind == "outage":
        detail = f": error rate {ev.get('error_rate_latest_tick', 0):.0%} in the latest tick"
    elif d.kind == "quality" and ev.get("latest") is not None:
        detail = f": pass rate {ev['baseline']:.0%} -> {ev['latest']:.0%}"
    elif d.kind in ("catalog", "routing"):
        detail = f": {d.metric} {ev.get('before')} -> {ev.get('after', ev.get('value', ev.get('served')))}"
    return f"orbench monitor {monitor}: {d.kind} incident {what} on {target} at tick {tick}{detail}"


def apply(store: Store, monitor: str, tick: int, rules: trends.Rules,
          note: Callable[[str], None] = lambda _: None) -> list[trends.Decision]:
    """Evaluate tick ``tick`` and record its openings and recoveries; returns them."""
    history = trends.read_history(store, monitor, tick, rules)
    decisions = trends.evaluate(history, tick, store.incidents(monitor), rules)
    now = datetime.now(UTC)
    for d in decisions:
        if d.action == "open":
            store.open_incident(f"inc-{uuid.uuid4().hex[:12]}", monitor, kind=d.kind, model=d.model,
                                provider=d.provider, metric=d.metric, tick=tick, at=now, evidence=d.evidence)
        else:
            assert d.incident_id is not None
            store.recover_incident(d.incident_id, tick=tick, at=now, evidence=d.evidence)
        note(describe(d, monitor, tick))
    return decisions

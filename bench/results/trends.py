"""A monitor's history: per-tick figures, windows, changes beyond the noise, and the incident rules.

Read-only, like the rest of bench.results: the scheduler (bench.monitor) asks ``evaluate`` what
opens and what recovers after each tick and records it; ``orbench trends`` and the Trends page read
``trends_json`` and ``tick_series``. METRICS.md "Monitoring" is the contract:

- A tick is one run of a monitor (``runs.monitor`` / ``runs.monitor_tick``), numbered from 1.
- The latest window is the last ``latest_ticks`` ticks; the baseline window the ticks in the
  ``baseline_s`` before it, minus ticks inside an incident of the same kind and target.
- "Beyond the noise" is ``compare``'s test (``bench.results.stats.compare``: bootstrap of the
  difference of medians); a latency incident also needs ``latency_effect`` (default 20%), and
  the latest tick on its own must be that much worse too, so one slow tick in the window cannot
  open it after a recovery. It recovers when the latest tick is within half the effect.
- An outage opens when a tick's requests all fail, or when the error rate over the last
  ``outage_ticks`` ticks is over ``outage_error_rate`` and the latest tick's is too; it recovers
  at the first tick whose error rate is at or under the threshold.
- Quality: the pass rate (ok rows with a check verdict) falls beyond the noise by the same test
  on 0/1 values (means) and by at least ``quality_effect``; it recovers when the latest tick's
  drop is under half of that.
- Catalog (per-tick endpoint lists, m018 ``monitor_catalog``) and routing (the provider that
  served a default-routed target) open on a change and recover when the old value is back, or
  when the new one has held for ``baseline_s`` (it is the new normal).

Targets are (model, provider): the provider is the suite's provider variant (a pinned provider's
name; ``default`` for OpenRouter's own routing).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from bench.results import stats

LATENCY_METRICS = (("ttft_ms", "lower"), ("e2e_ms", "lower"), ("decode_tps", "higher"))
"""Latency figures watched: (column, which direction is better)."""
KINDS = ("latency", "outage", "quality", "catalog", "routing")
SENT = ("ok", "rate_limited", "insufficient_credits", "auth", "timeout", "provider_error", "bad_request",
        "network", "truncated", "skipped")
"""Outcomes that count in a tick's error rate: answered sends, plus requests dropped after N failures
in a row (the provider was failing; they are not 'never sent' for a monitor's purpose)."""


@dataclass(frozen=True)
class Rules:
    """Windows and thresholds (the defaults are the documented ones)."""

    latest_ticks: int = 3
    baseline_s: float = 72 * 3600.0
    latency_effect: float = 0.20
    quality_effect: float = 0.10
    outage_ticks: int = 3
    outage_error_rate: float = 0.5
    level: float = 0.95
    min_baseline_ticks: int = 3
    n_resamples: int = 1000


@dataclass(frozen=True)
class Decision:
    """One incident to open (``incident_id`` None) or to recover (the open incident's id)."""

    action: str  # open | recover
    kind: str
    model: str | None
    provider: str | None
    metric: str | None
    evidence: dict[str, Any]
    incident_id: str | None = None


@dataclass
class History:
    """What one evaluation reads: the monitor's ticks, their ok values and per-tick counts."""

    ticks: pl.DataFrame  # tick, run_id, started_at (finished ticks with a run)
    rows: pl.DataFrame  # tick, model, provider, served, outcome, passed, ttft_ms, e2e_ms, decode_tps
    catalog: pl.DataFrame = field(default_factory=pl.DataFrame)  # tick, model, provider, prompt, ...


_TICKS = """
WITH t AS (
    SELECT t.tick, t.run_id, coalesce(r.started_at, t.started_at) AS started_at FROM monitor_ticks AS t
    JOIN runs AS r ON r.run_id = t.run_id
    WHERE t.monitor = $monitor AND (t.status IN ('finished', 'failed') OR t.tick = $upto) AND t.tick <= $upto
)
SELECT * FROM t WHERE started_at >= (SELECT max(started_at) FROM t) - to_seconds($span_s) ORDER BY tick
"""
_ROWS = f"""
SELECT r.monitor_tick AS tick, q.model, q.provider_variant AS provider, q.provider AS served, q.outcome,
       q.passed, q.ttft_ms, q.e2e_ms, q.decode_tps
FROM requests AS q JOIN runs AS r ON r.run_id = q.run_id
WHERE r.monitor = $monitor AND NOT q.is_warmup AND r.monitor_tick IN (SELECT tick FROM ({_TICKS}))
"""
_CATALOG = """
SELECT tick, model, provider, prompt, completion, expiration_date FROM monitor_catalog
WHERE monitor = $monitor AND tick IN (
    SELECT DISTINCT tick FROM monitor_catalog WHERE monitor = $monitor AND tick <= $upto ORDER BY tick DESC LIMIT 2)
"""


def read_history(store: Any, monitor: str, upto: int, rules: Rules = Rules()) -> History:
    """The ticks up to ``upto`` that the windows can use: the last ones and the span before them
    (with a margin), their request rows, and the last two ticks' endpoint lists. One connection."""
    span = {"monitor": monitor, "upto": upto, "span_s": rules.baseline_s * 1.5}
    ticks, rows, catalog = store.query_many([(_TICKS, span), (_ROWS, span),
                                             (_CATALOG, {"monitor": monitor, "upto": upto})])
    return History(ticks, rows, catalog)


# ------------------------------------------------------------------ windows
def windows(history: History, tick: int, rules: Rules,
            excluded: Iterable[int] = ()) -> tuple[list[int], list[int]]:
    """(latest ticks, baseline ticks) as of ``tick``; ``excluded`` ticks are in neither."""
    skip = set(excluded)
    ticks = history.ticks.filter(pl.col("tick") <= tick)
    latest = ticks["tick"].to_list()[-rules.latest_ticks:]
    if not latest:
        return [], []
    starts = dict(zip(ticks["tick"].to_list(), ticks["started_at"].to_list(), strict=True))
    base_from = starts[latest[0]] - timedelta(seconds=rules.baseline_s)
    baseline = [t for t in starts if t < latest[0] and starts[t] >= base_from and t not in skip]
    return latest, baseline


def _values(rows: pl.DataFrame, ticks: Sequence[int], column: str) -> np.ndarray:
    part = rows.filter(pl.col("tick").is_in(list(ticks)) & (pl.col("outcome") == "ok"))[column].drop_nulls()
    return np.asarray(part.to_numpy(), dtype=np.float64)


def _worse(change: float | None, better: str) -> float | None:
    """A relative change as 'how much worse' (positive = worse)."""
    if change is None:
        return None
    return change if better == "lower" else -change


def _median(xs: np.ndarray) -> float | None:
    return float(np.median(xs)) if len(xs) else None


def latency_change(rows: pl.DataFrame, latest: Sequence[int], baseline: Sequence[int], metric: str,
                   better: str, rules: Rules) -> dict[str, Any] | None:
    """Baseline vs latest median of one metric, compare's test; None when either side is empty."""
    a, b = _values(rows, baseline, metric), _values(rows, latest, metric)
    if len(a) < 2 or len(b) < 2:
        return None
    cmp = stats.compare(a, b, rules.level, n_resamples=rules.n_resamples)
    last = _values(rows, latest[-1:], metric)
    tick_worse = _worse(None if cmp.median_a in (None, 0) or not len(last) else
                        (float(np.median(last)) - float(cmp.median_a or 0)) / float(cmp.median_a or 1), better)
    return {"baseline": cmp.median_a, "latest": cmp.median_b, "change": cmp.rel_change,
            "beyond_noise": bool(cmp.significant), "worse": _worse(cmp.rel_change, better),
            "latest_tick_worse": tick_worse, "ci": [cmp.ci_lo, cmp.ci_hi], "n_baseline": len(a), "n_latest": len(b)}


def _error_rate(rows: pl.DataFrame, ticks: Sequence[int]) -> tuple[float | None, int]:
    sent = rows.filter(pl.col("tick").is_in(list(ticks)) & pl.col("outcome").is_in(SENT))
    if sent.is_empty():
        return None, 0
    failed = int((sent["outcome"] != "ok").sum())
    return failed / sent.height, sent.height


def _pass_values(rows: pl.DataFrame, ticks: Sequence[int]) -> np.ndarray:
    part = rows.filter(pl.col("tick").is_in(list(ticks)) & (pl.col("outcome") == "ok"))["passed"].drop_nulls()
    return np.asarray(part.cast(pl.Float64).to_numpy(), dtype=np.float64)


def quality_change(rows: pl.DataFrame, latest: Sequence[int], baseline: Sequence[int],
                   rules: Rules) -> dict[str, Any] | None:
    a, b = _pass_values(rows, baseline), _pass_values(rows, latest)
    if len(a) < 2 or len(b) < 2:
        return None
    lo, hi = _rate_diff_interval(a, b, rules)
    diff = float(np.mean(b)) - float(np.mean(a))
    last = _pass_values(rows, latest[-1:])
    drop_last = None if not len(last) else float(np.mean(a)) - float(np.mean(last))
    return {"baseline": float(np.mean(a)), "latest": float(np.mean(b)), "change": diff,
            "beyond_noise": lo > 0 or hi < 0, "drop": -diff, "latest_tick_drop": drop_last,
            "ci": [lo, hi], "n_baseline": len(a), "n_latest": len(b)}


def _rate_diff_interval(a: np.ndarray, b: np.ndarray, rules: Rules) -> tuple[float, float]:
    """compare's bootstrap of the difference of means (A and B resampled independently, seeded), for
    0/1 values: the passes in a resample of n values are Binomial(n, p), drawn directly instead of
    resampling n values 1,000 times (the same distribution; a baseline of 7,000 verdicts took 0.6 s)."""
    rng = np.random.default_rng(0)
    draws_b = rng.binomial(len(b), float(np.mean(b)), rules.n_resamples) / len(b)
    draws_a = rng.binomial(len(a), float(np.mean(a)), rules.n_resamples) / len(a)
    tail = 100 * (1 - rules.level) / 2
    lo, hi = np.percentile(draws_b - draws_a, [tail, 100 - tail])
    return float(lo), float(hi)


# ------------------------------------------------------------------ the rules
def _incident_ticks(incidents: pl.DataFrame, kind: str, model: Any, provider: Any, rules: Rules,
                    upto: int) -> set[int]:
    """Ticks inside incidents of this kind and target: [opened - window + 1, recovered) (open: onwards)."""
    out: set[int] = set()
    if incidents.is_empty():
        return out
    part = incidents.filter((pl.col("kind") == kind) & (pl.col("model") == model) & (pl.col("provider") == provider))
    for row in part.iter_rows(named=True):
        end = row["recovered_tick"] if row["recovered_tick"] is not None else upto + 1
        out.update(range(max(1, row["opened_tick"] - rules.latest_ticks + 1), end))
    return out


def _open(incidents: pl.DataFrame, kind: str, model: Any, provider: Any, metric: Any) -> str | None:
    if incidents.is_empty():
        return None
    part = incidents.filter((pl.col("kind") == kind) & pl.col("model").eq_missing(model)
                            & pl.col("provider").eq_missing(provider) & pl.col("recovered_tick").is_null())
    if metric is not None:
        part = part.filter(pl.col("metric") == metric)
    return None if part.is_empty() else str(part["incident_id"][0])


def evaluate(history: History, tick: int, incidents: pl.DataFrame, rules: Rules = Rules()) -> list[Decision]:
    """What opens and what recovers at ``tick`` (``incidents``: the monitor's, as stored)."""
    if history.rows.is_empty() or tick not in set(history.ticks["tick"].to_list()):
        return _catalog_decisions(history, tick, incidents, rules)
    out: list[Decision] = []
    targets = history.rows.filter(pl.col("tick") == tick).select("model", "provider").unique().sort(
        "model", "provider").rows()
    for model, provider in targets:
        target = history.rows.filter((pl.col("model") == model) & (pl.col("provider") == provider))
        out += _outage(target, tick, incidents, model, provider, history, rules)
        out += _latency(target, tick, incidents, model, provider, history, rules)
        out += _quality(target, tick, incidents, model, provider, history, rules)
        out += _routing(target, tick, incidents, model, provider, history, rules)
    return out + _catalog_decisions(history, tick, incidents, rules)


def _outage(rows: pl.DataFrame, tick: int, incidents: pl.DataFrame, model: str, provider: str,
            history: History, rules: Rules) -> list[Decision]:
    last_rate, last_n = _error_rate(rows, [tick])
    if last_rate is None:
        return []
    ticks = [t for t in history.ticks["tick"].to_list() if t <= tick][-rules.outage_ticks:]
    window_rate, window_n = _error_rate(rows, ticks)
    evidence = {"error_rate_latest_tick": last_rate, "n_latest_tick": last_n, "error_rate_window": window_rate,
                "n_window": window_n, "window_ticks": ticks, "threshold": rules.outage_error_rate}
    current = _open(incidents, "outage", model, provider, None)
    if current is not None:
        if last_rate <= rules.outage_error_rate:
            return [Decision("recover", "outage", model, provider, "error_rate", evidence, current)]
        return []
    down = last_rate >= 1.0 or (window_rate is not None and window_rate > rules.outage_error_rate
                                and last_rate > rules.outage_error_rate)
    return [Decision("open", "outage", model, provider, "error_rate", evidence)] if down else []


def _latency(rows: pl.DataFrame, tick: int, incidents: pl.DataFrame, model: str, provider: str,
             history: History, rules: Rules) -> list[Decision]:
    out = []
    excluded = _incident_ticks(incidents, "latency", model, provider, rules, tick) | _incident_ticks(
        incidents, "outage", model, provider, rules, tick)
    latest, baseline = windows(history, tick, rules, excluded)
    if len(baseline) < rules.min_baseline_ticks:
        return []
    for metric, better in LATENCY_METRICS:
        current = _open(incidents, "latency", model, provider, metric)
        change = latency_change(rows, latest, baseline, metric, better, rules)
        if change is None:
            continue
        evidence = {**change, "metric": metric, "latest_ticks": latest,
                    "baseline_ticks": [baseline[0], baseline[-1]], "effect": rules.latency_effect}
        last = change["latest_tick_worse"]
        if current is not None:
            if last is not None and last < rules.latency_effect / 2:
                out.append(Decision("recover", "latency", model, provider, metric, evidence, current))
        elif (change["beyond_noise"] and (change["worse"] or 0) >= rules.latency_effect
              and last is not None and last >= rules.latency_effect):
            out.append(Decision("open", "latency", model, provider, metric, evidence))
    return out


def _quality(rows: pl.DataFrame, tick: int, incidents: pl.DataFrame, model: str, provider: str,
             history: History, rules: Rules) -> list[Decision]:
    excluded = _incident_ticks(incidents, "quality", model, provider, rules, tick)
    latest, baseline = windows(history, tick, rules, excluded)
    if len(baseline) < rules.min_baseline_ticks:
        return []
    change = quality_change(rows, latest, baseline, rules)
    if change is None:
        return []
    evidence = {**change, "metric": "pass_rate", "latest_ticks": latest,
                "baseline_ticks": [baseline[0], baseline[-1]], "effect": rules.quality_effect}
    current = _open(incidents, "quality", model, provider, None)
    last = change["latest_tick_drop"]
    if current is not None:
        if last is not None and last < rules.quality_effect / 2:
            return [Decision("recover", "quality", model, provider, "pass_rate", evidence, current)]
        return []
    if change["beyond_noise"] and change["drop"] >= rules.quality_effect and last is not None \
            and last >= rules.quality_effect:
        return [Decision("open", "quality", model, provider, "pass_rate", evidence)]
    return []


def _mode(values: Iterable[Any]) -> Any:
    seen = [v for v in values if v is not None]
    return max(set(seen), key=seen.count) if seen else None


def _routing(rows: pl.DataFrame, tick: int, incidents: pl.DataFrame, model: str, provider: str,
             history: History, rules: Rules) -> list[Decision]:
    """A default-routed target: the provider that served most of the latest window is another one
    than the baseline's, and the baseline's share fell beyond the noise (Wilson intervals apart)."""
    if provider != "default":
        return []
    excluded = _incident_ticks(incidents, "routing", model, provider, rules, tick)
    latest, baseline = windows(history, tick, rules, excluded)
    if len(baseline) < rules.min_baseline_ticks:
        return []
    ok = rows.filter((pl.col("outcome") == "ok") & pl.col("served").is_not_null())
    before = ok.filter(pl.col("tick").is_in(baseline))["served"].to_list()
    now = ok.filter(pl.col("tick").is_in(latest))["served"].to_list()
    if not before or not now:
        return []
    top_before, top_now = _mode(before), _mode(now)
    lo_before, _ = stats.wilson_interval(before.count(top_before), len(before), rules.level)
    _, hi_now = stats.wilson_interval(now.count(top_before), len(now), rules.level)
    moved = top_now != top_before and hi_now < lo_before
    evidence = {"before": top_before, "after": top_now, "share_before": before.count(top_before) / len(before),
                "share_now": now.count(top_before) / len(now), "latest_ticks": latest,
                "baseline_ticks": [baseline[0], baseline[-1]]}
    current = _open(incidents, "routing", model, provider, None)
    if current is not None:
        row = incidents.filter(pl.col("incident_id") == current).row(0, named=True)
        held = _held_s(history, row["opened_tick"], tick)
        if not moved or held >= rules.baseline_s:
            why = "back" if not moved else "new normal"
            return [Decision("recover", "routing", model, provider, "served_provider", {**evidence, "why": why},
                             current)]
        return []
    return [Decision("open", "routing", model, provider, "served_provider", evidence)] if moved else []


def _held_s(history: History, since_tick: int, tick: int) -> float:
    starts = dict(zip(history.ticks["tick"].to_list(), history.ticks["started_at"].to_list(), strict=True))
    if since_tick not in starts or tick not in starts:
        return 0.0
    return float((starts[tick] - starts[since_tick]).total_seconds())


# ------------------------------------------------------------------ catalog
_CATALOG_FIELDS = ("prompt", "completion", "expiration_date")


def _catalog_state(frame: pl.DataFrame, tick: int) -> dict[tuple[str, str], dict[str, Any]]:
    part = frame.filter(pl.col("tick") == tick) if not frame.is_empty() else frame
    return {(r["model"], r["provider"]): {f: None if r[f] is None else str(r[f]) for f in _CATALOG_FIELDS}
            for r in part.iter_rows(named=True)}


def catalog_diff(before: Mapping[tuple[str, str], Mapping[str, Any]],
                 after: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[tuple[str, str | None, str, Any, Any]]:
    """(model, provider, what, before, after) for every change between two endpoint lists. A
    deprecation date is the model's, not a provider's: one change per model, provider None."""
    out: list[tuple[str, str | None, str, Any, Any]] = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            out.append((*key, "provider_removed", "listed", None))
        elif key not in before:
            out.append((*key, "provider_added", None, "listed"))
        else:
            for f in ("prompt", "completion"):
                if before[key][f] != after[key][f]:
                    out.append((*key, f"{f}_price", before[key][f], after[key][f]))
    for model in sorted({m for m, _ in before} & {m for m, _ in after}):
        was, now = _expiry(before, model), _expiry(after, model)
        if was != now:
            out.append((model, None, "expiration_date", was, now))
    return out


def _expiry(state: Mapping[tuple[str, str], Mapping[str, Any]], model: str) -> Any:
    """The model's deprecation date as listed (the same on each of its endpoints' rows)."""
    return next((row["expiration_date"] for (m, _), row in sorted(state.items()) if m == model
                 and row["expiration_date"] is not None), None)


def _catalog_value(state: Mapping[tuple[str, str], Mapping[str, Any]], model: str, provider: str | None,
                   what: str) -> Any:
    if what == "expiration_date":
        return _expiry(state, model)
    row = state.get((model, provider)) if provider is not None else None
    if what in ("provider_removed", "provider_added"):
        return "listed" if row is not None else None
    if row is None:
        return None
    return row[what.removesuffix("_price")]


def _catalog_decisions(history: History, tick: int, incidents: pl.DataFrame, rules: Rules) -> list[Decision]:
    frame = history.catalog
    if frame.is_empty() or tick not in set(frame["tick"].to_list()):
        return []
    now = _catalog_state(frame, tick)
    earlier = [t for t in frame["tick"].unique().to_list() if t < tick]
    out: list[Decision] = []
    if not incidents.is_empty():
        for row in incidents.filter((pl.col("kind") == "catalog") & pl.col("recovered_tick").is_null()).iter_rows(
                named=True):
            before = json.loads(row["evidence"]).get("before")
            value = _catalog_value(now, row["model"], row["provider"], row["metric"])
            held = (datetime.now(row["opened_at"].tzinfo) - row["opened_at"]).total_seconds()
            if value == before or held >= rules.baseline_s:
                out.append(Decision("recover", "catalog", row["model"], row["provider"], row["metric"],
                                    {"value": value, "before": before,
                                     "why": "back" if value == before else "new normal"}, row["incident_id"]))
    if not earlier:
        return out
    back = {(d.model, d.provider) for d in out if d.metric in ("provider_removed", "provider_added")
            and d.evidence.get("why") == "back"}  # listed again (or gone again): that is the recovery
    for model, provider, what, before, after in catalog_diff(_catalog_state(frame, max(earlier)), now):
        if what in ("provider_removed", "provider_added") and (model, provider) in back:
            continue
        if _open(incidents, "catalog", model, provider, what) is None:
            out.append(Decision("open", "catalog", model, provider, what,
                                {"what": what, "before": before, "after": after}))
    return out


# ------------------------------------------------------------------ reports
def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def incidents_json(incidents: pl.DataFrame) -> list[dict[str, Any]]:
    """The stored incidents in the ``orbench trends --json`` shape."""
    return [{"kind": r["kind"], "model": r["model"], "provider": r["provider"], "metric": r["metric"],
             "opened_tick": r["opened_tick"], "recovered_tick": r["recovered_tick"],
             "opened_at": _iso(r["opened_at"]), "recovered_at": _iso(r["recovered_at"]),
             "evidence": json.loads(r["evidence"]) if r["evidence"] else None}
            for r in incidents.iter_rows(named=True)]


def trends_json(store: Any, monitor: str, *, since: datetime | None = None, rules: Rules = Rules()) -> dict[str, Any]:
    """``orbench trends --json``: the latest window against the baseline per model x provider x metric,
    and the monitor's incidents (opened since ``since``, or still open)."""
    last = store.query("SELECT max(tick) AS t FROM monitor_ticks WHERE monitor = $m AND status = 'finished'",
                       {"m": monitor})
    stored = store.get_monitor(monitor)
    if rules == Rules() and stored is not None and (stored["options"] or {}).get("rules"):
        rules = Rules(**stored["options"]["rules"])  # the monitor's own windows and thresholds
    upto = last["t"][0] if not last.is_empty() else None
    incidents = store.incidents(monitor)
    if since is not None and not incidents.is_empty():
        incidents = incidents.filter((pl.col("opened_at") >= since) | pl.col("recovered_tick").is_null())
    result: dict[str, Any] = {"monitor": monitor, "baseline": None, "latest": None, "changes": [],
                              "incidents": incidents_json(incidents)}
    if upto is None:
        return result
    history = read_history(store, monitor, int(upto), rules)
    if history.rows.is_empty():
        return result
    latest, baseline = windows(history, int(upto), rules)
    result["latest"], result["baseline"] = _window_json(history, latest), _window_json(history, baseline)
    result["changes"] = _changes(history, latest, baseline, rules)
    return result


def _window_json(history: History, ticks: Sequence[int]) -> dict[str, Any] | None:
    if not ticks:
        return None
    at = history.ticks.filter(pl.col("tick").is_in(list(ticks)))["started_at"]
    return {"ticks": [min(ticks), max(ticks)], "n_ticks": len(ticks), "from": _iso(at.min()), "to": _iso(at.max())}


def _changes(history: History, latest: Sequence[int], baseline: Sequence[int], rules: Rules) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    targets = history.rows.select("model", "provider").unique().sort("model", "provider").rows()
    for model, provider in targets:
        rows = history.rows.filter((pl.col("model") == model) & (pl.col("provider") == provider))
        for metric, better in LATENCY_METRICS:
            c = latency_change(rows, latest, baseline, metric, better, rules) if baseline else None
            if c is not None:
                out.append(_change(model, provider, metric, c))
        q = quality_change(rows, latest, baseline, rules) if baseline else None
        if q is not None:
            out.append(_change(model, provider, "pass_rate", q))
        a, _ = _error_rate(rows, baseline)
        b, _ = _error_rate(rows, latest)
        if a is not None and b is not None:
            out.append({"model": model, "provider": provider, "metric": "error_rate", "baseline": a,
                        "latest": b, "change": b - a,
                        "beyond_noise": _rates_differ(rows, baseline, latest, rules)})
    return out


def _change(model: str, provider: str, metric: str, c: Mapping[str, Any]) -> dict[str, Any]:
    return {"model": model, "provider": provider, "metric": metric, "baseline": c["baseline"],
            "latest": c["latest"], "change": c["change"], "beyond_noise": c["beyond_noise"]}


def _rates_differ(rows: pl.DataFrame, a_ticks: Sequence[int], b_ticks: Sequence[int], rules: Rules) -> bool:
    """Error rates beyond the noise: their Wilson intervals do not overlap."""
    def interval(ticks: Sequence[int]) -> tuple[float, float]:
        sent = rows.filter(pl.col("tick").is_in(list(ticks)) & pl.col("outcome").is_in(SENT))
        return stats.wilson_interval(int((sent["outcome"] != "ok").sum()), sent.height, rules.level)
    (alo, ahi), (blo, bhi) = interval(a_ticks), interval(b_ticks)
    return blo > ahi or bhi < alo

"""Load sweeps: one suite at several load levels, one run per level, and what they show.

A sweep is a list of steps (a concurrency or a Poisson rate each); every step is an
ordinary run (bench.run.engine), tagged in ``runs.sweep_id``/``runs.sweep_level``; the sweep
row (``sweeps``, m012) keeps what a resume needs. Everything here is computed from the
stored rows, so the CLI, a resume and the dashboard show the same figures
(METRICS.md "Load (sweeps)"):

- per step and model x provider: achieved ``req_per_s`` (ok requests) and
  ``output_tok_per_s`` over the step's measured window, first send to last token;
  TTFT/TPOT/e2e p50 and p95 with order-statistic intervals; error and 429 rates;
  ``goodput_req_per_s``: ok requests that meet every SLO, over the same window.
- the knee: the first level after which req/s grows by less than 10 % while p95
  TTFT or p95 e2e grows; ``max_goodput``: the level with the highest goodput.

``sweep_json(store, sweep_id)`` is the one entry point for views (``orbench sweep
--json`` prints exactly it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from bench.errors import ConfigError
from bench.records import FINISHED_OUTCOMES
from bench.results import stats
from bench.results.gates import OPS, Gate, parse_gate
from bench.results.report import current_rows
from bench.store.store import Store

KNEE_GROWTH = 0.10  # less growth than this from one level to the next is a plateau
# The per-request column an SLO's metric is judged on: "ttft_p95_ms<=500" asks each request
# for ttft_ms <= 500 (goodput), and the step's p95 for the same (``slos_met``).
SLO_COLUMNS = {"ttft": "ttft_ms", "e2e": "e2e_ms", "tpot": "tpot_ms", "decode": "decode_tps"}
AXES = ("concurrency", "rate")


def parse_levels(text: str, flag: str, *, integer: bool) -> list[float]:
    """'1,2,4,8' -> [1, 2, 4, 8]: positive, strictly increasing."""
    try:
        levels = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected numbers separated by commas, e.g. 1,2,4,8") from None
    if not levels or any(v <= 0 or not math.isfinite(v) for v in levels):
        raise ConfigError(f"{flag} {text!r}: every level must be a positive number")
    if integer and any(v != int(v) for v in levels):
        raise ConfigError(f"{flag} {text!r}: concurrency levels are whole numbers")
    if any(b <= a for a, b in zip(levels, levels[1:])):
        raise ConfigError(f"{flag} {text!r}: levels must increase")
    return levels


def parse_slo(expr: str) -> Gate:
    """``--slo "ttft_p95_ms<=500"``: a gate expression (bench.results.gates) on a latency metric."""
    try:
        gate = parse_gate(expr)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--fail-on", "--slo")) from None
    if _slo_column(gate) is None:
        known = "ttft_*, e2e_*, tpot_*, decode_tps_p50"
        raise ConfigError(f"--slo {expr!r}: {gate.metric} is not a per-request latency ({known})")
    return gate


def _slo_column(gate: Gate) -> str | None:
    return SLO_COLUMNS.get(gate.metric.split("_", 1)[0])


def meets_slos(row: dict[str, Any], slos: list[Gate]) -> bool:
    """An ok request whose every SLO column is measured and within its objective."""
    if row.get("outcome") != "ok":
        return False
    for gate in slos:
        value = row.get(_slo_column(gate) or "")
        if value is None or not OPS[gate.op](float(value), gate.value):
            return False
    return True


# ------------------------------------------------------------------------- statistics
def _values(rows: pl.DataFrame, column: str) -> list[float]:
    return [float(v) for v in rows[column].to_list() if v is not None]


def _with_ci(out: dict[str, Any], name: str, values: list[float], q: int) -> None:
    ci = stats.percentile_ci(values, q)
    out[f"{name}_p{q}_ms"] = None if ci is None else ci.estimate
    out[f"{name}_p{q}_ci_lo_ms"] = None if ci is None else ci.lo
    out[f"{name}_p{q}_ci_hi_ms"] = None if ci is None else ci.hi


def window_s(sent: pl.DataFrame) -> float | None:
    """First send to last token (or end, for a failed request) of the step's sent rows, seconds."""
    if sent.is_empty():
        return None
    start = sent["t_start_ms"].min()
    ends = sent.select((pl.col("t_start_ms") + pl.coalesce("e2e_ms", "done_ms")).alias("end"))["end"].max()
    if not isinstance(start, int | float) or not isinstance(ends, int | float) or ends <= start:  # None: no rows
        return None
    return (float(ends) - float(start)) / 1000


def step_stats(g: pl.DataFrame, slos: list[Gate]) -> dict[str, Any]:
    """One step's figures for one model x provider (current, measured rows)."""
    sent = g.filter(pl.col("outcome").is_in(sorted(FINISHED_OUTCOMES)))
    ok = sent.filter(pl.col("outcome") == "ok")
    n, n_ok = sent.height, ok.height
    win = window_s(sent)
    good = sum(meets_slos(r, slos) for r in ok.iter_rows(named=True))
    out_tokens = int(ok["completion_tokens"].fill_null(0).sum()) if n_ok else 0
    row: dict[str, Any] = {
        "n": n, "ok": n_ok, "window_s": win,
        "req_per_s": n_ok / win if win else None,
        "output_tok_per_s": out_tokens / win if win else None,
        "goodput_req_per_s": good / win if win else None,
        "good": good,
        "error_rate": (n - n_ok) / n if n else None,
        "rate_limited_rate": sent.filter(pl.col("outcome") == "rate_limited").height / n if n else None,
    }
    ttft, e2e, tpot = _values(ok, "ttft_ms"), _values(ok, "e2e_ms"), _values(ok, "tpot_ms")
    for q in (50, 95):
        _with_ci(row, "ttft", ttft, q)
        _with_ci(row, "tpot", tpot, q)
        _with_ci(row, "e2e", e2e, q)
    row["slos_met"] = all(OPS[s.op](row[s.metric], s.value) for s in slos if row.get(s.metric) is not None) \
        if slos else None
    return row


def step_rows(frame: pl.DataFrame, slos: list[Gate]) -> list[dict[str, Any]]:
    """Per model x provider of one step's run: ``step_stats`` plus model and provider."""
    rows = current_rows(frame)
    if "is_probe" in rows.columns:  # calibration probes count in money, never in statistics
        rows = rows.filter(~pl.col("is_probe").fill_null(False))
    out = []
    for (model, variant), g in rows.group_by(["model", "provider_variant"], maintain_order=True):
        out.append({"model": model, "provider": variant, **step_stats(g, slos)})
    return out


# ------------------------------------------------------------------------- knee
@dataclass(frozen=True)
class Point:
    level: float
    req_per_s: float | None
    ttft_p95_ms: float | None
    e2e_p95_ms: float | None


def _grows(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and b > a


def find_knee(points: list[Point]) -> float | None:
    """The first level after which req/s grows by < 10 % while p95 TTFT or p95 e2e grows."""
    measured = [p for p in points if p.req_per_s is not None]
    for a, b in zip(measured, measured[1:]):
        assert a.req_per_s is not None and b.req_per_s is not None
        plateau = b.req_per_s < a.req_per_s * (1 + KNEE_GROWTH)
        if plateau and (_grows(a.ttft_p95_ms, b.ttft_p95_ms) or _grows(a.e2e_p95_ms, b.e2e_p95_ms)):
            return a.level
    return None


def target_key(model: str, provider: str) -> str:
    """The key of ``knee`` and ``max_goodput``: 'model [provider]', as every summary groups."""
    return f"{model} [{provider}]"


def knees(steps: list[dict[str, Any]], axis: str) -> dict[str, Any]:
    """{'model [provider]': level} for every target whose knee the steps show."""
    out: dict[str, Any] = {}
    for key, points in _by_target(steps, axis).items():
        knee = find_knee(points)
        if knee is not None:
            out[key] = _level_out(knee, axis)
    return out


def max_goodput(steps: list[dict[str, Any]], axis: str) -> dict[str, Any]:
    """{'model [provider]': level with the highest goodput (the lowest level on a tie)}."""
    best: dict[str, tuple[float, Any]] = {}
    for s in steps:
        key, g = target_key(s["model"], s["provider"]), s.get("goodput_req_per_s")
        if g is not None and (key not in best or g > best[key][0]):
            best[key] = (g, s[axis])
    return {k: level for k, (_, level) in best.items()}


def _by_target(steps: list[dict[str, Any]], axis: str) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for s in sorted(steps, key=lambda s: s[axis]):
        out.setdefault(target_key(s["model"], s["provider"]), []).append(
            Point(s[axis], s.get("req_per_s"), s.get("ttft_p95_ms"), s.get("e2e_p95_ms")))
    return out


def _level_out(level: float, axis: str) -> int | float:
    return int(level) if axis == "concurrency" else level


def summary_lines(result: dict[str, Any]) -> list[str]:
    """Per model x provider of a ``sweep_json`` result, one line: where its knee and its
    maximum goodput are ('not reached' / '-' when the steps do not show them)."""
    axis, lines = result["axis"], []
    for key in sorted({target_key(s["model"], s["provider"]) for s in result["steps"]}):
        knee = result["knee"].get(key)
        lines.append(f"{key}: knee at {axis} {knee if knee is not None else 'not reached'}, "
                     f"max goodput at {result['max_goodput'].get(key, '-')}")
    return lines


# ------------------------------------------------------------------------- the JSON
def sweep_steps(store: Store, sweep_id: str, axis: str, slos: list[Gate]) -> list[dict[str, Any]]:
    """Every finished or partial step of a sweep, one row per level x model x provider."""
    steps = []
    for run in store.sweep_runs(sweep_id).iter_rows(named=True):
        for row in step_rows(store.requests_frame(run["run_id"]), slos):
            steps.append({axis: _level_out(run["sweep_level"], axis), **row,
                          "run_id": run["run_id"], "run_status": run["status"]})
    return steps


def sweep_json(store: Store, sweep_ref: str) -> dict[str, Any]:
    """The sweep as ``orbench sweep --json`` prints it (the dashboard's one call):
    ``{"sweep_id", "axis", "slos", "status", "steps": [...], "knee": {...}, "max_goodput": {...}}``;
    ``knee`` and ``max_goodput`` map 'model [provider]' to a level."""
    sweep = store.get_sweep(sweep_ref)
    settings = sweep["settings"]
    slos = [parse_slo(s) for s in settings.get("slos", [])]
    axis = sweep["axis"]
    steps = sweep_steps(store, sweep["sweep_id"], axis, slos)
    return {
        "sweep_id": sweep["sweep_id"], "axis": axis, "status": sweep["status"],
        "status_reason": sweep["status_reason"], "slos": [s.text for s in slos],
        "levels": [_level_out(v, axis) for v in sweep["levels"]],
        "steps": steps, "knee": knees(steps, axis), "max_goodput": max_goodput(steps, axis),
    }

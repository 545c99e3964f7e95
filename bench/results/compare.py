"""Run A against run B: the change of each metric's median per group, and whether it beats the noise.

One implementation for ``orbench compare``, the HTML report's baseline section and the
dashboard's Compare page. Every ok value of each side counts (``in_latency_stats`` rows of
``requests_current``), read from DuckDB as numpy arrays; ``bench.results.stats.compare`` bootstraps the
difference of medians (seeded, vectorised, O(1) per resample after one sort, so a run of a
million requests costs the sort). Error rates come from ``bench.results.summary``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.results import stats, summary
from bench.results.filters import PROVIDER_COLUMNS, Filters

METRICS = (("ttft_ms", "TTFT ms", "lower"), ("e2e_ms", "e2e ms", "lower"),
           ("tpot_ms", "TPOT ms", "lower"), ("decode_tps", "decode tok/s", "higher"))
"""What is compared by default: (column, label, which direction is better)."""
FIELDS = ["group", "metric", "n_a", "n_b", "p50_a", "p50_b", "change", "change_pct", "ci_lo", "ci_hi", "verdict"]

_VALUES = """
SELECT {keys}, ttft_ms, e2e_ms, tpot_ms, decode_tps FROM requests_current
WHERE run_id = $run_id AND in_latency_stats
"""


def _grouping(by: str) -> tuple[list[tuple[str, str]], str]:
    """(field, SQL expression) of the keys, and how summary groups them."""
    if by == "target":
        return [("model", "model"), ("provider_variant", "provider_variant"), ("endpoint", "endpoint")], "target"
    return [("model", "model"), ("provider", PROVIDER_COLUMNS[by])], "provider"


def _label(key: tuple[Any, ...], by: str) -> str:
    return f"{key[0]} [{key[1]}]" if by == "target" else f"{key[0]} · {key[1]}"


def ok_values(store: Any, run_id: str, by: str = "target") -> dict[tuple[Any, ...], dict[str, np.ndarray]]:
    """Every ok value of each metric per group of one run (sorted float arrays, NULLs dropped)."""
    keys, _ = _grouping(by)
    sql = _VALUES.format(keys=", ".join(f"{expr} AS {name}" for name, expr in keys))
    frame = store.query(sql, {"run_id": run_id})
    out: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}
    if frame.is_empty():
        return out
    names = [name for name, _ in keys]
    for key, part in frame.partition_by(names, as_dict=True, maintain_order=True).items():
        out[tuple(key)] = {col: np.sort(part[col].drop_nulls().to_numpy().astype(np.float64))
                           for col, _, _ in METRICS}
    return out


def _error_rates(store: Any, run_id: str, by: str) -> dict[tuple[Any, ...], float | None]:
    keys, grouping = _grouping(by)
    provider_by = "variant" if by == "target" else by
    f = Filters((run_id,), provider_by=provider_by)
    rows: Sequence[Mapping[str, Any]] = summary.summarize(store, f, by=grouping, min_rows=summary.EXACT_ONLY)
    return {tuple(r[name] for name, _ in keys): r["error_rate"] for r in rows}


def compare_runs(store: Any, run_a: str, run_b: str, *, by: str = "target",
                 metrics: Sequence[str] | None = None, labels: Mapping[str, str] | None = None,
                 error_rates: bool = True, seed: int = 0, n_resamples: int = 2000) -> list[dict[str, Any]]:
    """Per group both runs have (sorted by key) and metric: medians, their change with a 95 %
    bootstrap interval (also in percent of A's median), the verdict and whether it got worse.

    ``by``: ``target`` (model x provider variant x endpoint, the CLI's groups) or a provider
    reading of ``bench.results.filters.PROVIDER_COLUMNS`` (``variant``, ``served``: the dashboard's).
    ``error_rates`` adds one row per group with the error rates (over requests sent).
    """
    specs = [m for m in METRICS if metrics is None or m[0] in metrics]
    a, b = ok_values(store, run_a, by), ok_values(store, run_b, by)
    errors_a = _error_rates(store, run_a, by) if error_rates else {}
    errors_b = _error_rates(store, run_b, by) if error_rates else {}
    rows: list[dict[str, Any]] = []
    for key in sorted(set(a) & set(b), key=lambda k: tuple("" if v is None else str(v) for v in k)):
        group = _label(key, by)
        for col, label, better in specs:
            va, vb = a[key][col], b[key][col]
            if not len(va) or not len(vb):
                continue
            c = stats.compare(va, vb, seed=seed, n_resamples=n_resamples)
            ref = c.median_a or None
            worse = c.diff is not None and c.diff != 0 and (c.diff > 0) == (better == "lower")
            rows.append({
                "group": group, "model": key[0], "provider": key[1], "metric": (labels or {}).get(col, label),
                "n_a": c.n_a, "n_b": c.n_b, "p50_a": c.median_a, "p50_b": c.median_b, "change": c.diff,
                "change_pct": None if c.rel_change is None else 100 * c.rel_change,
                "ci_lo": c.ci_lo, "ci_hi": c.ci_hi,
                "ci_lo_pct": None if c.ci_lo is None or not ref else 100 * c.ci_lo / ref,
                "ci_hi_pct": None if c.ci_hi is None or not ref else 100 * c.ci_hi / ref,
                "verdict": "beyond noise" if c.significant else "within noise",
                "direction": "worse" if worse else "better" if c.diff else "same",
            })
        if error_rates:
            ea, eb = errors_a.get(key), errors_b.get(key)
            rows.append({"group": group, "model": key[0], "provider": key[1], "metric": "error rate",
                         "p50_a": ea, "p50_b": eb, "change": None if ea is None or eb is None else eb - ea,
                         "verdict": None, "direction": None})
    return rows

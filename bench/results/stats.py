"""Statistics for benchmark figures: percentiles with honest intervals, comparisons, rates.

Pure functions over plain sequences (numpy arrays welcome), so the CLI, the report and the
dashboard share one definition (METRICS.md "Statistics"):

- ``percentile``: linear interpolation between closest ranks (numpy's default,
  DuckDB's ``quantile_cont``), ``q`` in percent.
- ``percentile_ci``: a distribution-free interval from order statistics. The
  number of observations below the true q-th percentile is Binomial(n, q/100),
  so [X(l), X(u)] covers it with probability F(u-1) - F(l-1). When n is too
  small for such ranks to exist (p99 needs n >= 368 at 95 %), the result says
  ``small_n`` and gives no bounds, instead of passing off the maximum as p99.
- ``bootstrap_ci`` and ``compare``: seeded percentile bootstrap of medians (or means), so a
  report is reproducible; ``compare`` calls a change significant only when the
  interval of the difference excludes 0. Vectorised with numpy, and for the median drawn
  straight from the bootstrap distribution: a resample's k-th order statistic is
  ``x_(ceil(n U))`` with ``U ~ Beta(k, n + 1 - k)`` (the k-th of n uniforms), the next one
  ``U + (1 - U) Beta(1, n - k)``, so a resample of any size costs O(1) after one sort and
  every value of a large run is used (the dashboard and ``orbench compare`` alike).
- ``wilson_interval``: for error and pass rates; sane at 0 % and 100 %.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

Number = float | int


def _clean(values: Iterable[Number | None]) -> list[float]:
    """Sorted floats with None and NaN dropped."""
    return sorted(float(v) for v in values if v is not None and not math.isnan(v))


def _interpolate(xs: list[float], q: float) -> float:
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def percentile(values: Iterable[Number | None], q: float) -> float | None:
    """q-th percentile (0..100) by linear interpolation; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    xs = _clean(values)
    return _interpolate(xs, q) if xs else None


class PercentileCI(NamedTuple):
    """``ci[0], ci[1]`` are the bounds; both None when ``small_n``."""

    lo: float | None
    hi: float | None
    estimate: float
    q: float
    n: int
    level: float
    small_n: bool


def _binomial_cdf(n: int, p: float) -> list[float]:
    """F(k) = P(B <= k) for B ~ Binomial(n, p), k = 0..n (log space: any n)."""
    log_p, log_q = math.log(p), math.log1p(-p)
    head = math.lgamma(n + 1)
    cdf, total = [], 0.0
    for k in range(n + 1):
        total += math.exp(head - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q)
        cdf.append(min(total, 1.0))
    return cdf


def order_statistic_ranks(n: int, q: float, level: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (l, u) with P(X(l) <= true q-th percentile < X(u)) >= level; None if n is too small."""
    if not 0 < q < 100:
        raise ValueError(f"an interval needs 0 < q < 100, got {q}")
    if n < 1:
        return None
    tail = (1 - level) / 2
    eps = 1e-12  # float noise at exact boundaries (e.g. F = 1/64 for n = 6)
    cdf = _binomial_cdf(n, q / 100)
    below = [k for k in range(n + 1) if cdf[k] <= tail + eps]
    above = [k for k in range(n + 1) if cdf[k] >= 1 - tail - eps]
    if not below or not above:
        return None
    lower, upper = below[-1] + 1, above[0] + 1
    return (lower, upper) if upper <= n else None


@functools.lru_cache(maxsize=64)
def min_n_for(q: float, level: float = 0.95) -> int:
    """Smallest n for which ``percentile_ci`` can bound the q-th percentile (p99 -> 368)."""
    p, tail = q / 100, (1 - level) / 2
    if not 0 < p < 1:
        raise ValueError(f"an interval needs 0 < q < 100, got {q}")
    # Both ends exist iff (1-p)^n <= tail and p^n <= tail; start just below and confirm.
    n = max(1, math.ceil(math.log(tail) / math.log(max(p, 1 - p))) - 2)
    while order_statistic_ranks(n, q, level) is None:
        n += 1
    return n


def percentile_ci(
    values: Iterable[Number | None], q: float, level: float = 0.95
) -> PercentileCI | None:
    """Percentile with an order-statistic interval; None for no values.

    With too few values the bounds are None and ``small_n`` is True: report
    "n too small" rather than a p99 that is only the maximum.
    """
    xs = _clean(values)
    if not xs:
        return None
    estimate = _interpolate(xs, q)
    ranks = order_statistic_ranks(len(xs), q, level)
    if ranks is None:
        return PercentileCI(None, None, estimate, q, len(xs), level, True)
    lower, upper = ranks
    return PercentileCI(xs[lower - 1], xs[upper - 1], estimate, q, len(xs), level, False)


Stat = Callable[[Sequence[float]], float]
_MEAN_STATS: tuple[Any, ...] = (statistics.fmean, statistics.mean)
_RESAMPLE_CELLS = 2_000_000  # values drawn at once when a resample is materialised (mean, other stats)


def _sorted_array(values: Iterable[Number | None]) -> np.ndarray:
    """Sorted float64 values with None and NaN dropped (a numpy array is taken as it is)."""
    if isinstance(values, np.ndarray):
        xs = values.astype(np.float64, copy=False)
    else:
        xs = np.fromiter((float(v) for v in values if v is not None), dtype=np.float64)
    return np.sort(xs[~np.isnan(xs)])


def _point(xs: np.ndarray, stat: Stat) -> float:
    if stat is statistics.median:
        mid = len(xs) // 2
        return float(xs[mid]) if len(xs) % 2 else float((xs[mid - 1] + xs[mid]) / 2)
    if stat in _MEAN_STATS:
        return float(xs.mean())
    return float(stat(xs.tolist()))


def _at(xs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The empirical quantile function at u in (0, 1): x_(ceil(n u)), 1-based."""
    n = len(xs)
    picked: np.ndarray = xs[np.clip(np.ceil(u * n).astype(np.int64), 1, n) - 1]
    return picked


def _resampled(xs: np.ndarray, stat: Stat, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``stat`` of ``n_resamples`` bootstrap resamples of the sorted ``xs``."""
    n = len(xs)
    if stat is statistics.median:  # exact draws from the bootstrap distribution of the median
        k = (n + 1) // 2 if n % 2 else n // 2
        u = rng.beta(k, n - k + 1, size=n_resamples)
        if n % 2:
            return _at(xs, u)
        u2 = u + (1 - u) * rng.beta(1, n - k, size=n_resamples)
        mean: np.ndarray = (_at(xs, u) + _at(xs, u2)) / 2
        return mean
    out = np.empty(n_resamples)
    step = max(1, _RESAMPLE_CELLS // n)
    for start in range(0, n_resamples, step):
        idx = rng.integers(0, n, size=(min(step, n_resamples - start), n))
        sample = xs[idx]
        if stat in _MEAN_STATS:
            out[start:start + len(idx)] = sample.mean(axis=1)
        else:
            out[start:start + len(idx)] = [stat(row.tolist()) for row in sample]
    return out


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    ordered = np.sort(draws).tolist()
    return _interpolate(ordered, tail), _interpolate(ordered, 100 - tail)


def bootstrap_ci(
    values: Iterable[Number | None],
    level: float = 0.95,
    *,
    stat: Stat = statistics.median,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Seeded percentile-bootstrap interval of ``stat`` (median); None for n < 2."""
    xs = _sorted_array(values)
    if len(xs) < 2:
        return None
    return _interval(_resampled(xs, stat, n_resamples, np.random.default_rng(seed)), level)


@dataclass(frozen=True)
class Comparison:
    """B against A: ``diff = median_b - median_a``; significant when the CI excludes 0."""

    n_a: int
    n_b: int
    median_a: float | None
    median_b: float | None
    diff: float | None
    rel_change: float | None  # diff / median_a; None when median_a is 0 or missing
    ci_lo: float | None
    ci_hi: float | None
    level: float
    significant: bool


def compare(
    a_values: Iterable[Number | None],
    b_values: Iterable[Number | None],
    level: float = 0.95,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    stat: Stat = statistics.median,
) -> Comparison:
    """Difference of ``stat`` (medians; ``decide`` passes the mean for costs and pass rates)
    with a seeded bootstrap CI (A and B resampled independently), over every value given."""
    a, b = _sorted_array(a_values), _sorted_array(b_values)
    med_a = _point(a, stat) if len(a) else None
    med_b = _point(b, stat) if len(b) else None
    diff = None if med_a is None or med_b is None else med_b - med_a
    rel = None if diff is None or not med_a else diff / med_a
    lo = hi = None
    if len(a) >= 2 and len(b) >= 2:
        rng = np.random.default_rng(seed)
        draws_b = _resampled(b, stat, n_resamples, rng)
        draws_a = _resampled(a, stat, n_resamples, rng)
        lo, hi = _interval(draws_b - draws_a, level)
    significant = lo is not None and hi is not None and (lo > 0 or hi < 0)
    return Comparison(len(a), len(b), med_a, med_b, diff, rel, lo, hi, level, significant)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a rate; (0.0, 1.0) when n is 0 (nothing known)."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    z = statistics.NormalDist().inv_cdf(1 - (1 - level) / 2)
    p, z2 = successes / n, z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, center - half)  # exact ends, not 1e-17
    hi = 1.0 if successes == n else min(1.0, center + half)
    return lo, hi

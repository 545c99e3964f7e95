"""bench.results.stats against known values."""

from __future__ import annotations

import random
import statistics

import pytest

from bench.results import stats


def test_percentile_of_1_to_100_interpolates_linearly() -> None:
    values = list(range(1, 101))
    assert stats.percentile(values, 0) == 1
    assert stats.percentile(values, 50) == pytest.approx(50.5)
    assert stats.percentile(values, 90) == pytest.approx(90.1)
    assert stats.percentile(values, 99) == pytest.approx(99.01)
    assert stats.percentile(values, 100) == 100


def test_percentile_ignores_missing_and_order() -> None:
    assert stats.percentile([3.0, None, 1.0, float("nan"), 2.0], 50) == 2.0
    assert stats.percentile([], 50) is None
    assert stats.percentile([None], 50) is None
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_order_statistic_ranks_for_the_median_of_ten() -> None:
    # The textbook 95 % interval for the median of 10 is [X(2), X(9)] (coverage 97.9 %).
    assert stats.order_statistic_ranks(10, 50) == (2, 9)


def test_min_n_for_known_percentiles() -> None:
    assert stats.min_n_for(50) == 6  # 0.5^6 = 1/64 <= 0.025 < 1/32
    assert stats.min_n_for(99) == 368  # 0.99^368 <= 0.025 < 0.99^367
    assert stats.order_statistic_ranks(5, 50) is None


def test_percentile_ci_says_small_n_instead_of_max_as_p99() -> None:
    ci = stats.percentile_ci(range(100), 99)
    assert ci is not None and ci.small_n and (ci[0], ci[1]) == (None, None)
    assert ci.estimate == pytest.approx(98.01) and ci.n == 100


def test_percentile_ci_bounds_p99_with_enough_values() -> None:
    ci = stats.percentile_ci(range(1000), 99)
    assert ci is not None and not ci.small_n
    assert ci.lo is not None and ci.hi is not None
    assert ci.lo < ci.estimate < ci.hi < 999  # not the maximum
    assert stats.percentile_ci([], 50) is None


def test_percentile_ci_covers_the_true_quantile_at_the_stated_level() -> None:
    rng = random.Random(7)
    trials, covered = 400, 0
    for _ in range(trials):
        sample = [rng.random() for _ in range(60)]
        ci = stats.percentile_ci(sample, 90)
        assert ci is not None and ci.lo is not None and ci.hi is not None
        covered += ci.lo <= 0.9 <= ci.hi
    assert covered / trials >= 0.93


def test_wilson_interval_known_values() -> None:
    assert stats.wilson_interval(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    lo, hi = stats.wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.23659, abs=1e-5), pytest.approx(0.76341, abs=1e-5))
    lo, hi = stats.wilson_interval(1, 10)
    assert (lo, hi) == (pytest.approx(0.01788, abs=1e-5), pytest.approx(0.40415, abs=1e-5))
    assert stats.wilson_interval(10, 10) == (pytest.approx(0.72247, abs=1e-5), 1.0)
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)


def test_bootstrap_ci_is_seeded_and_brackets_the_median() -> None:
    values = [float(v) for v in range(1, 202)]
    first = stats.bootstrap_ci(values, seed=3)
    assert first == stats.bootstrap_ci(values, seed=3)
    assert first is not None and first[0] < 101 < first[1]
    assert stats.bootstrap_ci([1.0]) is None


def test_compare_detects_a_real_shift() -> None:
    a = [float(v) for v in range(100, 200)]
    b = [float(v) for v in range(200, 300)]
    c = stats.compare(a, b, seed=1)
    assert (c.median_a, c.median_b, c.diff) == (149.5, 249.5, 100.0)
    assert c.rel_change == pytest.approx(100 / 149.5)
    assert c.ci_lo is not None and c.ci_hi is not None and 0 < c.ci_lo <= 100 <= c.ci_hi
    assert c.significant


def test_compare_calls_equal_distributions_noise() -> None:
    rng = random.Random(11)
    a = [rng.gauss(100, 20) for _ in range(80)]
    b = [rng.gauss(100, 20) for _ in range(80)]
    c = stats.compare(a, b, seed=5)
    assert c.ci_lo is not None and c.ci_hi is not None and c.ci_lo < 0 < c.ci_hi
    assert not c.significant
    assert c == stats.compare(a, b, seed=5)


def test_compare_with_too_few_values_has_no_interval() -> None:
    c = stats.compare([1.0], [2.0, 3.0])
    assert c.diff == 1.5 and c.ci_lo is None and not c.significant


@pytest.mark.parametrize("n", [1, 2, 3, 8, 51, 400])
def test_median_bootstrap_draws_follow_the_resampling_distribution(n: int) -> None:
    """The vectorised bootstrap draws a resample's median from its exact distribution (order
    statistics of uniforms), so it must match resampling every value n times, quantile by quantile."""
    import numpy as np

    rng = np.random.default_rng(7)
    xs = np.sort(rng.lognormal(5, 0.6, size=n))
    fast = stats._resampled(xs, statistics.median, 40_000, np.random.default_rng(1))
    naive = np.median(xs[rng.integers(0, n, size=(40_000, n))], axis=1)
    grid = np.unique(np.concatenate([fast, naive]))  # compare the two distribution functions
    cdf_fast = np.searchsorted(np.sort(fast), grid, side="right") / len(fast)
    cdf_naive = np.searchsorted(np.sort(naive), grid, side="right") / len(naive)
    assert float(np.abs(cdf_fast - cdf_naive).max()) < 0.015  # Kolmogorov distance, 40,000 draws each


def test_compare_uses_every_value_of_a_large_sample() -> None:
    a = [100.0 + (i * 0.7548776662) % 50 for i in range(100_000)]  # evenly spread, no ties
    b = [v + 1.0 for v in a]
    c = stats.compare(a, b, seed=2)
    assert (c.n_a, c.n_b) == (100_000, 100_000) and c.diff == pytest.approx(1.0)
    assert c.significant and c.ci_lo is not None and 0 < c.ci_lo <= 1.0 <= c.ci_hi  # type: ignore[operator]  # ci_hi is float | None; the asserts before it do not narrow it

"""Which model x provider fits your constraints: verdicts from confidence intervals, a ranking, a pick.

One engine for ``orbench decide`` and the dashboard's Decide page: plain data in (the per-request
frame of one or more runs, as ``Store.requests_frame`` returns it), a typed ``Decision`` out, no I/O
besides ``decide_runs`` reading the store. The numbers are ``bench.results.summary``'s (its SQL, run over the
frame by ``summarize_frame``); this module only adds the intervals the summary does not carry, and the
verdicts.

- Pooling: the frames of several runs are concatenated; the summary keeps the current row of each
  (run, request) and groups by model x provider variant x endpoint, so a model in two runs is one
  candidate over both runs' requests.
- Intervals (95 % by default), one method per kind of metric:
  percentiles (``ttft_p95_ms``, ``e2e_p50_ms``, ``decode_tps_p50``, ...) by order statistics over the
  ok requests (``bench.results.stats.percentile_ci``, distribution-free; too few samples give no interval);
  ``error_rate``, ``rate_limited_rate`` and ``pass_rate`` by Wilson; ``cost_per_request_usd`` by a
  normal interval of the mean per-request cost, mean +- z*s/sqrt(n) over the requests sent (a request
  with no reported cost counts 0, as in the summary's cost_usd / sent; needs 2 requests). Counts and
  totals (``n``, ``ok``, ``retries_429``, ``cost_usd``) are exact: the interval is the value.
- A constraint's verdict: ``meets`` when the whole interval is on the right side of the limit (the
  limit itself included), ``fails`` when it is wholly on the wrong side, ``uncertain`` when it
  straddles the limit or there is no interval. An unmeasured metric (no ok requests, no quality
  checks) fails, as it does in the CI gates: unmeasured is not fast, nor good.
- More requests needed (``more_requests``): assume the spread stays what it is and find the smallest
  sample count m whose interval would lie on one side of the limit: for a mean, mean +- z*s/sqrt(m);
  for a rate p, the Wilson interval of p at m; for a percentile q, the current sample's quantiles at
  the ranks of the order-statistic interval at m (exact up to 2,000, then q/100 +- z*sqrt(q/100
  (1 - q/100) / m)), which need m at least ``stats.min_n_for(q)``. Samples are ok
  requests (latency), checked answers (pass rate) or requests sent; the extra samples are scaled to
  requests by the run's sent / samples ratio. None when no m up to 10 million settles it (the
  estimate sits on the limit).
- Ranking: candidates that meet every constraint by the objective, then the uncertain ones by the
  objective, then the failing ones by how many constraints they fail, then the objective. Objectives:
  ``cost`` = lowest ``cost_per_request_usd``; ``latency`` = lowest ``e2e_p50_ms`` (the whole answer's
  wait, streamed or not; constrain ``ttft_*`` for streaming UIs); ``quality`` = highest ``pass_rate``.
- The recommendation is the first candidate if it meets every constraint; the runner-up is the next
  one unless it fails. Whether their gap is beyond the noise is ``orbench compare``'s test: a seeded
  bootstrap of the difference (``stats.compare``), of mean per-request cost, median e2e latency or
  mean pass (0/1), significant when its interval excludes 0.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import polars as pl

from bench.errors import ConfigError
from bench.records import FINISHED_OUTCOMES
from bench.results import conversations as conversations_mod
from bench.results import report, stats
from bench.results import summary as summary_mod
from bench.results.gates import GATE_METRICS as GATE_METRICS  # re-exported: the metrics a constraint names
from bench.store.store import Store

Bound = Literal["min", "max"]
VERDICTS = ("meets", "uncertain", "fails")
OBJECTIVES = {"cost": "cost_per_request_usd", "latency": "e2e_p50_ms", "quality": "pass_rate"}
"""Objective name -> the summary field it ranks by (lowest first, but highest pass_rate)."""
EXACT_METRICS = frozenset({"n", "ok", "retries_429", "cost_usd"})
RATE_METRICS = frozenset({"error_rate", "rate_limited_rate", "pass_rate"})
MAX_PROJECTED_SAMPLES = 10_000_000
_EXACT_RANKS_UP_TO = 2000
_PERCENTILE = re.compile(r"^(ttft|e2e|tpot)_p(\d+)_ms$|^(decode_tps)_p(\d+)$")
_COLUMN = {"ttft": "ttft_ms", "e2e": "e2e_ms", "tpot": "tpot_ms", "decode_tps": "decode_tps"}


# ---------------------------------------------------------------- constraints
@dataclass(frozen=True)
class Constraint:
    """``--min METRIC=VALUE`` (bound ``min``: at least) or ``--max METRIC=VALUE`` (at most)."""

    metric: str
    bound: Bound
    limit: float

    @property
    def text(self) -> str:
        return f"{self.metric}{'>=' if self.bound == 'min' else '<='}{self.limit:g}"


def parse_constraint(flag: str, text: str) -> Constraint:
    """``parse_constraint("--max", "ttft_p95_ms=1500")``; ConfigError naming the flag otherwise."""
    bound = flag.lstrip("-")
    if bound not in ("min", "max"):
        raise ValueError(f"flag must be --min or --max, got {flag!r}")
    metric, sep, raw = (part.strip() for part in text.partition("="))
    if not sep or not metric or not raw:
        raise ConfigError(f"{flag} {text!r}: expected METRIC=VALUE, e.g. {flag} ttft_p95_ms=1500")
    if metric not in GATE_METRICS:
        raise ConfigError(f"{flag} {text!r}: unknown metric {metric!r}; known: {', '.join(sorted(GATE_METRICS))}")
    try:
        limit = float(raw)
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: {raw!r} is not a number") from None
    if not math.isfinite(limit):
        raise ConfigError(f"{flag} {text!r}: the limit must be a finite number")
    return Constraint(metric, "min" if bound == "min" else "max", limit)


def parse_constraints(mins: Iterable[str] = (), maxs: Iterable[str] = ()) -> list[Constraint]:
    """Every ``--min`` then every ``--max``; one limit per metric (the JSON keys constraints by metric)."""
    out = [parse_constraint("--min", t) for t in mins] + [parse_constraint("--max", t) for t in maxs]
    seen: dict[str, Constraint] = {}
    for c in out:
        if c.metric in seen:
            raise ConfigError(f"--{c.bound} {c.metric}: {c.metric} is already limited by "
                              f"--{seen[c.metric].bound}; give one limit per metric")
        seen[c.metric] = c
    return out


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class ConstraintResult:
    """One constraint on one candidate: the value, its interval, the verdict and why."""

    constraint: Constraint
    value: float | None
    ci_lo: float | None
    ci_hi: float | None
    verdict: str  # one of VERDICTS
    method: str  # "order-statistic", "wilson", "normal", "exact" or "unmeasured"
    samples: int
    more_requests: int | None  # 0 when settled; None when unmeasured or no count would settle it
    reason: str


@dataclass(frozen=True)
class Candidate:
    """One model x provider variant x endpoint, pooled over the runs given."""

    model: str
    provider: str  # the suite's provider variant (routing), as ``orbench show`` groups them
    endpoint: str
    verdict: str
    results: tuple[ConstraintResult, ...]
    summary: Mapping[str, Any]  # its bench.results.summary row: every number shown comes from here
    origin: str | None = None  # where it was measured, when the runs are grouped by origin (``--by-origin``)

    @property
    def label(self) -> str:
        return f"{self.model} [{self.provider}]" + (f" @ {self.origin}" if self.origin else "")

    @property
    def key(self) -> tuple[str, str, str]:
        """Its group in the pooled frame (the endpoint carries the origin when grouped by origin)."""
        return self.model, self.provider, self.endpoint + (ORIGIN_SEP + self.origin if self.origin else "")

    def value(self, field: str) -> Any:
        return self.summary.get(field)


@dataclass(frozen=True)
class Decision:
    """Ranked candidates, the pick and the runner-up, and whether the gap between them is real."""

    objective: str
    objective_field: str
    constraints: tuple[Constraint, ...]
    ranking: tuple[Candidate, ...]
    recommended: Candidate | None
    runner_up: Candidate | None
    gap: stats.Comparison | None  # runner-up (A) against the recommendation (B) on the objective
    level: float
    runs: tuple[str, ...]

    @property
    def beyond_noise(self) -> bool:
        return self.gap is not None and self.gap.significant

    @property
    def exit_code(self) -> int:
        """0 when some candidate meets every constraint, 3 when none does (CI gates on it)."""
        return 0 if self.recommended is not None else 3

    def to_dict(self) -> dict[str, Any]:
        """The ``orbench decide --json`` document (money as decimal strings, as in ``show --json``)."""
        def who(c: Candidate | None) -> dict[str, Any] | None:
            if c is None:
                return None
            out = {"model": c.model, "provider": c.provider, "endpoint": c.endpoint, "verdict": c.verdict}
            return {**out, "origin": c.origin} if c.origin else out

        gap = self.gap
        return {
            "recommended": who(self.recommended), "runner_up": who(self.runner_up),
            "beyond_noise": self.beyond_noise,
            "gap": None if gap is None else {"of": f"recommended - runner_up, {self.objective_field}",
                                             "difference": gap.diff, "ci_lo": gap.ci_lo, "ci_hi": gap.ci_hi,
                                             "level": gap.level},
            "objective": self.objective, "objective_field": self.objective_field,
            "constraints": [c.text for c in self.constraints], "level": self.level, "runs": list(self.runs),
            "ranking": [_candidate_dict(c, self.objective_field) for c in self.ranking],
        }


_SHOWN_FIELDS = ("n", "ok", "cost_per_request_usd", "cost_per_1k_requests_usd", "cost_per_correct_usd",
                 "pass_rate", "e2e_p50_ms", "ttft_p50_ms", "error_rate", "cost_per_conversation_usd")


def _candidate_dict(c: Candidate, objective_field: str) -> dict[str, Any]:
    d: dict[str, Any] = {"model": c.model, "provider": c.provider, "endpoint": c.endpoint, "verdict": c.verdict,
                         "constraints": {r.constraint.metric: {
                             "value": r.value, "ci_lo": r.ci_lo, "ci_hi": r.ci_hi, "verdict": r.verdict,
                             "limit": r.constraint.limit, "bound": r.constraint.bound, "method": r.method,
                             "samples": r.samples, "more_requests_needed": r.more_requests, "reason": r.reason,
                         } for r in c.results}}
    if c.origin:
        d["origin"] = c.origin
    for field in (objective_field, *_SHOWN_FIELDS):
        v = c.value(field)
        d[field] = str(v) if isinstance(v, Decimal) else v
    return d


# ---------------------------------------------------------------- estimates
Projection = Callable[[int], "tuple[float, float] | None"]


@dataclass(frozen=True)
class _Estimate:
    value: float | None
    lo: float | None
    hi: float | None
    samples: int
    method: str
    project: Projection | None = None  # the interval at m samples if the spread stayed


def _z(level: float) -> float:
    return statistics.NormalDist().inv_cdf(1 - (1 - level) / 2)


def _wilson(p: float, m: int, z: float) -> tuple[float, float]:
    """Wilson interval of a rate p at m samples, p held fixed (continuous, so monotone in m)."""
    z2 = z * z
    denom = 1 + z2 / m
    center = (p + z2 / (2 * m)) / denom
    half = z * math.sqrt(p * (1 - p) / m + z2 / (4 * m * m)) / denom
    return max(0.0, center - half), min(1.0, center + half)


@functools.lru_cache(maxsize=4096)
def _rank_fractions(m: int, q: float, level: float) -> tuple[float, float] | None:
    """Where the interval's order statistics of m samples sit, as fractions of the sorted sample.

    Exact ranks (``stats.order_statistic_ranks``) up to ``_EXACT_RANKS_UP_TO``, so at m = n the
    projection is the current interval; beyond, the normal approximation q +- z*sqrt(q(1-q)/m)."""
    if m <= _EXACT_RANKS_UP_TO:
        ranks = stats.order_statistic_ranks(m, q, level) if m >= 2 else None
        return None if ranks is None else ((ranks[0] - 1) / (m - 1), (ranks[1] - 1) / (m - 1))
    p = q / 100
    w = _z(level) * math.sqrt(p * (1 - p) / m)
    return max(0.0, p - w), min(1.0, p + w)


def _percentile_estimate(values: list[float], q: float, level: float) -> _Estimate:
    ci = stats.percentile_ci(values, q, level)
    if ci is None:
        return _Estimate(None, None, None, 0, "unmeasured")
    xs = sorted(values)

    def project(m: int) -> tuple[float, float] | None:
        at = _rank_fractions(m, q, level)
        if at is None:
            return None
        lo, hi = stats.percentile(xs, 100 * at[0]), stats.percentile(xs, 100 * at[1])
        return (lo, hi) if lo is not None and hi is not None else None

    return _Estimate(ci.estimate, ci.lo, ci.hi, ci.n, "order-statistic", project)


def _rate_estimate(hits: int, n: int, level: float) -> _Estimate:
    if n == 0:
        return _Estimate(None, None, None, 0, "unmeasured")
    lo, hi = stats.wilson_interval(hits, n, level)
    p, z = hits / n, _z(level)
    return _Estimate(p, lo, hi, n, "wilson", lambda m: _wilson(p, m, z))


def _mean_estimate(values: list[float], level: float) -> _Estimate:
    n = len(values)
    if n == 0:
        return _Estimate(None, None, None, 0, "unmeasured")
    mean = statistics.fmean(values)
    if n < 2:
        return _Estimate(mean, None, None, n, "normal")
    s, z = statistics.stdev(values), _z(level)

    def project(m: int) -> tuple[float, float]:
        half = z * s / math.sqrt(m)
        return max(0.0, mean - half), mean + half

    lo, hi = project(n)
    return _Estimate(mean, lo, hi, n, "normal", project)


def _estimate(metric: str, g: pl.DataFrame, summary: Mapping[str, Any], level: float) -> _Estimate:
    ok = g.filter(pl.col("outcome") == "ok")
    finished = g.filter(pl.col("outcome").is_in(sorted(FINISHED_OUTCOMES)))
    m = _PERCENTILE.match(metric)
    if m:
        column, q = (_COLUMN[m.group(1)], m.group(2)) if m.group(1) else (_COLUMN[m.group(3)], m.group(4))
        return _percentile_estimate([v for v in ok[column].to_list() if v is not None], float(q), level)
    if metric == "pass_rate":
        checked = ok.filter(pl.col("passed").is_not_null())
        return _rate_estimate(int(checked["passed"].sum()), checked.height, level)
    if metric in RATE_METRICS:
        bad = finished.height - ok.height if metric == "error_rate" else \
            finished.filter(pl.col("outcome") == "rate_limited").height
        return _rate_estimate(bad, finished.height, level)
    if metric == "cost_per_conversation_usd":  # the mean over complete conversations, like cost per request
        return _mean_estimate(conversations_mod.conversation_costs(conversations_mod.turns_of_frame(g)), level)
    if metric == "cost_per_request_usd":
        if summary.get(metric) is None:
            return _Estimate(None, None, None, 0, "unmeasured")
        return _mean_estimate([float(c or 0) for c in finished["cost_usd"].to_list()], level)
    raw = summary.get(metric)
    value = None if raw is None else float(raw)
    return _Estimate(value, value, value, finished.height, "exact" if value is not None else "unmeasured")


# ----------------------------------------------------------------- verdicts
def _side(lo: float, hi: float, c: Constraint) -> str:
    if c.bound == "max":
        return "meets" if hi <= c.limit else "fails" if lo > c.limit else "uncertain"
    return "meets" if lo >= c.limit else "fails" if hi < c.limit else "uncertain"


def _samples_to_settle(project: Projection, n: int, c: Constraint) -> int | None:
    """Smallest m > n whose projected interval is on one side of the limit; None beyond the cap."""
    def settled(m: int) -> bool:
        iv = project(m)
        return iv is not None and _side(iv[0], iv[1], c) != "uncertain"

    step = 1
    while not settled(n + step):
        step *= 2
        if n + step > MAX_PROJECTED_SAMPLES:
            return None
    lo, hi = n + step // 2, n + step  # settled(hi); not settled(lo) unless step is 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if settled(mid) else (mid, hi)
    return hi if step > 1 else n + 1


def judge(c: Constraint, est: _Estimate, requests_per_sample: float = 1.0, level: float = 0.95) -> ConstraintResult:
    """The verdict of one constraint given its estimate (public for tests and the dashboard)."""
    if est.value is None:
        why = "no quality checks" if c.metric == "pass_rate" else "no ok requests"
        return ConstraintResult(c, None, None, None, "fails", "unmeasured", 0, None,
                                f"{c.metric} is unmeasured ({why}): unmeasured never meets a limit")
    if est.lo is not None and est.hi is not None:
        verdict = _side(est.lo, est.hi, c)
        if verdict != "uncertain":
            return ConstraintResult(c, est.value, est.lo, est.hi, verdict, est.method, est.samples, 0,
                                    _settled_reason(c, est, verdict))
    more: int | None = None
    if est.project is not None:
        m = _samples_to_settle(est.project, est.samples, c)
        more = None if m is None else max(1, math.ceil((m - est.samples) * requests_per_sample))
    return ConstraintResult(c, est.value, est.lo, est.hi, "uncertain", est.method, est.samples, more,
                            _uncertain_reason(c, est, more, level))


def _settled_reason(c: Constraint, est: _Estimate, verdict: str) -> str:
    side = ("at most" if c.bound == "max" else "at least") if verdict == "meets" else \
        ("above" if c.bound == "max" else "below")
    return f"{c.metric} {format_metric(c.metric, est.value)}{_ci_text(c.metric, est)}: {side} the limit " \
           f"{format_metric(c.metric, c.limit)}"


def _uncertain_reason(c: Constraint, est: _Estimate, more: int | None, level: float) -> str:
    head = f"{c.metric} {format_metric(c.metric, est.value)}"
    if est.lo is None:
        head += f": too few samples ({est.samples}) for a {100 * level:g}% interval"
    else:
        head += f"{_ci_text(c.metric, est)}: the interval straddles the limit {format_metric(c.metric, c.limit)}"
    if more is None:
        return head + "; more requests would not settle it (the estimate sits on the limit)"
    return head + f"; about {more:,} more request{'' if more == 1 else 's'} would settle it"


def _ci_text(metric: str, est: _Estimate) -> str:
    if est.method == "exact":
        return ""
    return f" (CI {format_metric(metric, est.lo)} to {format_metric(metric, est.hi)})"


def format_metric(metric: str, v: float | Decimal | None) -> str:
    """A metric's value for people: ms, %, tok/s, $, or a count."""
    if v is None:
        return "n/a"
    x = float(v)
    if metric.endswith("_usd"):
        return format_usd(v)
    if metric.endswith("_ms"):
        return f"{x:,.0f} ms" if abs(x) >= 10 else f"{x:.2g} ms"
    if metric.endswith("_rate"):
        return f"{100 * x:.1f}%"
    if metric.startswith("decode_tps"):
        return f"{x:.1f} tok/s"
    return f"{x:g}"


def format_usd(v: float | Decimal | None) -> str:
    """Three significant digits, never scientific: $0.00000851, $0.0851, $12.30."""
    if v is None:
        return "n/a"
    x = float(v)
    if x == 0:
        return "$0"
    places = max(2, 2 - math.floor(math.log10(abs(x))))
    text = f"{abs(x):.{places}f}"
    return ("-$" if x < 0 else "$") + (text.rstrip("0") if places > 2 else text)


# ------------------------------------------------------------------ engine
def _objective_values(objective: str, g: pl.DataFrame) -> tuple[list[float], Callable[[Sequence[float]], float]]:
    """Per-request values of the objective and the statistic ``compare`` bootstraps over them."""
    ok = g.filter(pl.col("outcome") == "ok")
    if objective == "cost":
        finished = g.filter(pl.col("outcome").is_in(sorted(FINISHED_OUTCOMES)))
        return [float(c or 0) for c in finished["cost_usd"].to_list()], statistics.fmean
    if objective == "latency":
        return [v for v in ok["e2e_ms"].to_list() if v is not None], statistics.median
    passed = ok.filter(pl.col("passed").is_not_null())["passed"].to_list()
    return [1.0 if p else 0.0 for p in passed], statistics.fmean


def _rank_key(objective: str) -> Callable[[Candidate], tuple[Any, ...]]:
    field = OBJECTIVES[objective]

    def key(c: Candidate) -> tuple[Any, ...]:
        v = c.value(field)
        missing = v is None
        score = 0.0 if missing else (-float(v) if objective == "quality" else float(v))
        fails = sum(r.verdict == "fails" for r in c.results)
        return VERDICTS.index(c.verdict), fails, missing, score, c.label, c.endpoint

    return key


def decide(frame: pl.DataFrame, constraints: Sequence[Constraint] = (), objective: str = "cost", *,
           level: float = 0.95, seed: int = 0) -> Decision:
    """Rank every model x provider in ``frame`` against ``constraints`` and pick one.

    ``frame``: per-request rows of one or more runs (``Store.requests_frame``, concatenated for several
    runs: see ``pooled_frame``). ``objective``: ``cost``, ``latency`` or ``quality`` (see ``OBJECTIVES``).
    ``seed`` makes the bootstrap of the gap reproducible. Pure: reads nothing, writes nothing.
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    rows = report.current_rows(frame)
    groups = {key: g for key, g in rows.group_by(report.GROUP_COLS, maintain_order=True)} if rows.height else {}
    requests: dict[tuple[str, str, str], pl.DataFrame] = {}
    candidates = []
    turns = conversations_mod.turns_of_frame(frame)  # cost_per_conversation_usd, when the runs have conversations
    for summary in conversations_mod.attach(summary_mod.summarize_frame(frame), turns):
        g = groups[(summary["model"], summary["provider_variant"], summary["endpoint"])]
        c = _candidate(summary, g, constraints, level)
        requests[c.key] = g
        candidates.append(c)
    ranking = tuple(sorted(candidates, key=_rank_key(objective)))
    recommended = ranking[0] if ranking and ranking[0].verdict == "meets" else None
    runner_up = ranking[1] if recommended and len(ranking) > 1 and ranking[1].verdict != "fails" else None
    gap = None
    if recommended and runner_up:
        rec_vals, stat = _objective_values(objective, requests[recommended.key])
        run_vals, _ = _objective_values(objective, requests[runner_up.key])
        gap = stats.compare(run_vals, rec_vals, level, seed=seed, stat=stat)
    run_ids = tuple(sorted(set(frame["run_id"].to_list()))) if frame.height else ()
    return Decision(objective, OBJECTIVES[objective], tuple(constraints), ranking, recommended, runner_up,
                    gap, level, run_ids)


def _candidate(summary: Mapping[str, Any], g: pl.DataFrame, constraints: Sequence[Constraint],
               level: float) -> Candidate:
    sent = max(int(summary.get("n") or 0), 1)
    results = []
    for c in constraints:
        est = _estimate(c.metric, g, summary, level)
        results.append(judge(c, est, sent / est.samples if est.samples else 1.0, level))
    verdicts = {r.verdict for r in results}
    verdict = "fails" if "fails" in verdicts else "uncertain" if "uncertain" in verdicts else "meets"
    endpoint, _, origin = (summary["endpoint"] or "").partition(ORIGIN_SEP)
    return Candidate(summary["model"], summary["provider_variant"], endpoint, verdict, tuple(results), summary,
                     origin or None)


ORIGIN_SEP = " @ "
"""Joins endpoint and origin in a pooled frame grouped by origin (``pooled_frame(by_origin=True)``)."""


def pooled_frame(store: Store, run_ids: Sequence[str], by_origin: bool = False) -> pl.DataFrame:
    """The per-request rows of every run, concatenated (each keeps its run_id, so nothing collides).

    ``by_origin``: each row's endpoint also names where its run was measured, so the same model x
    provider from two origins (regions) are two candidates, side by side."""
    ids = list(dict.fromkeys(run_ids))
    frames = [store.requests_frame(r) for r in ids]
    frame = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    if by_origin and frame.height:
        found = store.query("SELECT run_id, origin FROM runs WHERE list_contains($ids, run_id)", {"ids": ids})
        origins = {r: (o or "unknown") for r, o in found.iter_rows()}  # one read, not one per run
        frame = frame.with_columns(
            (pl.col("endpoint").fill_null("") + ORIGIN_SEP
             + pl.col("run_id").replace_strict(origins, return_dtype=pl.String)).alias("endpoint"))
    return frame


def decide_runs(store: Store, run_ids: Sequence[str], constraints: Sequence[Constraint] = (),
                objective: str = "cost", *, level: float = 0.95, seed: int = 0, by_origin: bool = False) -> Decision:
    """``decide`` over stored runs pooled per model x provider (x origin, ``by_origin``)."""
    return decide(pooled_frame(store, run_ids, by_origin), constraints, objective, level=level, seed=seed)

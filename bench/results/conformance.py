"""Verdicts of a verify: per provider x dimension, against the reference, from stored rows (read-only).

Every dimension compares a provider with the reference provider on the same probes
(``bench.run.verify`` plans them; their case ids say what they probe, ``probe_id``):

- ``accuracy``: pass rate of the exact-answer probes, paired by probe;
- ``tool_calls``: trigger F1 against the reference's decisions to call (K2-Vendor-Verifier's
  definition: the reference's "called a tool" is the truth), and the share of calls whose
  arguments validate against the tool's JSON Schema; streamed and non-streamed together;
- ``structured_output``: schema-valid rate (the probes' own checks), valid-JSON rate beside it;
- ``parameters``: share of probes whose parameter was honoured (max_tokens, stop, temperature 0,
  seed, reasoning effort), each only where the provider lists it in ``supported_parameters``;
- ``usage``: prompt_tokens for the same prompt as a ratio to the reference's, and output bytes
  per completion token against the reference's; billed cost against price x tokens as a detail;
- ``streaming``: a streamed answer arrives whole (ok, a finish_reason) and equals the
  non-streamed answer to the same probe at temperature 0.

Statistics reuse ``bench.results.stats`` (the seeded bootstrap of ``compare``, Wilson intervals of
``decide``); the one addition is the correction for many tests: every interval is taken at the
Bonferroni level, so the chance of any false "deviates" in one verify stays at most
``FAMILY_ERROR`` (5%). A test deviates when its corrected interval lies wholly on the worse side and
the estimate is worse than the dimension's tolerance; it conforms when the interval rules out a
deviation as large as the tolerance; otherwise it is uncertain, with the requests that would settle
it if the spread stayed as it is (``decide``'s projection).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jsonschema
import numpy as np
import polars as pl

from bench.results import stats
from bench.results.report import current_rows
from bench.store.store import Store

DIMENSIONS = ("accuracy", "tool_calls", "structured_output", "parameters", "usage", "streaming")
VERDICTS = ("conforms", "deviates", "uncertain", "n/a")
FAMILY_ERROR = 0.05
N_RESAMPLES = 10_000  # a tail of 0.05 / 55 tests still holds ~9 draws
TOLERANCE = {  # a difference smaller than this is not worth flagging (rates are fractions)
    "accuracy": 0.08, "tool_f1": 0.05, "tool_schema_valid": 0.05, "structured_output": 0.05,
    "parameters": 0.10, "prompt_tokens_ratio": 0.03, "bytes_per_token_ratio": 0.15, "streaming": 0.05,
}
PARAMETERS = {"param-max-tokens": "max_tokens", "param-stop": "stop", "param-temperature": "temperature",
              "param-seed": "seed", "param-reasoning": "reasoning"}
STOP_SEQUENCE = "7"
_PROBE = re.compile(r"^(?P<dim>[a-z_]+):(?P<base>.+?)(?:@(?P<variant>\w+))?~(?P<mode>[sn])(?P<rep>\d+)$")
ROW_COLUMNS = ["request_idx", "model", "endpoint", "provider_variant", "provider", "case_id", "is_warmup",
               "outcome", "output_text", "tool_calls_json", "finish_reason", "prompt_tokens", "completion_tokens",
               "reasoning_tokens", "cost_usd", "passed", "session", "run_id"]


# ------------------------------------------------------------------- probe ids
def probe_id(dimension: str, base: str, mode: str, repeat: int, variant: str = "") -> str:
    """``accuracy:acc-arith-001~s1``: dimension, built-in case, variant, s(treamed)/n(ot), repeat."""
    return f"{dimension}:{base}{'@' + variant if variant else ''}~{mode}{repeat}"


@dataclass(frozen=True)
class Probe:
    dimension: str
    base: str
    variant: str
    mode: str
    repeat: int


def parse_probe(case_id: str) -> Probe | None:
    m = _PROBE.match(case_id)
    if m is None or m.group("dim") not in DIMENSIONS:
        return None
    return Probe(m.group("dim"), m.group("base"), m.group("variant") or "", m.group("mode"), int(m.group("rep")))


def provider_label(endpoint: str, variant: str) -> str:
    """The provider a row belongs to: the pinned provider, or the ``--endpoint`` name."""
    return variant if endpoint == "openrouter" else endpoint


# ------------------------------------------------------------------- results
@dataclass
class Dimension:
    verdict: str
    value: float | None = None
    reference_value: float | None = None
    ci_lo: float | None = None
    ci_hi: float | None = None
    more_requests_needed: int | None = None
    detail: str = ""
    failing: list[int] = field(default_factory=list)  # request_idx of the answers that failed

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "value": self.value, "reference_value": self.reference_value,
                "ci_lo": self.ci_lo, "ci_hi": self.ci_hi, "more_requests_needed": self.more_requests_needed,
                "detail": self.detail}


@dataclass
class ProviderResult:
    provider: str
    verdict: str
    dimensions: dict[str, Dimension]
    served_by_other: int = 0  # answers served by another provider, left out
    requests: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "verdict": self.verdict,
                "dimensions": {d: self.dimensions[d].to_json() for d in DIMENSIONS}}


@dataclass
class VerifyResult:
    run_id: str
    model: str
    reference: str
    reference_reason: str
    providers: list[ProviderResult]
    tests: int  # how many tests the correction spans
    level: float  # the per-test confidence level after the correction

    @property
    def deviates(self) -> bool:
        return any(p.verdict == "deviates" for p in self.providers)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "reference": self.reference,
                "providers": [p.to_json() for p in self.providers]}


@dataclass
class _Test:
    """One comparison: the provider's value, the reference's, and the corrected interval of the
    difference (provider - reference; ratios - 1)."""

    dimension: str
    name: str
    value: float | None
    reference_value: float | None
    n: int
    draw: Callable[[float], tuple[float, float] | None]  # level -> interval of the difference
    tolerance: float
    two_sided: bool = False
    rate: tuple[int, int] | None = None  # (successes, n) for a Wilson interval of the value
    note: str = ""
    failing: list[int] = field(default_factory=list)


# ------------------------------------------------------------------- reading rows
def verify_rows(store: Store, run_id: str) -> pl.DataFrame:
    """The current, non-warm-up rows of a verify run, each with its provider label and probe."""
    frame = current_rows(store.requests_frame(run_id, columns=ROW_COLUMNS))
    return frame.with_columns(
        pl.struct("endpoint", "provider_variant").map_elements(
            lambda s: provider_label(s["endpoint"], s["provider_variant"]), return_dtype=pl.String
        ).alias("label")
    ) if not frame.is_empty() else frame.with_columns(pl.lit(None, dtype=pl.String).alias("label"))


def verify_meta(store: Store, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    meta = (run.settings or {}).get("verify") if run is not None else None
    if not meta:
        from bench.errors import ConfigError

        raise ConfigError(f"run {run_id} is not a verify (its suite is {run.suite_name if run else None!r})")
    return dict(meta)


def verify_run(store: Store, run_id: str, *, seed: int = 0) -> VerifyResult:
    """The verdicts of a stored verify run."""
    return evaluate(verify_rows(store, run_id), verify_meta(store, run_id), run_id=run_id, seed=seed)


# ------------------------------------------------------------------- evaluation
def evaluate(rows: pl.DataFrame, meta: dict[str, Any], *, run_id: str = "", seed: int = 0) -> VerifyResult:
    """Verdicts from a verify's rows and its stored ``settings.verify``."""
    providers = meta.get("providers") or {}
    labels = [*providers, *(meta.get("endpoints") or {})]
    by_label: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    served_other = dict.fromkeys(labels, 0)
    for row in rows.to_dicts():
        probe = parse_probe(row["case_id"])
        if probe is None or row["label"] not in by_label:
            continue
        expected = (providers.get(row["label"]) or {}).get("name")
        if expected and row["outcome"] == "ok" and row["provider"] and row["provider"] != expected:
            served_other[row["label"]] += 1  # answered by another provider: in nobody's statistics
            continue
        by_label[row["label"]].append({**row, "probe": probe})
    obs = {label: _observations(rs, meta, providers.get(label)) for label, rs in by_label.items()}
    reference = meta.get("reference") or _most_agreeing(obs)
    reason = meta.get("reference_reason") or ""
    if not meta.get("reference"):
        reason = f"the provider whose answers agree most with the others' ({reference})"
    tests = {label: _tests(obs[label], obs[reference], providers.get(label), seed)
             for label in labels if label != reference}
    count = sum(1 for ts in tests.values() for t in ts if t.n > 0)
    results = [_reference_result(reference, obs[reference], served_other[reference], len(by_label[reference]))]
    for label, ts in tests.items():
        dims = {d: _dimension([t for t in ts if t.dimension == d], count, seed) for d in DIMENSIONS}
        verdict = "deviates" if any(x.verdict == "deviates" for x in dims.values()) else "conforms"
        results.append(ProviderResult(label, verdict, dims, served_other[label], len(by_label[label])))
    results.sort(key=lambda p: (p.provider != reference, p.provider))
    return VerifyResult(run_id, str(meta.get("model")), reference, reason, results, count,
                        _level(count))


def _level(tests: int) -> float:
    """Bonferroni: each one-sided test at FAMILY_ERROR / tests (a two-sided interval at twice that)."""
    return 1 - 2 * FAMILY_ERROR / max(1, tests)


# ------------------------------------------------------------------- observations per provider
@dataclass
class _Obs:
    accuracy: dict[tuple[str, str, str, int], tuple[int, int]] = field(default_factory=dict)  # -> (pass, idx)
    called: dict[tuple[str, str, str, int], tuple[bool, int]] = field(default_factory=dict)
    call_valid: list[tuple[int, int]] = field(default_factory=list)  # (valid, idx) per call
    structured: dict[tuple[str, str, str, int], tuple[int, int]] = field(default_factory=dict)
    json_valid: list[int] = field(default_factory=list)
    params: dict[tuple[str, str, str, int], tuple[int, int]] = field(default_factory=dict)
    param_names: set[str] = field(default_factory=set)
    prompt_tokens: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    bytes_per_token: dict[tuple[str, str, str, int], float] = field(default_factory=dict)
    cost_ratio: list[float] = field(default_factory=list)
    streams: dict[tuple[str, str, str, int], tuple[int, int]] = field(default_factory=dict)
    errors: int = 0


def _key(p: Probe) -> tuple[str, str, str, int]:
    return (p.base, p.variant, p.mode, p.repeat)


def _observations(rows: list[dict[str, Any]], meta: dict[str, Any], info: dict[str, Any] | None) -> _Obs:
    o = _Obs()
    prices = (info or {}).get("pricing") or {}
    schemas = meta.get("tools") or {}
    by_group: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in rows:
        p: Probe = r["probe"]
        if r["outcome"] != "ok":
            o.errors += 1
            if p.dimension == "streaming" and p.mode == "s":
                o.streams[(p.base, p.variant, "", p.repeat)] = (0, r["request_idx"])
            continue
        if r["prompt_tokens"] is not None:
            o.prompt_tokens.setdefault((p.base, p.variant), []).append(int(r["prompt_tokens"]))
        text = r["output_text"] or ""
        _cost_ratio(o, r, prices)
        if r["completion_tokens"] and text and not r["tool_calls_json"] and not r["reasoning_tokens"]:
            o.bytes_per_token[_key(p)] = len(text.encode()) / int(r["completion_tokens"])
        if p.dimension == "accuracy" and r["passed"] is not None:
            o.accuracy[_key(p)] = (int(bool(r["passed"])), r["request_idx"])
        elif p.dimension == "tool_calls":
            calls = json.loads(r["tool_calls_json"]) if r["tool_calls_json"] else []
            o.called[_key(p)] = (bool(calls), r["request_idx"])
            for call in calls:
                o.call_valid.append((int(_arguments_valid(call, schemas)), r["request_idx"]))
        elif p.dimension == "structured_output":
            o.structured[_key(p)] = (int(bool(r["passed"])), r["request_idx"])
            o.json_valid.append(int(_is_json(text)))
        elif p.dimension == "parameters":
            by_group.setdefault((p.base, p.variant), {})[p.repeat] = r
        elif p.dimension == "streaming":
            by_group.setdefault(("stream:" + p.base, p.mode), {})[p.repeat] = r
    _parameters(o, by_group, meta)
    _streams(o, by_group)
    return o


def _cost_ratio(o: _Obs, r: dict[str, Any], prices: dict[str, Any]) -> None:
    """Billed cost over the provider's own price x the tokens it reported (a detail, not a test:
    discounts and caching move it legitimately)."""
    if r["cost_usd"] is None or r["prompt_tokens"] is None or r["completion_tokens"] is None:
        return
    try:
        expected = (Decimal(str(prices.get("prompt") or 0)) * r["prompt_tokens"]
                    + Decimal(str(prices.get("completion") or 0)) * r["completion_tokens"])
    except ArithmeticError:
        return
    if expected > 0:
        o.cost_ratio.append(float(Decimal(r["cost_usd"]) / expected))


def _arguments_valid(call: dict[str, Any], schemas: dict[str, Any]) -> bool:
    schema = schemas.get(str(call.get("name")))
    try:
        args = json.loads(call.get("arguments") or "")
    except ValueError:
        return False
    if schema is None:
        return isinstance(args, dict)
    return not any(True for _ in jsonschema.Draft202012Validator(schema).iter_errors(args))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _parameters(o: _Obs, groups: dict[tuple[str, str], dict[int, dict[str, Any]]], meta: dict[str, Any]) -> None:
    limits = meta.get("max_tokens") or {}
    low = [r["reasoning_tokens"] or 0 for (b, v), g in groups.items() if b == "param-reasoning" and v == "low"
           for r in g.values()]
    for (base, variant), group in groups.items():
        name = PARAMETERS.get(base)
        if name is None:
            continue
        first = group.get(min(group)) if group else None
        for rep, r in sorted(group.items()):
            text = r["output_text"] or ""
            if name == "max_tokens":
                limit = int(limits.get(base, 16))
                ok = r["finish_reason"] == "length" and (r["completion_tokens"] or 0) <= limit
            elif name == "stop":
                ok = STOP_SEQUENCE not in text and r["finish_reason"] == "stop"
            elif name in ("temperature", "seed"):
                if first is None or rep == min(group):
                    continue
                ok = text == (first["output_text"] or "")
            elif variant == "high":
                ok = bool(low) and (r["reasoning_tokens"] or 0) > max(low)
            else:
                continue
            o.param_names.add(name)
            o.params[(base, variant, "s", rep)] = (int(ok), r["request_idx"])


def _streams(o: _Obs, groups: dict[tuple[str, str], dict[int, dict[str, Any]]]) -> None:
    for (base, mode), group in groups.items():
        if not base.startswith("stream:") or mode != "s":
            continue
        plain = groups.get((base, "n"), {})
        for rep, r in group.items():
            other = plain.get(rep)
            if other is None:
                continue
            whole = r["finish_reason"] in ("stop", "length")
            same = (r["output_text"] or "").strip() == (other["output_text"] or "").strip()
            o.streams[(base, "", "", rep)] = (int(whole and same), r["request_idx"])


def _most_agreeing(obs: dict[str, _Obs]) -> str:
    """The provider whose answers agree most with the majority of all providers' answers."""
    def answers(o: _Obs) -> dict[Any, Any]:
        return {**{("a", *k): v[0] for k, v in o.accuracy.items()},
                **{("t", *k): v[0] for k, v in o.called.items()},
                **{("s", *k): v[0] for k, v in o.structured.items()}}

    each = {label: answers(o) for label, o in obs.items()}
    keys = {k for a in each.values() for k in a}
    majority = {}
    for k in keys:
        votes = [a[k] for a in each.values() if k in a]
        counts = sorted((votes.count(v) for v in set(votes)), reverse=True)
        if len(counts) == 1 or counts[0] > counts[1]:  # a tie says nothing about who is right
            majority[k] = max(set(votes), key=votes.count)
    score = {label: sum(a[k] == majority[k] for k in a if k in majority) / max(1, len(a))
             for label, a in each.items()}
    return min(score, key=lambda label: (-score[label], label))


# ------------------------------------------------------------------- tests
def _paired(dimension: str, name: str, mine: dict[Any, tuple[int, int]], ref: dict[Any, tuple[int, int]],
            tolerance: float, seed: int, note: str = "") -> _Test:
    keys = sorted(set(mine) & set(ref))
    d = [mine[k][0] - ref[k][0] for k in keys]
    hits = sum(mine[k][0] for k in keys)

    def draw(level: float) -> tuple[float, float] | None:
        if len(d) < 2:
            return None
        if min(d) == max(d):
            return float(d[0]), float(d[0])
        return stats.bootstrap_ci(d, level, stat=statistics.fmean, n_resamples=N_RESAMPLES, seed=seed)

    return _Test(dimension, name, hits / len(keys) if keys else None,
                 sum(ref[k][0] for k in keys) / len(keys) if keys else None, len(keys), draw, tolerance,
                 rate=(hits, len(keys)), note=note, failing=[mine[k][1] for k in keys if not mine[k][0]])


def _f1_test(mine: _Obs, ref: _Obs, seed: int) -> _Test:
    """Trigger F1 with the reference's decisions as the truth (K2-Vendor-Verifier)."""
    keys = sorted(set(mine.called) & set(ref.called))
    truth = np.array([ref.called[k][0] for k in keys], dtype=bool)
    pred = np.array([mine.called[k][0] for k in keys], dtype=bool)

    def f1(t: np.ndarray, p: np.ndarray) -> np.ndarray:
        tp = (t & p).sum(axis=-1)
        wrong = (t ^ p).sum(axis=-1)
        return np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(1, 2 * tp + wrong), 1.0)

    value = float(f1(truth, pred)) if keys else None

    def draw(level: float) -> tuple[float, float] | None:
        if len(keys) < 2:
            return None
        idx = np.random.default_rng(seed).integers(0, len(keys), size=(N_RESAMPLES, len(keys)))
        diffs = np.sort(f1(truth[idx], pred[idx]) - 1.0)
        tail = (1 - level) / 2
        return float(np.quantile(diffs, tail)), float(np.quantile(diffs, 1 - tail))

    fn = sum(1 for t, p in zip(truth, pred) if t and not p)
    fp = sum(1 for t, p in zip(truth, pred) if p and not t)
    failing = [mine.called[k][1] for k in keys if mine.called[k][0] != ref.called[k][0]]
    return _Test("tool_calls", "trigger F1", value, 1.0 if keys else None, len(keys), draw,
                 TOLERANCE["tool_f1"], note=f"{fn} missed call(s), {fp} call(s) the reference did not make",
                 failing=failing)


def _unpaired_rate(dimension: str, name: str, mine: list[tuple[int, int]], ref: list[tuple[int, int]],
                   tolerance: float, seed: int) -> _Test:
    a, b = [v for v, _ in ref], [v for v, _ in mine]

    def draw(level: float) -> tuple[float, float] | None:
        c = stats.compare(a, b, level, n_resamples=N_RESAMPLES, seed=seed, stat=statistics.fmean)
        return None if c.ci_lo is None or c.ci_hi is None else (c.ci_lo, c.ci_hi)

    return _Test(dimension, name, statistics.fmean(b) if b else None, statistics.fmean(a) if a else None,
                 min(len(a), len(b)), draw, tolerance, rate=(sum(b), len(b)),
                 failing=[i for v, i in mine if not v])


def _ratio_test(dimension: str, name: str, ratios: list[float], tolerance: float, seed: int,
                value: float | None, reference_value: float | None, note: str = "") -> _Test:
    """Two-sided: a ratio to the reference (1 = the same), as a difference from 1."""
    d = [r - 1 for r in ratios]

    def draw(level: float) -> tuple[float, float] | None:
        if len(d) < 2:
            return None
        if max(d) - min(d) < 1e-12:
            return d[0], d[0]
        return stats.bootstrap_ci(d, level, stat=statistics.fmean, n_resamples=N_RESAMPLES, seed=seed)

    return _Test(dimension, name, value, reference_value, len(d), draw, tolerance, two_sided=True, note=note)


def _usage_tests(mine: _Obs, ref: _Obs, info: dict[str, Any] | None, seed: int) -> list[_Test]:
    keys = sorted(set(mine.prompt_tokens) & set(ref.prompt_tokens))
    ratios = [statistics.fmean(mine.prompt_tokens[k]) / statistics.fmean(ref.prompt_tokens[k])
              for k in keys if statistics.fmean(ref.prompt_tokens[k]) > 0]
    mean_ratio = statistics.fmean(ratios) if ratios else None
    out = [_ratio_test("usage", "prompt_tokens ratio", ratios, TOLERANCE["prompt_tokens_ratio"], seed,
                       mean_ratio, 1.0 if ratios else None,
                       note="same prompts, same tokenizer: prompt_tokens should match the reference's; "
                            f"billed cost / (price x tokens) median {_median(mine.cost_ratio)} "
                            f"(reference {_median(ref.cost_ratio)})")]
    same = sorted(set(mine.bytes_per_token) & set(ref.bytes_per_token))
    bpt = [mine.bytes_per_token[k] / ref.bytes_per_token[k] for k in same]
    if bpt:
        mine_mean = statistics.fmean(mine.bytes_per_token[k] for k in same)
        ref_mean = statistics.fmean(ref.bytes_per_token[k] for k in same)
        out.append(_ratio_test("usage", "bytes per completion token ratio", bpt, TOLERANCE["bytes_per_token_ratio"],
                               seed, statistics.fmean(bpt), 1.0,
                               note=f"{mine_mean:.2f} bytes/token against the reference's {ref_mean:.2f}, "
                                    "same probes"))
    return out


def _tests(mine: _Obs, ref: _Obs, info: dict[str, Any] | None, seed: int) -> list[_Test]:
    supported = set((info or {}).get("supported_parameters") or []) if info else None
    tested = {n for n in mine.param_names if supported is None or n in supported or
              (n == "max_tokens" and "max_completion_tokens" in supported)}
    params = {k: v for k, v in mine.params.items() if PARAMETERS.get(k[0]) in tested}
    skipped = sorted(mine.param_names - tested)
    out = [
        _paired("accuracy", "pass rate", mine.accuracy, ref.accuracy, TOLERANCE["accuracy"], seed),
        _f1_test(mine, ref, seed),
        _unpaired_rate("tool_calls", "schema-valid arguments", mine.call_valid, ref.call_valid,
                       TOLERANCE["tool_schema_valid"], seed),
        _paired("structured_output", "schema-valid rate", mine.structured, ref.structured,
                TOLERANCE["structured_output"], seed,
                note=f"valid JSON {_share(mine.json_valid)} (reference {_share(ref.json_valid)})"),
        *[_paired("parameters", f"{name} honoured", {k: v for k, v in params.items() if PARAMETERS[k[0]] == name},
                  ref.params, TOLERANCE["parameters"], seed, note=_param_note(params, tested, skipped))
          for name in sorted(tested)],
        *_usage_tests(mine, ref, info, seed),
        _paired("streaming", "whole and equal to the non-streamed answer", mine.streams, ref.streams,
                TOLERANCE["streaming"], seed),
    ]
    return out


def _median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.3f}" if values else "n/a"


def _share(values: Sequence[int]) -> str:
    return f"{sum(values)}/{len(values)}" if values else "n/a"


def _param_note(params: dict[Any, tuple[int, int]], tested: set[str], skipped: list[str]) -> str:
    parts = []
    for name in sorted(tested):
        vals = [v for k, (v, _) in params.items() if PARAMETERS.get(k[0]) == name]
        parts.append(f"{name} {sum(vals)}/{len(vals)}")
    if skipped:
        parts.append(f"n/a (not in supported_parameters): {', '.join(skipped)}")
    return "; ".join(parts)


# ------------------------------------------------------------------- verdicts
def _judge(t: _Test, tests: int, seed: int) -> Dimension:
    level = 1 - FAMILY_ERROR / max(1, tests) if t.two_sided else _level(tests)
    ci = stats.wilson_interval(*t.rate) if t.rate and t.rate[1] else (None, None)
    base = Dimension("uncertain", t.value, t.reference_value, ci[0], ci[1], failing=t.failing)
    if t.n == 0 or t.value is None:
        return Dimension("n/a", detail=f"{t.name}: nothing to compare")
    iv = t.draw(level)
    point = (t.value - 1) if t.two_sided else (t.value - (t.reference_value or 0))
    head = f"{t.name} {_fmt(t.value)} vs reference {_fmt(t.reference_value)}"
    if iv is None:
        base.more_requests_needed = 2
        base.detail = f"{head}: too few answers ({t.n}) for an interval"
        return base
    lo, hi = iv
    test = (f"{'two-sided ' if t.two_sided else ''}bootstrap {100 * level:.2f}% interval of the difference "
            f"[{lo:+.3f}, {hi:+.3f}] (Bonferroni over {tests} tests), tolerance {t.tolerance:g}, n={t.n}")
    if t.note:
        test += f"; {t.note}"
    worse_lo, worse_hi, effect = (lo, hi, point) if not t.two_sided else \
        ((-hi, -lo, -point) if point > 0 else (lo, hi, point))
    if worse_hi < 0 and effect <= -t.tolerance:
        base.verdict, base.detail = "deviates", f"{head}: worse beyond the noise; {test}"
    elif worse_lo >= -t.tolerance and (not t.two_sided or max(abs(lo), abs(hi)) <= t.tolerance):
        base.verdict, base.detail = "conforms", f"{head}; {test}"
    else:
        base.more_requests_needed = _more(lo, hi, point, t)
        base.detail = f"{head}: the interval does not settle it; {test}"
    if base.ci_lo is None and base.verdict != "n/a":
        base.ci_lo, base.ci_hi = (t.value + lo - point, t.value + hi - point)
    return base


def _more(lo: float, hi: float, point: float, t: _Test) -> int | None:
    """Answers more (per provider) at which the interval, shrinking as 1/sqrt(n), would settle."""
    half = max(1e-9, (hi - lo) / 2)
    effect = -abs(point) if t.two_sided else point
    targets = [h for h in (effect + t.tolerance, -effect if effect <= -t.tolerance else 0.0) if h > 0]
    if not targets:
        return None
    m = t.n * (half / max(targets)) ** 2
    return max(1, math.ceil(m - t.n)) if m < 1_000_000 else None


def _dimension(tests: list[_Test], count: int, seed: int) -> Dimension:
    judged = [_judge(t, count, seed) for t in tests]
    judged = [j for j in judged if j.verdict != "n/a"]
    if not judged:
        return Dimension("n/a", detail="no probe of this dimension was answered by both")
    order = {"deviates": 0, "uncertain": 1, "conforms": 2}
    worst = min(judged, key=lambda j: order[j.verdict])
    out = Dimension(worst.verdict, worst.value, worst.reference_value, worst.ci_lo, worst.ci_hi,
                    (max((j.more_requests_needed or 0 for j in judged if j.verdict == "uncertain"), default=0) or None)
                    if worst.verdict == "uncertain" else None,
                    " | ".join(j.detail for j in [worst, *[j for j in judged if j is not worst]]),
                    sorted({i for j in judged for i in j.failing}))
    return out


def _reference_result(label: str, o: _Obs, served_other: int, n: int) -> ProviderResult:
    dims = {d: Dimension("n/a", detail="the reference: every other provider is compared with it")
            for d in DIMENSIONS}
    dims["accuracy"].value = (sum(v for v, _ in o.accuracy.values()) / len(o.accuracy)) if o.accuracy else None
    return ProviderResult(label, "conforms", dims, served_other, n)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


# ------------------------------------------------------------------- for the dashboard and decide
def latest_verify(store: Store, model: str | None = None) -> str | None:
    """The newest finished verify run (of ``model`` when given)."""
    runs = store.list_runs()
    if runs.is_empty():
        return None
    names = runs.filter(pl.col("suite_name").str.starts_with("verify:"))
    if model is not None:
        names = names.filter(pl.col("suite_name") == f"verify:{model}")
    return None if names.is_empty() else str(names["run_id"][0])


def failed_providers(store: Store, model: str) -> set[str]:
    """Providers that deviated in the last verify of ``model``, by tag and by served-by name
    (Decide leaves them out, whichever way its runs name providers)."""
    run_id = latest_verify(store, model)
    if run_id is None:
        return set()
    result = verify_run(store, run_id)
    names = verify_meta(store, run_id).get("providers") or {}
    failed = {p.provider for p in result.providers if p.verdict == "deviates"}
    return failed | {str(names[t]["name"]) for t in failed if t in names and names[t].get("name")}


def money(v: Decimal | None) -> str:
    return "n/a" if v is None else f"${v:.6f}"


# ------------------------------------------------------------------- output
def junit_xml(result: VerifyResult) -> str:
    """JUnit XML: one testcase per provider x dimension (a deviation is a failure, n/a is skipped)."""
    from xml.etree import ElementTree as ET

    cases = [(p, d) for p in result.providers for d in DIMENSIONS]
    failures = sum(1 for p, d in cases if p.dimensions[d].verdict == "deviates")
    skipped = sum(1 for p, d in cases if p.dimensions[d].verdict == "n/a")
    suite = ET.Element("testsuite", name=f"verify:{result.model}", tests=str(len(cases)),
                       failures=str(failures), skipped=str(skipped), errors="0")
    for p, d in cases:
        dim = p.dimensions[d]
        case = ET.SubElement(suite, "testcase", classname=f"verify.{result.model}.{p.provider}", name=d)
        if dim.verdict == "deviates":
            ET.SubElement(case, "failure", message=f"{p.provider} deviates on {d}").text = dim.detail
        elif dim.verdict == "n/a":
            ET.SubElement(case, "skipped", message=dim.detail or "n/a")
        else:
            ET.SubElement(case, "system-out").text = f"{dim.verdict}: {dim.detail}"
    root = ET.Element("testsuites", name="orbench verify")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def matrix_rows(result: VerifyResult) -> list[dict[str, Any]]:
    """One row per provider: its verdict and, per dimension, the verdict and the value."""
    rows = []
    for p in result.providers:
        row: dict[str, Any] = {"provider": p.provider, "verdict": p.verdict,
                               "reference": p.provider == result.reference,
                               "served_by_other": p.served_by_other, "requests": p.requests}
        for d in DIMENSIONS:
            row[d] = p.dimensions[d].verdict
            row[f"{d}_value"] = p.dimensions[d].value
        rows.append(row)
    return rows


def matrix_text(result: VerifyResult) -> str:
    """The matrix for people: provider x dimension, verdict and value."""
    head = ["provider", "verdict", *DIMENSIONS]
    lines = [head]
    for p in result.providers:
        cells = [p.provider + (" (reference)" if p.provider == result.reference else ""), p.verdict]
        for d in DIMENSIONS:
            dim = p.dimensions[d]
            value = "" if dim.value is None else f" {dim.value:.3g}"
            cells.append(f"{dim.verdict}{value}")
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)


def failing_answers(store: Store, run_id: str, result: VerifyResult, provider: str, dimension: str) -> pl.DataFrame:
    """The answers of ``provider`` that failed ``dimension``, each beside the reference's answer to the probe."""
    found = next((p for p in result.providers if p.provider == provider), None)
    idx = found.dimensions[dimension].failing if found is not None else []
    rows = verify_rows(store, run_id)
    cols = ["case_id", "outcome", "finish_reason", "prompt_tokens", "completion_tokens", "output_text",
            "tool_calls_json"]
    if rows.is_empty() or not idx:
        return pl.DataFrame(schema={c: rows.schema.get(c, pl.String) for c in ["request_idx", *cols]})
    mine = rows.filter(pl.col("request_idx").is_in(idx)).select("request_idx", *cols)
    ref = rows.filter((pl.col("label") == result.reference) & pl.col("case_id").is_in(mine["case_id"].implode()))
    ref = ref.select("case_id", pl.col("output_text").alias("reference_output"),
                     pl.col("tool_calls_json").alias("reference_tool_calls"),
                     pl.col("prompt_tokens").alias("reference_prompt_tokens")).unique("case_id", keep="first")
    return mine.join(ref, on="case_id", how="left").sort("request_idx")


def verify_runs(store: Store) -> pl.DataFrame:
    """Verify runs, newest first: run_id, model (from the suite name), status, created_at."""
    runs = store.list_runs()
    if runs.is_empty():
        return pl.DataFrame(schema={"run_id": pl.String, "model": pl.String, "status": pl.String})
    runs = runs.filter(pl.col("suite_name").str.starts_with("verify:"))
    return runs.select("run_id", pl.col("suite_name").str.strip_prefix("verify:").alias("model"), "status",
                       "simulated")

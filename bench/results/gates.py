"""CI gates: ``--fail-on "ttft_p95_ms>1500"`` checked per model x provider and for the total.

A gate names a summary metric, a comparison and a number; it *fails* when the
comparison is true for a group (the expression says what is not acceptable).
Groups whose metric is undefined (e.g. no ok rows, so no TTFT) fail a latency
gate: an unmeasured model must not pass a latency requirement silently.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from bench.errors import ConfigError
from bench.records import FINISHED_OUTCOMES

GATE_METRICS = {
    "ttft_p50_ms", "ttft_p90_ms", "ttft_p95_ms", "ttft_p99_ms",
    "e2e_p50_ms", "e2e_p95_ms", "tpot_p50_ms", "decode_tps_p50",
    "error_rate", "rate_limited_rate", "cost_usd", "cost_per_request_usd",
    "pass_rate", "n", "ok", "retries_429", "cost_per_conversation_usd", "cache_discount_pct",
}
OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_GATE_RE = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    value: float

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    group: str  # "model [variant]" or "TOTAL"
    observed: float | None
    failed: bool


def parse_gate(expr: str) -> Gate:
    m = _GATE_RE.match(expr)
    if not m:
        raise ConfigError(
            f"--fail-on {expr!r}: expected METRIC OP NUMBER, e.g. 'ttft_p95_ms>1500'"
        )
    metric, op, num = m.groups()
    if metric not in GATE_METRICS:
        raise ConfigError(
            f"--fail-on {expr!r}: unknown metric {metric!r}; known: {', '.join(sorted(GATE_METRICS))}"
        )
    try:
        value = float(num)
    except ValueError:
        raise ConfigError(f"--fail-on {expr!r}: {num!r} is not a number") from None
    return Gate(metric, op, value)


def evaluate(gates: list[Gate], groups: Sequence[Mapping[str, Any]]) -> list[GateResult]:
    """``groups``: summary rows with a ``group`` label plus the metric columns."""
    out: list[GateResult] = []
    for gate in gates:
        for g in groups:
            raw = g.get(gate.metric)
            observed = None if raw is None else float(raw)
            if observed is None or math.isnan(observed):
                # cost/error metrics of a group with no rows are 0, latency is unknown
                failed = gate.metric not in {"error_rate", "rate_limited_rate", "cost_usd",
                                             "cost_per_request_usd", "retries_429"}
                out.append(GateResult(gate, g["group"], None, failed))
                continue
            out.append(GateResult(gate, g["group"], observed, OPS[gate.op](observed, gate.value)))
    return out


@dataclass(frozen=True)
class CaseResult:
    """One case on one model x provider: its measured requests and why any of them failed."""

    group: str  # "model [variant]", the testcase classname
    case_id: str  # the testcase name
    requests: int  # measured requests planned (warm-ups excluded)
    sent: int  # of them, sent and answered (any finished outcome)
    failures: tuple[str, ...]  # one line per failed or unsent request: "repeat 1: contains: ..."
    time_s: float  # summed end-to-end time of its answered requests

    @property
    def skipped(self) -> bool:
        """None of its requests was sent (budget, a stopped run, a dropped target): nothing measured."""
        return self.sent == 0

    @property
    def failed(self) -> bool:
        return bool(self.failures) and not self.skipped


def case_results(rows: Any) -> list[CaseResult]:
    """Per case x model x provider from the run's current rows (a polars frame, warm-ups dropped).

    A case passes when every measured request was answered ``ok`` and passed its checks;
    a request that failed says why (the failed checks' reasons, or its outcome and error).
    A case none of whose requests was sent (budget, a stopped run) is skipped."""
    out: list[CaseResult] = []
    if rows.is_empty():
        return out
    keys = ["model", "provider_variant", "case_id"]
    for (model, variant, case_id), g in rows.sort("request_idx").group_by(keys, maintain_order=True):
        failures, sent, time_ms = [], 0, 0.0
        for r in g.iter_rows(named=True):
            why = _request_failure(r)
            sent += r["outcome"] in FINISHED_OUTCOMES
            time_ms += r["e2e_ms"] or 0.0
            if why is not None:
                failures.append(f"repeat {r['repeat']}: {why}")
        out.append(CaseResult(f"{model} [{variant}]", str(case_id), g.height, sent, tuple(failures),
                              time_ms / 1000))
    # reading order: each model x provider in turn, its cases in suite order
    groups = {g: i for i, g in enumerate(dict.fromkeys(c.group for c in out))}
    case_order = {c: i for i, c in enumerate(dict.fromkeys(rows.sort("request_idx")["case_id"].to_list()))}
    return sorted(out, key=lambda c: (groups[c.group], case_order[c.case_id]))


def _request_failure(r: dict[str, Any]) -> str | None:
    """Why one request fails its testcase, or None when it was answered and passed its checks."""
    outcome = r["outcome"]
    if outcome == "ok":
        if r.get("passed") is False:
            return check_reasons(r.get("check_detail")) or "failed its checks"
        return None
    error = r.get("error")
    return f"{outcome}: {error}" if error else f"{outcome or 'not finished'}"


def check_reasons(detail: str | None) -> str:
    """The failed checks of one row's ``check_detail`` JSON: 'contains: ...; regex: ...'."""
    try:
        checks = json.loads(detail or "[]")
    except json.JSONDecodeError:
        return ""
    return "; ".join(f"{c.get('kind')}: {c.get('reason')}" for c in checks
                     if isinstance(c, dict) and c.get("passed") is False)


def junit_xml(results: list[GateResult], suite_name: str, cases: list[CaseResult] | None = None) -> str:
    """JUnit XML: one testsuite of cases (case x model x provider) and one of gates, side by side."""
    cases = cases or []
    suites = [_case_suite(cases, f"{suite_name} cases"), _gate_suite(results, f"{suite_name} gates")]
    tests = len(cases) + len(results)
    failures = sum(c.failed for c in cases) + sum(r.failed for r in results)
    skipped = sum(c.skipped for c in cases)
    head = (f'<testsuites name={_attr(suite_name)} tests="{tests}" failures="{failures}" '
            f'errors="0" skipped="{skipped}">')
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', head, *suites, "</testsuites>"]) + "\n"


def _case_suite(cases: list[CaseResult], name: str) -> str:
    failures, skipped = sum(c.failed for c in cases), sum(c.skipped for c in cases)
    lines = [f'  <testsuite name={_attr(name)} tests="{len(cases)}" failures="{failures}" errors="0" '
             f'skipped="{skipped}" time="{sum(c.time_s for c in cases):.3f}">']
    for c in cases:
        lines.append(f'    <testcase classname={_attr(c.group)} name={_attr(c.case_id)} time="{c.time_s:.3f}">')
        if not c.failed and not c.skipped:
            lines[-1] = lines[-1][:-1] + "/>"
            continue
        if c.failed:
            msg = f"{len(c.failures)} of {c.requests} requests failed: {c.failures[0]}"
            lines.append(f'      <failure message={_attr(msg)} type="orbench.case">'
                         f'{_text(chr(10).join(c.failures))}</failure>')
        elif c.skipped:
            why = f"none of its {c.requests} requests was sent" + (f" ({c.failures[0]})" if c.failures else "")
            lines.append(f'      <skipped message={_attr(why)}/>')
        lines.append("    </testcase>")
    lines.append("  </testsuite>")
    return "\n".join(lines)


def _gate_suite(results: list[GateResult], name: str) -> str:
    failures = sum(r.failed for r in results)
    lines = [f'  <testsuite name={_attr(name)} tests="{len(results)}" failures="{failures}" errors="0" '
             'skipped="0">']
    for r in results:
        lines.append(f'    <testcase classname="orbench.gates" name={_attr(f"{r.group} :: {r.gate.text}")}>')
        if not r.failed:
            lines[-1] = lines[-1][:-1] + "/>"
            continue
        if r.failed:
            obs = "unmeasured" if r.observed is None else f"{r.observed:g}"
            lines.append(f'      <failure message={_attr(f"{r.gate.metric} = {obs} breaks {r.gate.text}")} '
                         'type="orbench.gate"/>')
        lines.append("    </testcase>")
    lines.append("  </testsuite>")
    return "\n".join(lines)


# XML 1.0 cannot carry most control characters at all, even escaped; answers and errors may.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", value))


def _attr(value: str) -> str:
    """A quoted attribute value; newlines and tabs as character references so they survive."""
    return quoteattr(_NOT_XML.sub("\ufffd", value), {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def results_markdown(results: list[GateResult]) -> str:
    if not results:
        return ""
    lines = ["| group | gate | observed | result |", "|---|---|---:|---|"]
    for r in results:
        obs = "—" if r.observed is None else f"{r.observed:.4g}"
        lines.append(f"| {r.group} | `{r.gate.text}` | {obs} | {'FAIL' if r.failed else 'pass'} |")
    return "\n".join(lines) + "\n"

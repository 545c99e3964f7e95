"""CI gates: ``--fail-on "ttft_p95_ms>1500"`` checked per model x provider and for the total.

A gate names a summary metric, a comparison and a number; it *fails* when the
comparison is true for a group (the expression says what is not acceptable).
Groups whose metric is undefined (e.g. no ok rows, so no TTFT) fail a latency
gate: an unmeasured model must not pass a latency requirement silently.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from bench.errors import ConfigError

GATE_METRICS = {
    "ttft_p50_ms", "ttft_p90_ms", "ttft_p95_ms", "ttft_p99_ms",
    "e2e_p50_ms", "e2e_p95_ms", "tpot_p50_ms", "decode_tps_p50",
    "error_rate", "rate_limited_rate", "cost_usd", "cost_per_request_usd",
    "pass_rate", "n", "ok", "retries_429",
}
_OPS = {
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


def evaluate(gates: list[Gate], groups: list[dict[str, Any]]) -> list[GateResult]:
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
            out.append(GateResult(gate, g["group"], observed, _OPS[gate.op](observed, gate.value)))
    return out


def junit_xml(results: list[GateResult], suite_name: str) -> str:
    failures = sum(r.failed for r in results)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuite name="{escape(suite_name)}" tests="{len(results)}" failures="{failures}">',
    ]
    for r in results:
        name = escape(f"{r.group} :: {r.gate.text}", {'"': "&quot;"})
        lines.append(f'  <testcase classname="orbench.gates" name="{name}">')
        if r.failed:
            obs = "unmeasured" if r.observed is None else f"{r.observed:g}"
            msg = escape(f"{r.gate.metric} = {obs} breaks {r.gate.text}", {'"': "&quot;"})
            lines.append(f'    <failure message="{msg}"/>')
        lines.append("  </testcase>")
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"


def results_markdown(results: list[GateResult]) -> str:
    if not results:
        return ""
    lines = ["| group | gate | observed | result |", "|---|---|---:|---|"]
    for r in results:
        obs = "—" if r.observed is None else f"{r.observed:.4g}"
        lines.append(f"| {r.group} | `{r.gate.text}` | {obs} | {'FAIL' if r.failed else 'pass'} |")
    return "\n".join(lines) + "\n"

"""Evaluating a case's checks on one answer: one evaluation for a run and for re-scoring.

The checks were parsed with the suite (``bench.suites.checks``: kinds, typed specs,
what each kind means). Scoring: score = weight of passed checks / weight of evaluated
checks; a case passes when score >= its ``pass_threshold`` (default 1.0: every check). A
check that could not be evaluated (no judge, a measurement missing) has ``passed=None``
and counts for neither side; the outcome is ``None`` when the pending weight could still
decide it.

Evaluation is pure. The judge is the one check this module cannot run: the caller
passes ``judge_fn`` (sync, or async through ``evaluate_checks_async``); without it the
judge is recorded as not evaluated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import jsonschema
from referencing.exceptions import Unresolvable

from bench.errors import BenchError
from bench.records import ToolCall
from bench.suites.checks import (
    DEFAULT_PASS_SCORE,
    Check,
    JudgeSpec,
    NumericSpec,
    SchemaSpec,
    ToolCallSpec,
    build_validator,
)

_EPSILON = 1e-9
# A number not glued to a word or another number: "-5" in "x = -5" but 5 in "3-5".
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\w.])-?\.\d+")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n\s*```$", re.DOTALL)


@dataclass(frozen=True)
class JudgeVerdict:
    """What a judge callback returns: a score in [0, 1] and why."""

    score: float
    reason: str = ""


@dataclass(frozen=True)
class CheckResult:
    kind: str
    passed: bool | None  # None = not evaluated
    score: float | None  # 1.0/0.0, the judge's score, or None when not evaluated
    reason: str | None  # why it failed or was not evaluated; None when it passed
    weight: float = 1.0


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool | None  # None when there are no checks or pending ones could decide
    score: float | None  # passed weight / evaluated weight; None when nothing was evaluated
    results: list[CheckResult]
    threshold: float = 1.0
JudgeFn = Callable[[JudgeSpec, str], JudgeVerdict]


AsyncJudgeFn = Callable[[JudgeSpec, str], Awaitable[JudgeVerdict]]


# ----------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class Answer:
    """What one request produced, as the checks see it."""

    text: str
    tool_calls: Sequence[ToolCall] = ()
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    cost_usd: Decimal | None = None
    completion_tokens: int | None = None
Verdict = tuple[bool | None, str | None]  # (passed, reason); passed None = not evaluated


def evaluate_checks(
    checks: Sequence[Check],
    *,
    output_text: str | None,
    tool_calls: Sequence[ToolCall] = (),
    ttft_ms: float | None = None,
    e2e_ms: float | None = None,
    cost_usd: Decimal | None = None,
    completion_tokens: int | None = None,
    threshold: float = 1.0,
    judge_fn: JudgeFn | None = None,
) -> CheckOutcome:
    """Run every check on one answer. Pure apart from ``judge_fn``."""
    answer = Answer(output_text or "", tool_calls, ttft_ms, e2e_ms, cost_usd, completion_tokens)
    judged: dict[int, CheckResult] = {}
    for i, check in _judge_checks(checks, judge_fn):
        try:
            assert judge_fn is not None  # _judge_checks finds none without it
            judged[i] = _judged(check, judge_fn(check.arg, answer.text))
        except BenchError as exc:
            judged[i] = _judge_failed(check, exc)
    return _outcome(checks, answer, judged, threshold)


def _judge_checks(checks: Sequence[Check], judge_fn: object) -> list[tuple[int, Check]]:
    """The judge checks that will be evaluated (none without a judge callback)."""
    return [] if judge_fn is None else [(i, c) for i, c in enumerate(checks) if c.kind == "judge"]


async def evaluate_checks_async(
    checks: Sequence[Check],
    *,
    output_text: str | None,
    judge_fn: AsyncJudgeFn | None = None,
    **measured: Any,
) -> CheckOutcome:
    """``evaluate_checks`` with an async judge (for the runner's event loop).

    ``measured``: the same keyword arguments as ``evaluate_checks`` (tool_calls,
    ttft_ms, e2e_ms, cost_usd, completion_tokens, threshold). Judge verdicts are
    awaited first, then handed to the synchronous evaluation.
    """
    verdicts: dict[int, JudgeVerdict | BenchError] = {}
    for i, check in _judge_checks(checks, judge_fn):
        try:
            assert judge_fn is not None  # _judge_checks finds none without it
            verdicts[i] = await judge_fn(check.arg, output_text or "")
        except BenchError as exc:
            verdicts[i] = exc

    def replay(spec: JudgeSpec, answer: str) -> JudgeVerdict:
        i = next(k for k, c in enumerate(checks) if c.arg is spec)
        found = verdicts[i]
        if isinstance(found, BenchError):
            raise found
        return found

    return evaluate_checks(checks, output_text=output_text, judge_fn=replay if verdicts else None,
                           **measured)


def checked_cost(cost_usd: Decimal | None, list_cost_usd: Decimal | None) -> Decimal | None:
    """The cost a ``max_cost_usd`` check sees: the reported cost, else the list cost. A reported
    $0 is a cost ($0), not a missing one."""
    return cost_usd if cost_usd is not None else list_cost_usd


async def evaluate_row(
    checks: Sequence[Check],
    *,
    output_text: str | None,
    tool_calls: Sequence[ToolCall],
    ttft_ms: float | None,
    e2e_ms: float | None,
    cost_usd: Decimal | None,
    list_cost_usd: Decimal | None,
    completion_tokens: int | None,
    threshold: float,
    judge_fn: AsyncJudgeFn | None,
) -> CheckOutcome:
    """One answer's checks, as the run scores it and ``orbench check`` re-scores it (one rule)."""
    return await evaluate_checks_async(
        checks, output_text=output_text, tool_calls=tool_calls, ttft_ms=ttft_ms, e2e_ms=e2e_ms,
        cost_usd=checked_cost(cost_usd, list_cost_usd), completion_tokens=completion_tokens,
        threshold=threshold, judge_fn=judge_fn,
    )


def results_json(outcome: CheckOutcome) -> str:
    """The per-check results as a JSON list, for ``RequestRow.check_detail``."""
    return json.dumps([asdict(r) for r in outcome.results], ensure_ascii=False)


def _outcome(
    checks: Sequence[Check], answer: Answer, judged: dict[int, CheckResult], threshold: float
) -> CheckOutcome:
    results = [judged.get(i) or _evaluate_one(c, answer) for i, c in enumerate(checks)]
    return _aggregate(results, threshold)


def _evaluate_one(check: Check, answer: Answer) -> CheckResult:
    passed, reason = _EVALUATORS[check.kind](check.arg, answer)
    score = None if passed is None else float(passed)
    return CheckResult(check.kind, passed, score, None if passed else reason, check.weight)


def _judged(check: Check, verdict: JudgeVerdict) -> CheckResult:
    spec: JudgeSpec = check.arg
    pass_score = DEFAULT_PASS_SCORE if spec.pass_score is None else spec.pass_score
    passed = verdict.score >= pass_score - _EPSILON
    reason = f"judge score {verdict.score:.2f} < {pass_score:.2f}: {verdict.reason}".rstrip(": ")
    return CheckResult("judge", passed, verdict.score, None if passed else reason, check.weight)


def _judge_failed(check: Check, exc: BenchError) -> CheckResult:
    """A judge request that failed is a missing measurement, not a failed answer."""
    return CheckResult("judge", None, None, f"not evaluated: judge failed: {exc}", check.weight)


def _aggregate(results: list[CheckResult], threshold: float) -> CheckOutcome:
    total = sum(r.weight for r in results)
    passed = sum(r.weight for r in results if r.passed)
    pending = sum(r.weight for r in results if r.passed is None)
    evaluated = total - pending
    score = passed / evaluated if evaluated > 0 else None
    if not results:
        verdict: bool | None = None
    elif passed / total >= threshold - _EPSILON:
        verdict = True  # passes even if every pending check fails
    elif (passed + pending) / total < threshold - _EPSILON:
        verdict = False  # fails even if every pending check passes
    else:
        verdict = None
    return CheckOutcome(verdict, score, results, threshold)


def _clip(text: str, limit: int = 60) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _eval_equals(expected: str, a: Answer) -> Verdict:
    got = a.text.strip()
    return got == expected.strip(), f"expected {expected!r}, got {_clip(got)!r}"


def _eval_contains(expected: str, a: Answer) -> Verdict:
    return expected in a.text, f"{expected!r} not found in the answer"


def _eval_icontains(expected: str, a: Answer) -> Verdict:
    return expected.casefold() in a.text.casefold(), f"{expected!r} not found in the answer (ignoring case)"


def _eval_not_contains(unwanted: str, a: Answer) -> Verdict:
    return unwanted not in a.text, f"{unwanted!r} found in the answer"


def _eval_regex(pattern: re.Pattern[str], a: Answer) -> Verdict:
    return pattern.search(a.text) is not None, f"no match for /{pattern.pattern}/ in {_clip(a.text)!r}"


def _eval_one_of(options: tuple[str, ...], a: Answer) -> Verdict:
    got = a.text.strip().rstrip(".").strip()
    ok = got.casefold() in {o.casefold() for o in options}
    return ok, f"expected one of {', '.join(repr(o) for o in options)}, got {_clip(got)!r}"


def last_number(text: str) -> Decimal | None:
    """The last number written in ``text`` ('1,234.5' -> 1234.5), or None."""
    found = _NUMBER.findall(text)
    return Decimal(found[-1].replace(",", "")) if found else None


def _eval_numeric(spec: NumericSpec, a: Answer) -> Verdict:
    got = last_number(a.text)
    if got is None:
        return False, f"no number in the answer {_clip(a.text)!r}"
    within = abs(got - spec.value) <= spec.tolerance
    plus_minus = f" ± {spec.tolerance}" if spec.tolerance else ""
    return within, f"expected {spec.value}{plus_minus}, got {got} (the last number in the answer)"


def _parse_json(text: str) -> tuple[Any, str | None]:
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    try:
        return json.loads(fenced.group(1) if fenced else stripped), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def _eval_json_valid(_: bool, a: Answer) -> Verdict:
    _value, problem = _parse_json(a.text)
    return problem is None, problem


def _eval_json_schema(spec: SchemaSpec, a: Answer) -> Verdict:
    value, problem = _parse_json(a.text)
    if problem:
        return False, problem
    validator = spec.validator or build_validator(spec.schema, spec.file)
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except Unresolvable as exc:  # cannot happen for a suite's schema: its refs were resolved at load
        return False, f"the schema has an unresolvable $ref ({exc})"
    if error is None:
        return True, None
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return False, f"does not match the schema at {where}: {error.message}"


def _eval_tool_call(spec: ToolCallSpec, a: Answer) -> Verdict:
    named = [c for c in a.tool_calls if c.name == spec.name]
    if not named:
        seen = ", ".join(repr(c.name) for c in a.tool_calls) or "none"
        return False, f"no call to {spec.name!r} (tool calls: {seen})"
    reasons = [_arguments_mismatch(spec, call) for call in named]
    return any(r is None for r in reasons), next((r for r in reasons if r), None)


def _arguments_mismatch(spec: ToolCallSpec, call: ToolCall) -> str | None:
    if spec.arguments is None:
        return None
    try:
        actual = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        return f"{spec.name} arguments are not valid JSON ({exc.msg}): {_clip(call.arguments)!r}"
    mismatch = _subset_mismatch(spec.arguments, actual, "")
    return None if mismatch is None else f"{spec.name} arguments differ: {mismatch}"


def _subset_mismatch(expected: Any, actual: Any, path: str) -> str | None:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path or 'arguments'}: expected an object, got {json.dumps(actual)}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}{key}: missing"
            found = _subset_mismatch(value, actual[key], f"{path}{key}.")
            if found:
                return found
        return None
    same_kind = isinstance(expected, bool) == isinstance(actual, bool)  # True must not equal 1
    if same_kind and expected == actual:
        return None
    return f"{path.rstrip('.') or 'arguments'}: expected {json.dumps(expected)}, got {json.dumps(actual)}"


def _eval_max(limit: float | Decimal, measured: float | Decimal | None, what: str, unit: str) -> Verdict:
    if measured is None:
        return None, f"not evaluated: {what} not measured"
    return measured <= limit, f"{what} {measured:g}{unit} > {limit:g}{unit}"
_EVALUATORS: dict[str, Callable[[Any, Answer], Verdict]] = {
    "equals": _eval_equals,
    "contains": _eval_contains,
    "icontains": _eval_icontains,
    "not_contains": _eval_not_contains,
    "regex": _eval_regex,
    "one_of": _eval_one_of,
    "numeric": _eval_numeric,
    "json_valid": _eval_json_valid,
    "json_schema": _eval_json_schema,
    "tool_call": _eval_tool_call,
    "max_latency_ms": lambda lim, a: _eval_max(lim, a.e2e_ms, "e2e latency", " ms"),
    "max_ttft_ms": lambda lim, a: _eval_max(lim, a.ttft_ms, "TTFT", " ms"),
    "max_cost_usd": lambda lim, a: _eval_max(lim, a.cost_usd, "cost", " USD"),
    "max_output_tokens": lambda lim, a: _eval_max(lim, a.completion_tokens, "completion tokens", ""),
    "judge": lambda _spec, _a: (None, "not evaluated: no judge available"),
}

"""Quality checks on one answer: parsed with the suite, evaluated per request.

A check is a one-key mapping ``{kind: argument}``; ``weight`` (default 1) sits
beside the kind, and kinds whose argument is a scalar or a list also take the
long form ``{value: ..., weight: ...}``::

    - equals: "42"                      # whole answer, surrounding whitespace stripped
    - contains: Paris                   # also icontains (ignoring case), not_contains
    - {contains: Paris, weight: 2}      # same check, counted twice
    - contains: {value: Paris, weight: 2}
    - regex: '^\\d+$'                    # re.search on the answer
    - one_of: [positive, negative]      # stripped answer, ignoring case and a final '.'
    - numeric: 42                       # the LAST number in the answer ...
    - numeric: {value: 3.14, tolerance: 0.01}   # ... within an absolute tolerance
    - json_valid: true                  # one ```json fence around the answer is allowed
    - json_schema: {type: object, required: [name]}   # inline schema, or
    - json_schema: {file: person.schema.json}         # relative to the suite file
    - tool_call: get_weather            # or {name: get_weather, arguments: {city: Oslo}}
    - max_latency_ms: 1500              # e2e; max_ttft_ms likewise
    - max_cost_usd: 0.001
    - max_output_tokens: 200
    - judge: {rubric: "...", model: openai/gpt-4o-mini, pass_score: 0.7}

``tool_call`` arguments match as a subset: every expected key must be present
with an equal value (nested mappings recurse, lists compare whole).

Scoring: score = weight of passed checks / weight of evaluated checks; a case
passes when score >= its ``pass_threshold`` (default 1.0: every check). A check
that could not be evaluated (no judge, a measurement missing) has ``passed=None``
and counts for neither side; the outcome is ``None`` when the pending weight
could still decide it.

Parsing validates what can be validated before any request is sent (regexes
compile, schemas pass ``check_schema``, schema files are read) so a run never
stops halfway on a typo. Evaluation is pure. The judge is the one check this
module cannot run: the caller passes ``judge_fn`` (sync, or async through
``evaluate_checks_async``); without it the judge is recorded as not evaluated.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

import jsonschema
from jsonschema import validators
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from bench.errors import BenchError, SuiteError
from bench.records import ToolCall

KINDS = (
    "equals", "contains", "icontains", "not_contains", "regex", "one_of", "numeric",
    "json_valid", "json_schema", "tool_call", "max_latency_ms", "max_ttft_ms",
    "max_cost_usd", "max_output_tokens", "judge",
)  # fmt: skip
_OWN_MAPPING_KINDS = ("json_schema", "tool_call", "judge")  # their mapping is the argument
_EPSILON = 1e-9
DEFAULT_PASS_SCORE = 0.7  # a judge check passes at this score unless told otherwise
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A number not glued to a word or another number: "-5" in "x = -5" but 5 in "3-5".
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\w.])-?\.\d+")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n\s*```$", re.DOTALL)


# ----------------------------------------------------------------- messages
def did_you_mean(word: str, options: Iterable[str], n: int = 1) -> str:
    """`` (did you mean 'x'?)`` for the closest options, or '' when none is close."""
    options = list(options)
    close = difflib.get_close_matches(word, options, n=n, cutoff=0.6)
    close = close or [o for o in options if len(word) >= 3 and o.startswith(word)][:n]  # 'temp'
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def describe_value(value: object) -> str:
    """A short rendering of a YAML value for an error message: 'ten', 3.5, a list."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def schema_problem(schema: object) -> str | None:
    """Why ``schema`` is not a valid JSON Schema, or None when it is."""
    if not isinstance(schema, dict):
        return f"expected a JSON schema mapping, got {describe_value(schema)}"
    try:
        validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return f"invalid JSON schema{f' at {where}' if where else ''}: {exc.message}"
    return None


class CheckSpecError(SuiteError):
    """A malformed check. ``where`` is the place inside the checks list, e.g.
    ``(2, 'numeric', 'tolerance')``; the suite loader turns it into file + line."""

    def __init__(self, where: tuple[int | str, ...], problem: str) -> None:
        self.where = where
        self.problem = problem
        place = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where)
        super().__init__(f"checks{place}: {problem}")


def _expected(where: tuple[int | str, ...], wanted: str, value: object) -> CheckSpecError:
    return CheckSpecError(where, f"expected {wanted}, got {describe_value(value)}")


# ----------------------------------------------------------------- records
@dataclass(frozen=True)
class NumericSpec:
    value: Decimal
    tolerance: Decimal  # absolute


@dataclass(frozen=True)
class SchemaSpec:
    schema: dict[str, Any]
    file: str | None  # where it came from, for messages
    # Built once at load time with every $ref already resolved; evaluation never reads a file
    # or the network (None only for a SchemaSpec made by hand: built on first use).
    validator: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ToolCallSpec:
    name: str
    arguments: dict[str, Any] | None  # expected subset; None = any arguments


@dataclass(frozen=True)
class JudgeSpec:
    """Settings of one judge check; the suite fills unset fields from its ``judge``."""

    rubric: str | None
    model: str | None
    pass_score: float | None


@dataclass(frozen=True)
class Check:
    """One parsed check. ``arg`` is typed by kind: str (text kinds), re.Pattern
    (regex), tuple[str, ...] (one_of), NumericSpec, SchemaSpec, ToolCallSpec,
    JudgeSpec, float (max_*_ms), Decimal (max_cost_usd), int (max_output_tokens),
    True (json_valid)."""

    kind: str
    arg: Any
    weight: float = 1.0


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
ReadBytes = Callable[[str], bytes]


# ----------------------------------------------------------------- parsing
def parse_checks(raw: object, *, read_bytes: ReadBytes | None = None) -> tuple[Check, ...]:
    """Validate a YAML list of checks. ``read_bytes`` loads ``json_schema: {file}``
    references (the suite passes one relative to the suite file).
    Raises CheckSpecError."""
    if not isinstance(raw, list):
        raise _expected((), "a list of checks", raw)
    reader = read_bytes or _read_plain
    return tuple(_parse_item(item, i, reader) for i, item in enumerate(raw))


def _read_plain(ref: str) -> bytes:
    with open(ref, "rb") as fh:
        return fh.read()


def _parse_item(item: object, i: int, read_bytes: ReadBytes) -> Check:
    if not isinstance(item, dict) or not item:
        raise _expected((i,), "a mapping like {contains: Paris}", item)
    kind = _kind_of(item, i)
    arg, inner_weight = _split_long_form(kind, item[kind], (i, kind))
    if inner_weight is not None and "weight" in item:
        raise CheckSpecError((i, "weight"), "weight given twice (beside the kind and inside it)")
    weight_where = (i, "weight") if "weight" in item else (i, kind, "weight")
    weight = _weight(item.get("weight", inner_weight), weight_where)
    return Check(kind, _PARSERS[kind](arg, (i, kind), read_bytes), weight)


def _kind_of(item: dict[Any, Any], i: int) -> str:
    kinds = [k for k in item if k != "weight"]
    if not kinds:
        raise CheckSpecError((i,), f"missing the check kind (one of: {', '.join(KINDS)})")
    for k in kinds:
        if k not in _PARSERS:
            hint = did_you_mean(str(k), (*KINDS, "weight"))
            raise CheckSpecError((i, str(k)), f"unknown check kind {k!r}{hint}")
    if len(kinds) > 1:
        listed = ", ".join(kinds)
        raise CheckSpecError((i,), f"several check kinds in one item ({listed}); give each its own item")
    return str(kinds[0])


def _split_long_form(kind: str, arg: object, where: tuple[int | str, ...]) -> tuple[object, object]:
    """``{value: X, weight: W}`` -> (X, W) for kinds whose argument is not a mapping."""
    if kind in _OWN_MAPPING_KINDS or not isinstance(arg, dict):
        return arg, None
    allowed = ("value", "tolerance", "weight") if kind == "numeric" else ("value", "weight")
    _known_keys(arg, allowed, where)
    if "value" not in arg:
        raise CheckSpecError(where, "missing required key 'value'")
    if kind == "numeric":
        return {k: v for k, v in arg.items() if k != "weight"}, arg.get("weight")
    return arg["value"], arg.get("weight")


def _known_keys(mapping: dict[Any, Any], allowed: Sequence[str], where: tuple[int | str, ...]) -> None:
    for key in mapping:
        if key not in allowed:
            hint = " (put weight beside the kind: {kind: ..., weight: 2})" if key == "weight" else ""
            hint = hint or did_you_mean(str(key), allowed)
            raise CheckSpecError(where + (str(key),), f"unknown key {key!r}{hint}")


def _weight(value: object, where: tuple[int | str, ...]) -> float:
    if value is None:
        return 1.0
    if not _is_number(value) or float(value) <= 0:  # type: ignore[arg-type]
        raise _expected(where, "a positive number", value)
    return float(value)  # type: ignore[arg-type]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decimal(value: object, where: tuple[int | str, ...], *, minimum: Decimal | None = None) -> Decimal:
    """A number (or numeric string: YAML reads 1e-3 as text) as an exact Decimal."""
    try:
        number = Decimal(str(value)) if _is_number(value) or isinstance(value, str) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or (minimum is not None and number < minimum):
        floor = "" if minimum is None else f" >= {minimum}"
        raise _expected(where, f"a number{floor}", value)
    return number


def _text(value: object, where: tuple[int | str, ...], *_: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # `equals: 42` means the text "42"
    if not isinstance(value, str) or not value:
        raise _expected(where, "a non-empty string", value)
    return value


def _regex(value: object, where: tuple[int | str, ...], *_: object) -> re.Pattern[str]:
    pattern = _text(value, where)
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CheckSpecError(where, f"invalid regular expression {pattern!r}: {exc}") from None


def _one_of(value: object, where: tuple[int | str, ...], *_: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _expected(where, "a non-empty list of strings", value)
    return tuple(_text(v, where + (i,)) for i, v in enumerate(value))


def _numeric(value: object, where: tuple[int | str, ...], *_: object) -> NumericSpec:
    if not isinstance(value, dict):
        return NumericSpec(_decimal(value, where), Decimal(0))
    _known_keys(value, ("value", "tolerance"), where)
    if "value" not in value:
        raise CheckSpecError(where, "missing required key 'value'")
    tolerance = _decimal(value.get("tolerance", 0), where + ("tolerance",), minimum=Decimal(0))
    return NumericSpec(_decimal(value["value"], where + ("value",)), tolerance)


def _json_valid(value: object, where: tuple[int | str, ...], *_: object) -> bool:
    if value is not True:
        raise _expected(where, "true", value)
    return True


def _json_schema(value: object, where: tuple[int | str, ...], read_bytes: ReadBytes) -> SchemaSpec:
    if not isinstance(value, dict) or not value:
        raise _expected(where, "a schema mapping or {file: ...}", value)
    ref = value.get("file") if set(value) == {"file"} else None
    schema = _load_schema(ref, where + ("file",), read_bytes) if ref is not None else value
    problem = schema_problem(schema)
    if problem:
        raise CheckSpecError(where, f"{problem}{f' (in {ref})' if ref else ''}")
    file = ref if isinstance(ref, str) else None
    return SchemaSpec(schema, file, build_validator(schema, file, where, read_bytes))


# $refs resolve against this virtual folder, which stands for the suite's folder: a
# relative ref lands inside it, anything else (http://, file:///etc, ../) lands outside.
SUITE_DIR_URI = "file:///orbench-suite-folder/"


def build_validator(schema: dict[str, Any], file: str | None, where: tuple[int | str, ...] = (),
                    read_bytes: ReadBytes | None = None) -> Any:
    """A validator for ``schema`` whose $refs are resolved now, and only to the schema itself
    or to JSON files in the suite's folder; jsonschema's own retrieval (urlopen, no timeout,
    on the event loop) is never used. Raises CheckSpecError naming the $ref."""
    reader = read_bytes or _read_plain
    root = dict(schema)
    if "$id" not in root and "id" not in root:
        root["$id"] = SUITE_DIR_URI + (file or "inline.schema.json")
    registry: Registry[Any] = Registry(retrieve=_refuse_retrieval)
    docs = [(str(root["$id"] if "$id" in root else root["id"]), root)]
    known = {urldefrag(docs[0][0])[0]}
    for uri, contents in docs:  # grows while refs name more files
        for ref in _schema_refs(contents):
            target = urldefrag(urljoin(uri, ref))[0]
            if target in known or not target:
                continue
            data = _ref_file(target, ref, where, reader)
            known.add(target)
            registry = registry.with_resource(target, Resource.from_contents(
                data, default_specification=DRAFT202012))
            docs.append((target, data))
    cls = validators.validator_for(schema)
    validator = cls(root, registry=registry)
    for uri, contents in docs:
        resolver = (registry.resolver_with_root(Resource.from_contents(root, default_specification=DRAFT202012))
                    if contents is root else registry.resolver(base_uri=uri))
        for ref in _schema_refs(contents):
            try:
                resolver.lookup(ref)
            except Unresolvable as exc:
                raise CheckSpecError(where, f"$ref {ref!r} does not resolve ({type(exc).__name__})") from None
    return validator


def _ref_file(target: str, ref: str, where: tuple[int | str, ...], read_bytes: ReadBytes) -> Any:
    if not target.startswith(SUITE_DIR_URI):
        raise CheckSpecError(where, f"$ref {ref!r}: refused; a $ref may point only inside the schema "
                                    "or to a file in the suite's folder (no network, no file://)")
    name = unquote(target[len(SUITE_DIR_URI):])
    try:
        data = json.loads(read_bytes(name))
    except OSError as exc:
        raise CheckSpecError(where, f"$ref {ref!r}: cannot read {name!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CheckSpecError(where, f"$ref {ref!r}: {name!r} is not valid JSON: {exc}") from None
    problem = schema_problem(data)
    if problem:
        raise CheckSpecError(where, f"$ref {ref!r}: {problem} (in {name})")
    return data


def _refuse_retrieval(uri: str) -> Resource[Any]:
    raise LookupError(f"{uri}: not loaded with the suite")  # every allowed $ref is loaded up front


def _schema_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value
            elif key not in ("const", "enum", "examples", "default"):  # data, not schemas
                yield from _schema_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schema_refs(item)


def _load_schema(ref: object, where: tuple[int | str, ...], read_bytes: ReadBytes) -> Any:
    if not isinstance(ref, str) or not ref:
        raise _expected(where, "a file name", ref)
    try:
        return json.loads(read_bytes(ref))
    except OSError as exc:
        raise CheckSpecError(where, f"cannot read schema file {ref!r}: {exc.strerror or exc}") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise CheckSpecError(where, f"schema file {ref!r} is not valid JSON: {exc}") from None


def _tool_call(value: object, where: tuple[int | str, ...], *_: object) -> ToolCallSpec:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise _expected(where, "a tool name or {name, arguments}", value)
    _known_keys(value, ("name", "arguments"), where)
    name = value.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        raise _expected(where + ("name",), "a tool name (letters, digits, _ or -)", name)
    arguments = value.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise _expected(where + ("arguments",), "a mapping", arguments)
    return ToolCallSpec(name, arguments)


def _limit_ms(value: object, where: tuple[int | str, ...], *_: object) -> float:
    if not _is_number(value) or float(value) <= 0:  # type: ignore[arg-type]
        raise _expected(where, "a positive number of milliseconds", value)
    return float(value)  # type: ignore[arg-type]


def _limit_usd(value: object, where: tuple[int | str, ...], *_: object) -> Decimal:
    return _decimal(value, where, minimum=Decimal(0))


def _limit_tokens(value: object, where: tuple[int | str, ...], *_: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _expected(where, "a positive integer", value)
    return value


def _judge(value: object, where: tuple[int | str, ...], *_: object) -> JudgeSpec:
    if isinstance(value, str):
        value = {"rubric": value}
    if not isinstance(value, dict):
        raise _expected(where, "a rubric or {rubric, model, pass_score}", value)
    _known_keys(value, ("rubric", "model", "pass_score"), where)
    rubric = _text(value["rubric"], where + ("rubric",)) if "rubric" in value else None
    model = _text(value["model"], where + ("model",)) if "model" in value else None
    return JudgeSpec(rubric, model, _pass_score(value.get("pass_score"), where + ("pass_score",)))


def _pass_score(value: object, where: tuple[int | str, ...]) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or not 0 <= float(value) <= 1:  # type: ignore[arg-type]
        raise _expected(where, "a number between 0 and 1", value)
    return float(value)  # type: ignore[arg-type]


_PARSERS: dict[str, Callable[[object, tuple[int | str, ...], ReadBytes], Any]] = {
    "equals": _text, "contains": _text, "icontains": _text, "not_contains": _text,
    "regex": _regex, "one_of": _one_of, "numeric": _numeric, "json_valid": _json_valid,
    "json_schema": _json_schema, "tool_call": _tool_call, "max_latency_ms": _limit_ms,
    "max_ttft_ms": _limit_ms, "max_cost_usd": _limit_usd, "max_output_tokens": _limit_tokens,
    "judge": _judge,
}  # fmt: skip


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
            judged[i] = _judged(check, judge_fn(check.arg, answer.text))  # type: ignore[misc]
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
            verdicts[i] = await judge_fn(check.arg, output_text or "")  # type: ignore[misc]
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

"""Quality checks as a suite declares them: kinds, typed specs and their parsing.

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

Parsing validates what can be validated before any request is sent (regexes
compile, schemas pass ``check_schema``, schema files are read) so a run never
stops halfway on a typo. Scoring and evaluation: ``bench.quality.checks``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard
from urllib.parse import unquote, urldefrag, urljoin

import jsonschema
from jsonschema import validators
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from bench.errors import SuiteError

KINDS = (
    "equals", "contains", "icontains", "not_contains", "regex", "one_of", "numeric",
    "json_valid", "json_schema", "tool_call", "max_latency_ms", "max_ttft_ms",
    "max_cost_usd", "max_output_tokens", "judge",
)  # fmt: skip
_OWN_MAPPING_KINDS = ("json_schema", "tool_call", "judge")  # their mapping is the argument
DEFAULT_PASS_SCORE = 0.7  # a judge check passes at this score unless told otherwise
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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
    if not _is_number(value) or float(value) <= 0:
        raise _expected(where, "a positive number", value)
    return float(value)


def _is_number(value: object) -> TypeGuard[int | float]:
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
    registry: Registry[Any] = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]  # attrs __init__ unseen
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
    if not _is_number(value) or float(value) <= 0:
        raise _expected(where, "a positive number of milliseconds", value)
    return float(value)


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
    if not _is_number(value) or not 0 <= float(value) <= 1:
        raise _expected(where, "a number between 0 and 1", value)
    return float(value)


_PARSERS: dict[str, Callable[[object, tuple[int | str, ...], ReadBytes], Any]] = {
    "equals": _text, "contains": _text, "icontains": _text, "not_contains": _text,
    "regex": _regex, "one_of": _one_of, "numeric": _numeric, "json_valid": _json_valid,
    "json_schema": _json_schema, "tool_call": _tool_call, "max_latency_ms": _limit_ms,
    "max_ttft_ms": _limit_ms, "max_cost_usd": _limit_usd, "max_output_tokens": _limit_tokens,
    "judge": _judge,
}  # fmt: skip

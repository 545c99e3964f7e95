"""Load and validate prompt suites (YAML) into typed values ready to send.

Validation is hand-written because every problem must come back as ONE line that
names the file, the place and the YAML line, e.g.
``data/suites/x.yaml: cases[2].max_tokens (line 14): expected a positive integer, got 'ten'``.
The file is composed once with PyYAML so each value keeps its line; ``_At`` is a
cursor (value + path) whose readers raise SuiteError at that place.

Everything that can fail is resolved at load time (vars substituted, images read
into data URLs, regexes compiled, schemas checked) so a run never stops halfway
on a typo, and ``content_hash`` covers the bytes that will be sent.

Format (unknown keys are errors everywhere)::

    name: smoke                      # required
    description: ...
    models:                          # required: ids, or {id, label, params}
      - openai/gpt-4o-mini
      - {id: qwen/qwen3-32b, label: qwen-low, params: {reasoning: {effort: low}}}
      - local/gemma3                 # "<endpoint>/<model>" goes to a named endpoint
    providers:                       # named OpenRouter routing variants (the `provider` object)
      fast: {only: [groq]}
      pinned: {order: [together], allow_fallbacks: false}
    endpoints:                       # OpenAI-compatible servers; prices in USD per MILLION tokens
      local: {base_url: "http://127.0.0.1:8080/v1", api_key_env: LOCAL_KEY,
              prices: {prompt: 0, completion: 0}}
    repeats: 2                       # default 1
    warmup: true                     # default true
    defaults: {max_tokens: 256, temperature: 0}
    vars: {company: Acme}            # shared by every case; a case's own vars win
    checks: [...]                    # applied to every case, before the case's own
    pass_threshold: 1.0              # default for cases
    judge: {model: openai/gpt-4o-mini, rubric: "...", pass_score: 0.7}
    seed: 0                          # default 0; seeds dataset sampling
    datasets:                        # rows of CSV/JSONL/Parquet files as cases (bench.datasets)
      - {path: trivia.csv, prompt: "{question}", checks: [{icontains: "{answer}"}], sample: 50}
    cases:                           # cases and/or datasets; ids unique across both
      - id: capital
        prompt: "Capital of {country}?"    # or messages: [{role, content}, ...]
        system: "Answer briefly."
        vars: {country: France}            # {name} substituted; {{ and }} are literal braces
                                           # (in prompt, system and message text, with or without vars)
        images: [../images/red.png]        # local (relative to this file) or http(s) URLs
        tools: [...]                        # OpenAI function tools; tool_choice
        response_format: {type: json_schema, json_schema: {name, schema, strict}}
        max_tokens: 64
        temperature: 0.2
        tags: [geo]
        checks: [{contains: Paris}]         # see bench.checks
        pass_threshold: 1.0
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bench.suites.checks import (
    DEFAULT_PASS_SCORE,
    Check,
    CheckSpecError,
    JudgeSpec,
    ToolCallSpec,
    describe_value,
    did_you_mean,
    parse_checks,
    schema_problem,
)
from bench.api import keys
from bench.errors import SuiteError

OPENROUTER = "openrouter"  # the endpoint name of models not routed to a named endpoint
DEFAULT_VARIANT = "default"  # the provider variant name when a suite defines none
IMAGE_TOKENS_ESTIMATE = 258  # per image; providers charge 85..1,500+ depending on size
_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD_TOKENS = 4

_TOP_KEYS = ("name", "description", "models", "providers", "endpoints", "repeats", "warmup",
             "defaults", "vars", "checks", "pass_threshold", "judge", "seed", "cases",
             "datasets")  # fmt: skip
_CASE_KEYS = ("id", "description", "prompt", "messages", "system", "vars", "images", "tools",
              "tool_choice", "response_format", "max_tokens", "temperature", "tags", "checks",
              "pass_threshold")  # fmt: skip
_ROLES = ("system", "developer", "user", "assistant", "tool")
_PROVIDER_KEYS = ("order", "only", "ignore", "allow_fallbacks", "require_parameters",
                  "data_collection", "zdr", "quantizations", "sort", "max_price",
                  "preferred_min_throughput", "preferred_max_latency",
                  "enforce_distillable_text", "options")  # fmt: skip
_QUANTIZATIONS = ("int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown")
_SORTS = ("price", "throughput", "latency", "exacto")
_PERCENTILES = ("p50", "p75", "p90", "p99")
# Chat body fields a model's `params` may set (API.md 5.1/5.2); the rest belong to orbench.
_BODY_PARAMS = ("temperature", "top_p", "top_k", "min_p", "top_a", "frequency_penalty",
                "presence_penalty", "repetition_penalty", "seed", "stop", "logit_bias",
                "logprobs", "top_logprobs", "max_tokens", "max_completion_tokens", "reasoning",
                "reasoning_effort", "include_reasoning", "verbosity", "plugins", "transforms",
                "usage", "service_tier", "parallel_tool_calls", "prediction", "modalities",
                "user", "metadata", "session_id", "prompt_cache_key", "prompt_cache_options",
                "cache_control", "debug", "trace", "models", "route")  # fmt: skip
_RESERVED_PARAMS = ("model", "messages", "stream", "stream_options", "provider")
_EFFORTS = ("max", "xhigh", "high", "medium", "low", "minimal", "none")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# `{{ name }}` first (an error when name is a var), then the escapes, then `{name}`.
_PLACEHOLDER = re.compile(r"\{\{\s*(?P<doubled>[A-Za-z_][A-Za-z0-9_]*)\s*\}\}|\{\{|\}\}"
                          r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")
_STR_TAG = "tag:yaml.org,2002:str"
# Aliases may repeat what was written at most this much (shared defaults are far below it).
ALIAS_EXPANSION_FACTOR = 10
ALIAS_EXPANSION_FLOOR = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NO_HINTS: Mapping[str, str] = {}

YPath = tuple[str | int, ...]
T = TypeVar("T")


# ----------------------------------------------------------------- records
@dataclass(frozen=True)
class Model:
    """One entry of ``models``: what to send, and to which endpoint."""

    id: str  # as written in the suite
    label: str  # unique within the suite; defaults to id
    params: dict[str, Any]  # extra chat body params, applied after the case's
    endpoint: str  # OPENROUTER or the name of an entry of ``endpoints``
    api_model: str  # the model id sent in the request body
    place: str = ""  # "models[2] (line 7)", for messages


@dataclass(frozen=True)
class Endpoint:
    """A named OpenAI-compatible server; models ``<name>/<model>`` are sent there."""

    name: str
    base_url: str
    api_key_env: str | None = None  # the environment variable holding its key
    prices: dict[str, str] | None = None  # OpenRouter pricing shape: USD per token strings
    # A new connection per request (llama-server may drop a reused one after a stream);
    # set for the built-in ``local`` endpoint, not a YAML key.
    fresh_connections: bool = False


@dataclass(frozen=True)
class JudgeSettings:
    model: str | None = None
    rubric: str | None = None
    pass_score: float = DEFAULT_PASS_SCORE


@dataclass(frozen=True)
class Case:
    """One case with everything resolved: messages are final (system first,
    vars substituted, images as data URLs)."""

    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    tags: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    pass_threshold: float = 1.0
    description: str | None = None

    def body(self) -> dict[str, Any]:
        """The chat request body pieces of this case (no model, stream or provider)."""
        body: dict[str, Any] = {"messages": _copy_json(self.messages)}
        for key in ("tools", "tool_choice", "response_format", "max_tokens", "temperature"):
            value = getattr(self, key)
            if value is not None:
                body[key] = copy.deepcopy(value)
        return body


@dataclass(frozen=True)
class ExpandedCase:
    """A case as the planner needs it: body pieces, a prompt-size estimate, checks."""

    case_id: str
    body: dict[str, Any]
    prompt_tokens_est: int  # an ESTIMATE (~4 chars/token); usage from the server is the truth
    checks: tuple[Check, ...]
    pass_threshold: float
    tags: tuple[str, ...]


@dataclass
class Suite:
    path: Path
    name: str
    models: tuple[Model, ...]
    cases: tuple[Case, ...]
    description: str | None = None
    repeats: int = 1
    warmup: bool = True
    providers: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    content_hash: str = ""  # sha256 of the canonical content and every referenced file
    files: dict[str, str] = field(default_factory=dict)  # referenced file -> its sha256
    judge_models: dict[str, str] = field(default_factory=dict)  # judge model -> where named
    seed: int = 0  # seeds everything drawn at random (dataset samples)
    _expanded: tuple[tuple[Case, ...], list[ExpandedCase]] | None = field(default=None, repr=False, compare=False)

    def route(self, model_id: str) -> tuple[str, str]:
        """(endpoint name, model id to send) for a model id."""
        return _route(model_id, self.endpoints)

    def model_specs(self, ids: Sequence[str] | None = None) -> list[Model]:
        """The suite's models, or those named in ``ids`` (labels or ids; others are new)."""
        if not ids:
            return list(self.models)
        known = {m.id: m for m in self.models} | {m.label: m for m in self.models}
        return [known.get(i) or Model(i, i, {}, *self.route(i)) for i in ids]

    def expand_cases(self) -> list[ExpandedCase]:
        """``expand_cases(self)``, computed once per ``cases`` value: a run asks for it more
        than once (plan, judge estimate), and a 100,000-row dataset makes that count."""
        cached = self._expanded
        if cached is None or cached[0] is not self.cases:
            cached = self._expanded = (self.cases, expand_cases(self))
        return list(cached[1])


# ----------------------------------------------------------------- public functions
def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raises SuiteError (one line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SuiteError(f"{path}: cannot read the suite file: {reason}") from None
    return parse_suite(text, path)


def parse_suite(text: str, path: str | Path = "<suite>") -> Suite:
    """Validate suite YAML; files it references are resolved relative to ``path``."""
    src = _Source(str(path), Path(path).parent)
    data = _compose(text, src)
    if data is None:
        raise src.error((), "the file is empty; expected a mapping with name, models and cases")
    what = "a mapping with name, models and cases (or datasets)"
    root = _At(src, (), data)
    f = root.fields(_TOP_KEYS, ("name", "models"), what=what)
    if "cases" not in f and "datasets" not in f:
        raise root.fail("missing required key 'cases' (or 'datasets')")
    name = f["name"].text()
    endpoints = _opt(f, "endpoints", _parse_endpoints, {})
    judge = _opt(f, "judge", _parse_judge_settings, JudgeSettings())
    defaults = _opt(f, "defaults", _At.fields_of(("max_tokens", "temperature")), {})
    shared = _Shared(
        max_tokens=_opt(defaults, "max_tokens", _At.integer, None),
        temperature=_opt(defaults, "temperature", _temperature, None),
        checks=_opt(f, "checks", lambda at: _parse_checks(at, judge), ()),
        vars=_opt(f, "vars", _parse_vars, {}),
        pass_threshold=_opt(f, "pass_threshold", _threshold, 1.0),
        judge=judge,
    )
    suite = Suite(
        path=Path(path),
        name=name,
        description=_opt(f, "description", _At.text, None),
        models=_parse_models(f["models"], endpoints),
        providers=_opt(f, "providers", _parse_providers, {}),
        endpoints=endpoints,
        repeats=_opt(f, "repeats", _At.integer, 1),
        warmup=_opt(f, "warmup", _At.boolean, True),
        judge=judge,
        cases=(),
        seed=_opt(f, "seed", lambda s: s.integer(0), 0),
    )
    suite.cases = _parse_cases(f["cases"], shared) if "cases" in f else ()
    if "datasets" in f:
        from bench.suites.datasets import parse_datasets  # here: bench.datasets imports this module

        taken = {c.id: f"cases[{i}]" for i, c in enumerate(suite.cases)}
        suite.cases += tuple(parse_datasets(f["datasets"], shared, suite.seed, taken))
    suite.files, suite.judge_models = dict(sorted(src.files.items())), src.judge_models
    suite.content_hash = _content_hash(data, suite.files)
    return suite


def expand_cases(suite: Suite) -> list[ExpandedCase]:
    """Each case's request body pieces (messages, tools, ...) plus its estimate and checks."""
    return [
        ExpandedCase(
            c.id, c.body(), estimate_prompt_tokens(c.messages, c.tools), c.checks, c.pass_threshold, c.tags
        )
        for c in suite.cases
    ]


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars); far cheaper than
    ``copy.deepcopy``, which matters once a dataset brings 100,000 cases."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None = None) -> int:
    """An ESTIMATE of prompt tokens: ~4 characters per token, a small overhead per
    message and a fixed ``IMAGE_TOKENS_ESTIMATE`` per image. Only for budgeting."""
    chars, images = 0, 0
    for message in messages:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for part in parts:
            images += part.get("type") == "image_url"
            chars += len(part.get("text") or "")
        chars += sum(len(json.dumps(call)) for call in message.get("tool_calls") or [])
    chars += len(json.dumps(tools)) if tools else 0
    overhead = _MESSAGE_OVERHEAD_TOKENS * len(messages)
    return math.ceil(chars / _CHARS_PER_TOKEN) + overhead + IMAGE_TOKENS_ESTIMATE * images


def validate_models(
    suite: Suite,
    known: Collection[str] | Callable[[str], bool],
    *,
    models: Iterable[str] | None = None,
) -> None:
    """Raise SuiteError for the first model id (or judge model) not in the catalog.

    ``models`` replaces the suite's list (e.g. ids given on the command line).
    Models routed to a named endpoint are not checked; ``id:variant`` is accepted
    when the base id is known."""
    is_known = known if callable(known) else known.__contains__
    places = suite.judge_models | {m.id: m.place for m in reversed(suite.models)}
    ids = list(models) if models is not None else [m.id for m in suite.models]
    for model_id in [*ids, *suite.judge_models]:
        if suite.route(model_id)[0] != OPENROUTER:
            continue
        if is_known(model_id) or is_known(model_id.split(":", 1)[0]):
            continue
        hint = "" if callable(known) else did_you_mean(model_id, known, n=3)
        where = places.get(model_id)
        prefix = f"{suite.path}: {where}: " if where else ""
        raise SuiteError(f"{prefix}unknown model id {model_id!r}{hint}")


def validate_provider_object(obj: object, where: str) -> dict[str, Any] | None:
    """Check a provider routing object from elsewhere (a --provider flag); ``where``
    starts the message. Returns the object, or None when it is empty."""
    return _provider_object(_At(_Source(where, Path("."), root_place=""), (), obj))


# ----------------------------------------------------------------- YAML with lines
@dataclass
class _Source:
    """The file being parsed: its name, line map, and what parsing collected."""

    name: str
    base_dir: Path
    root_place: str = "top level"
    lines: dict[YPath, tuple[int, int]] = field(default_factory=dict)  # path -> (key line, value line)
    files: dict[str, str] = field(default_factory=dict)
    judge_models: dict[str, str] = field(default_factory=dict)

    def place(self, path: YPath, *, key_line: bool = False) -> str:
        """``cases[2].prompt (line 14)``; the nearest enclosing line when unknown."""
        place = _format_path(path) or self.root_place
        for depth in range(len(path), -1, -1):
            if path[:depth] in self.lines:
                lines = self.lines[path[:depth]]
                return f"{place} (line {lines[0] if key_line and depth == len(path) else lines[1]})"
        return place

    def error(
        self, path: YPath, problem: str, *, key_line: bool = False, line: int | None = None
    ) -> SuiteError:
        """One line; ``line`` overrides the map (used before the map exists)."""
        place = self.place(path, key_line=key_line)
        if line is not None:
            place = f"{_format_path(path) or self.root_place} (line {line})"
        text = f"{self.name}: {place}: {problem}" if place else f"{self.name}: {problem}"
        return SuiteError(" ".join(text.split("\n")))

    def read_bytes(self, ref: str) -> bytes:
        """A file referenced by the suite (relative to it); remembered for the hash."""
        data = (self.base_dir / ref).read_bytes()
        self.files[ref] = hashlib.sha256(data).hexdigest()
        return data


def _format_path(path: YPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _compose(text: str, src: _Source) -> Any:
    """Parse once: the data, and (into ``src.lines``) the line of every value."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, src)
        _check_keys(node, (), src, ())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise SuiteError(f"{src.name}: invalid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SuiteError(" ".join(f"{src.name}: invalid YAML: {exc}".split())) from None
    finally:
        loader.dispose()
    _map_lines(node, (), src.lines)
    return data


def _check_expansion(root: yaml.Node, src: _Source) -> None:
    """Refuse aliases that expand far beyond what was written (the "billion laughs" bomb).

    An alias is the same node object met again, so counting each node once gives what
    was written, and summing children gives what every later walk (key checks, line map,
    hashing, the engine's copies) would visit. Both counts are linear in distinct nodes.
    """
    expanded: dict[int, int] = {}
    written = 0

    def size(node: yaml.Node) -> int:
        nonlocal written
        known = expanded.get(id(node))
        if known is not None:
            return known
        expanded[id(node)] = 1  # in progress: a recursive alias counts once (reported later)
        written += 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1 + sum(size(child) for child in children)
        expanded[id(node)] = total
        return total

    total = size(root)
    limit = max(ALIAS_EXPANSION_FLOOR, ALIAS_EXPANSION_FACTOR * written)
    if total > limit:
        raise src.error((), f"YAML aliases expand {written} written nodes to {total} "
                            f"(more than {limit}): refusing it (an alias bomb?); write the values out")


def _check_keys(node: yaml.Node, path: YPath, src: _Source, stack: tuple[yaml.Node, ...]) -> None:
    """Before construction (which keeps the last of duplicate keys silently)."""
    if any(node is seen for seen in stack):
        raise src.error(path, "recursive YAML alias", line=node.start_mark.line + 1)
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_keys(item, path + (i,), src, stack + (node,))
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key, value in node.value:
        line = key.start_mark.line + 1
        if key.tag == _MERGE_TAG:
            _check_keys(value, path, src, stack + (node,))
            continue
        if not isinstance(key, yaml.ScalarNode) or key.tag != _STR_TAG:
            shown = key.value if isinstance(key, yaml.ScalarNode) else "a collection"
            raise src.error(path, f"keys must be strings, got {shown}", line=line)
        if key.value in seen:
            problem = f"duplicate key {key.value!r} (first on line {seen[key.value]})"
            raise src.error(path + (key.value,), problem, line=line)
        seen[key.value] = line
        _check_keys(value, path + (key.value,), src, stack + (node,))


def _map_lines(node: yaml.Node, path: YPath, lines: dict[YPath, tuple[int, int]]) -> None:
    """After construction, so merge keys (<<) are already flattened into the node."""
    if not path:
        lines[()] = (node.start_mark.line + 1,) * 2
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[path + (key.value,)] = (key.start_mark.line + 1, value.start_mark.line + 1)
            _map_lines(value, path + (key.value,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = (item.start_mark.line + 1,) * 2
            _map_lines(item, path + (i,), lines)


@dataclass(frozen=True)
class _At:
    """A value and where it sits; its readers validate and raise SuiteError there."""

    src: _Source
    path: YPath
    value: Any

    def fail(self, problem: str, *, key_line: bool = False) -> SuiteError:
        return self.src.error(self.path, problem, key_line=key_line)

    def expected(self, wanted: str) -> SuiteError:
        return self.fail(f"expected {wanted}, got {describe_value(self.value)}")

    def at(self, *keys: str | int) -> _At:
        value = self.value
        for key in keys:
            value = value[key]
        return _At(self.src, self.path + keys, value)

    def place(self) -> str:
        return self.src.place(self.path)

    def fields(
        self,
        allowed: Sequence[str],
        required: Sequence[str] = (),
        *,
        what: str = "a mapping",
        hints: Mapping[str, str] = _NO_HINTS,
    ) -> dict[str, _At]:
        """The mapping's entries; unknown keys (with a suggestion) and missing ones fail.
        ``hints`` maps a known mistake to its fix when difflib would guess wrong."""
        if not isinstance(self.value, dict):
            raise self.expected(f"{what}")
        for key in self.value:
            if key not in allowed:
                hint = f" (did you mean {hints[key]!r}?)" if key in hints else did_you_mean(key, allowed)
                raise self.at(key).fail(f"unknown key {key!r}{hint}", key_line=True)
        for key in required:
            if key not in self.value:
                raise self.fail(f"missing required key {key!r}")
        return {key: self.at(key) for key in self.value}

    @staticmethod
    def fields_of(allowed: Sequence[str]) -> Callable[[_At], dict[str, _At]]:
        return lambda at: at.fields(allowed)

    def entries(self, rule: str, pattern: re.Pattern[str] = _NAME) -> list[tuple[str, _At]]:
        """A mapping of user-chosen names (variants, endpoints, vars)."""
        if not isinstance(self.value, dict):
            raise self.expected("a mapping")
        for key in self.value:
            if not pattern.fullmatch(key):
                raise self.at(key).fail(f"invalid name {key!r}: {rule}", key_line=True)
        return [(key, self.at(key)) for key in self.value]

    def items(self, what: str, *, allow_empty: bool = False) -> list[_At]:
        if not isinstance(self.value, list):
            raise self.expected(f"a list of {what}s")
        if not self.value and not allow_empty:
            raise self.fail(f"expected at least one {what}")
        return [self.at(i) for i in range(len(self.value))]

    def text(self) -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            raise self.expected("a non-empty string")
        return self.value

    def strings(self) -> list[str]:
        return [item.text() for item in self.items("string", allow_empty=True)]

    def integer(self, minimum: int = 1) -> int:
        value = self.value
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise self.expected(wanted)

    def number(self, low: float, high: float | None = None) -> float:
        value = self.value
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and low <= value and (high is None or value <= high):
            return float(value)
        wanted = f"a number >= {low:g}" if high is None else f"a number between {low:g} and {high:g}"
        raise self.expected(wanted)

    def money(self) -> Decimal:
        """A non-negative amount in USD, as a number or a numeric string."""
        value = self.value
        try:
            numeric = isinstance(value, int | float | str) and not isinstance(value, bool)
            amount = Decimal(str(value)) if numeric else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount < 0:
            raise self.expected("a non-negative number")
        return amount

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.expected("true or false")
        return self.value

    def choice(self, options: Sequence[str]) -> str:
        if self.value not in options:
            hint = did_you_mean(self.value, options) if isinstance(self.value, str) else ""
            raise self.fail(f"expected one of {', '.join(options)}, got {describe_value(self.value)}{hint}")
        return str(self.value)


def _opt(fields: Mapping[str, _At], key: str, read: Callable[[_At], T], default: T) -> T:
    return read(fields[key]) if key in fields else default


def _content_hash(data: Any, files: Mapping[str, str]) -> str:
    canonical = json.dumps({"suite": data, "files": files}, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"), default=str)  # fmt: skip
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------- suite-level sections
def _route(model_id: str, endpoints: Mapping[str, Endpoint]) -> tuple[str, str]:
    prefix, _, rest = model_id.partition("/")
    return (prefix, rest) if prefix in endpoints and rest else (OPENROUTER, model_id)


def _parse_models(at: _At, endpoints: Mapping[str, Endpoint]) -> tuple[Model, ...]:
    models: list[Model] = []
    first: dict[str, int] = {}
    for i, item in enumerate(at.items("model")):
        model = _parse_model(item, endpoints)
        if model.label in first:
            also = f"also models[{first[model.label]}]"
            raise item.fail(f"duplicate model {model.label!r} ({also}); give each a distinct label")
        first[model.label] = i
        models.append(model)
    return tuple(models)


def _parse_model(at: _At, endpoints: Mapping[str, Endpoint]) -> Model:
    f: dict[str, _At] = {}
    id_at = at
    if not isinstance(at.value, str):
        f = at.fields(("id", "label", "params"), ("id",), what="a model id or a mapping {id, params, label}")
        id_at = f["id"]
    model_id = id_at.text()
    if "/" not in model_id.strip("/") or any(c.isspace() for c in model_id):
        raise id_at.fail(f"expected a model id like 'openai/gpt-4o-mini', got {model_id!r}")
    endpoint, api_model = _route(model_id, endpoints)
    params = _opt(f, "params", lambda p: _parse_params(p, endpoint == OPENROUTER), {})
    return Model(model_id, _opt(f, "label", _At.text, model_id), params, endpoint, api_model, at.place())


def _parse_params(at: _At, openrouter: bool) -> dict[str, Any]:
    """Extra body params; checked against the OpenRouter fields unless the model
    goes to a named endpoint (local servers take their own extras)."""
    for key, item in at.entries("expected a request body field name"):
        if key in _RESERVED_PARAMS:
            raise item.fail(f"{key!r} is set by orbench, not by model params", key_line=True)
    f = at.fields(_BODY_PARAMS) if openrouter else {}
    _opt(f, "temperature", _temperature, None)
    _opt(f, "max_tokens", _At.integer, None)
    _opt(f, "max_completion_tokens", _At.integer, None)
    _opt(f, "reasoning_effort", lambda e: e.choice(_EFFORTS), None)
    _opt(f, "reasoning", _check_reasoning, None)
    return copy.deepcopy(dict(at.value))


def _check_reasoning(at: _At) -> None:
    f = at.fields(("effort", "max_tokens", "exclude", "enabled", "summary"))
    if "effort" in f and "max_tokens" in f:
        raise at.fail("give reasoning.effort or reasoning.max_tokens, not both")
    _opt(f, "effort", lambda e: e.choice(_EFFORTS), None)
    _opt(f, "max_tokens", _At.integer, None)
    _opt(f, "exclude", _At.boolean, None)
    _opt(f, "enabled", _At.boolean, None)
    _opt(f, "summary", lambda s: s.choice(("auto", "concise", "detailed")), None)


def _parse_providers(at: _At) -> dict[str, dict[str, Any] | None]:
    rule = "use letters, digits, '_', '-' or '.'"
    return {name: _provider_object(item) for name, item in at.entries(rule)}


def _provider_object(at: _At) -> dict[str, Any] | None:
    """An OpenRouter ``provider`` object (API.md 5.3), validated and passed as is."""
    if at.value is None:
        return None
    what = "a provider routing object like {only: [groq]}"
    f = at.fields(_PROVIDER_KEYS, what=what, hints={"require": "only", "providers": "only"})
    for key, item in f.items():
        if item.value is not None:
            _PROVIDER_FIELDS[key](item)
    return copy.deepcopy(at.value) or None


def _check_sort(at: _At) -> None:
    if not isinstance(at.value, dict):
        at.choice(_SORTS)
        return
    f = at.fields(("by", "partition"), ("by",))
    f["by"].choice(_SORTS)
    _opt(f, "partition", lambda p: p.choice(("model", "none")), None)


def _check_percentiles(at: _At) -> None:
    if isinstance(at.value, dict):
        for item in at.fields(_PERCENTILES).values():
            item.number(0)
    else:
        at.number(0)


def _check_max_price(at: _At) -> None:
    for item in at.fields(("prompt", "completion", "request", "image", "audio")).values():
        item.money()


def _check_options(at: _At) -> None:
    if not isinstance(at.value, dict):  # keyed by provider slug; contents are the provider's
        raise at.expected("a mapping of provider slug -> options")


_PROVIDER_FIELDS: dict[str, Callable[[_At], object]] = {
    "order": _At.strings, "only": _At.strings, "ignore": _At.strings,
    "allow_fallbacks": _At.boolean, "require_parameters": _At.boolean, "zdr": _At.boolean,
    "enforce_distillable_text": _At.boolean,
    "data_collection": lambda at: at.choice(("allow", "deny")),
    "quantizations": lambda at: [q.choice(_QUANTIZATIONS) for q in at.items("quantization")],
    "sort": _check_sort, "max_price": _check_max_price, "options": _check_options,
    "preferred_min_throughput": _check_percentiles, "preferred_max_latency": _check_percentiles,
}  # fmt: skip


def _parse_endpoints(at: _At) -> dict[str, Endpoint]:
    endpoints = {}
    for name, item in at.entries("use letters, digits, '_', '-' or '.'"):
        if name == OPENROUTER:
            raise item.fail("'openrouter' is the built-in endpoint; choose another name", key_line=True)
        f = item.fields(("base_url", "api_key_env", "prices"), ("base_url",))
        url = f["base_url"].text()
        if not url.startswith(("http://", "https://")):
            raise f["base_url"].fail(f"expected an http(s) URL, got {url!r}")
        key_env, prices = _opt(f, "api_key_env", _env_name, None), _opt(f, "prices", _prices, None)
        endpoints[name] = Endpoint(name, url.rstrip("/"), key_env, prices)
    return endpoints


def _env_name(at: _At) -> str:
    # Only key-like names: any other variable ($HOME, $DATABASE_URL) would be sent to the URL.
    if not isinstance(at.value, str) or not keys.key_name_ok(at.value):
        raise at.expected(keys.KEY_NAME_RULE)
    return at.value


def _prices(at: _At) -> dict[str, str]:
    """USD per million tokens in the suite -> OpenRouter's per-token strings."""
    f = at.fields(("prompt", "completion"), ("prompt", "completion"))
    return {key: format(item.money() / 1_000_000, "f") for key, item in f.items()}


def _parse_judge_settings(at: _At) -> JudgeSettings:
    f = at.fields(("model", "rubric", "pass_score"))
    return JudgeSettings(
        model=_opt(f, "model", _At.text, None),
        rubric=_opt(f, "rubric", _At.text, None),
        pass_score=_opt(f, "pass_score", lambda p: p.number(0, 1), DEFAULT_PASS_SCORE),
    )


def _temperature(at: _At) -> float:
    return at.number(0, 2)


def _threshold(at: _At) -> float:
    value = at.number(0, 1)
    if value == 0:
        raise at.fail("expected a number above 0 and at most 1, got 0")
    return value


def _parse_checks(at: _At, judge: JudgeSettings) -> tuple[Check, ...]:
    try:
        checks = parse_checks(at.value, read_bytes=at.src.read_bytes)
    except CheckSpecError as exc:
        raise at.src.error(at.path + exc.where, exc.problem) from None
    return tuple(_resolve_judge(at.at(i), c, judge) if c.kind == "judge" else c for i, c in enumerate(checks))


def _resolve_judge(at: _At, check: Check, judge: JudgeSettings) -> Check:
    """Fill a judge check's unset fields from the suite's ``judge`` settings."""
    spec: JudgeSpec = check.arg
    model, rubric = spec.model or judge.model, spec.rubric or judge.rubric
    for value, key in ((model, "model"), (rubric, "rubric")):
        if value is None:
            where = f"set it here or in the suite's judge.{key}"
            raise at.at("judge").fail(f"a judge check needs a {key}: {where}")
    assert model is not None and rubric is not None
    pass_score = judge.pass_score if spec.pass_score is None else spec.pass_score
    at.src.judge_models.setdefault(model, at.at("judge").place())
    return replace(check, arg=JudgeSpec(rubric, model, pass_score))


# ----------------------------------------------------------------- cases
@dataclass(frozen=True)
class _Shared:
    """What every case inherits from the suite."""

    max_tokens: int | None
    temperature: float | None
    checks: tuple[Check, ...]
    pass_threshold: float
    judge: JudgeSettings
    vars: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Template:
    """What text fields of one case are expanded with: the suite's vars under the case's."""

    case_id: str
    vars: Mapping[str, str]


def _parse_cases(at: _At, shared: _Shared) -> tuple[Case, ...]:
    cases: list[Case] = []
    first: dict[str, int] = {}
    for i, item in enumerate(at.items("case")):
        case = _parse_case(item, shared)
        if case.id in first:
            raise item.at("id").fail(f"duplicate case id {case.id!r} (also cases[{first[case.id]}])")
        first[case.id] = i
        cases.append(case)
    return tuple(cases)


def _parse_case(at: _At, shared: _Shared) -> Case:
    f = at.fields(_CASE_KEYS, ("id",), what="a mapping with id and prompt (or messages)")
    case_id = f["id"].text()
    variables = _Template(case_id, {**shared.vars, **_opt(f, "vars", _parse_vars, {})})
    tools = _opt(f, "tools", _parse_tools, None)
    checks = _opt(f, "checks", lambda c: _parse_checks(c, shared.judge), ())
    if tools is not None and "checks" in f:
        _check_tool_names(f["checks"], checks, tools)
    return Case(
        id=case_id,
        messages=_case_messages(at, f, variables),
        tools=tools,
        tool_choice=_opt(f, "tool_choice", lambda c: _parse_tool_choice(c, tools), None),
        response_format=_opt(f, "response_format", _parse_response_format, None),
        max_tokens=_opt(f, "max_tokens", _At.integer, shared.max_tokens),
        temperature=_opt(f, "temperature", _temperature, shared.temperature),
        tags=tuple(_opt(f, "tags", _At.strings, [])),
        checks=shared.checks + checks,
        pass_threshold=_opt(f, "pass_threshold", _threshold, shared.pass_threshold),
        description=_opt(f, "description", _At.text, None),
    )


def _parse_vars(at: _At) -> dict[str, str]:
    variables = {}
    for name, item in at.entries("variable names are identifiers (letters, digits, '_')", _IDENT):
        if isinstance(item.value, bool) or not isinstance(item.value, str | int | float):
            raise item.expected("a string or a number")
        variables[name] = str(item.value)
    return variables


def _substituted(at: _At, tpl: _Template) -> str:
    """``{name}`` -> its value, ``{{``/``}}`` -> a brace, in every text field of every case.

    Strict both ways: a ``{name}`` with no such var fails (it would be sent as is), and
    so does ``{{ name }}`` when name IS a var (promptfoo/Jinja syntax, which would be sent
    as the literal ``{name}``). Braces around anything else (JSON) are left alone."""
    text = at.text()

    def replace_one(match: re.Match[str]) -> str:
        token, doubled, name = match.group(0), match.group("doubled"), match.group("name")
        if doubled is not None:
            if doubled in tpl.vars:
                raise at.fail(f"{token} in case {tpl.case_id!r} is literal braces, not a placeholder: "
                              f"write {{{doubled}}} to substitute the var {doubled!r}")
            return "{" + token[2:-2] + "}"
        if name is None:
            return token[0]
        if name not in tpl.vars:
            known = ", ".join(sorted(tpl.vars)) or "none"
            escape = "write {{ and }} for literal braces"
            raise at.fail(f"unknown placeholder {token} in case {tpl.case_id!r} (vars: {known}; {escape})")
        return tpl.vars[name]

    return _PLACEHOLDER.sub(replace_one, text)


def _case_messages(
    at: _At, f: Mapping[str, _At], variables: _Template
) -> list[dict[str, Any]]:
    if "prompt" in f and "messages" in f:
        raise at.fail("has both 'prompt' and 'messages'; give one of them")
    if "prompt" in f:
        messages = [{"role": "user", "content": _substituted(f["prompt"], variables)}]
    elif "messages" in f:
        messages = [_parse_message(m, variables) for m in f["messages"].items("message")]
    else:
        raise at.fail("needs 'prompt' or 'messages'")
    if "system" in f:
        if any(m["role"] == "system" for m in messages):
            raise f["system"].fail("the messages already contain a system message; keep one of the two")
        messages.insert(0, {"role": "system", "content": _substituted(f["system"], variables)})
    if "images" in f:
        _attach_images(messages, f["images"])
    return messages


def _parse_message(at: _At, variables: _Template) -> dict[str, Any]:
    f = at.fields(("role", "content", "name", "tool_calls", "tool_call_id"), ("role",))
    role = f["role"].choice(_ROLES)
    message: dict[str, Any] = {"role": role}
    calls = role == "assistant" and "tool_calls" in f
    if "content" in f and not (calls and f["content"].value is None):
        message["content"] = _parse_content(f["content"], variables)
    elif not calls:
        raise at.fail(f"a {role} message needs 'content'")
    if "name" in f:
        message["name"] = f["name"].text()
    if "tool_calls" in f:
        if role != "assistant":
            raise f["tool_calls"].fail("only assistant messages carry tool_calls", key_line=True)
        message["tool_calls"] = [_message_tool_call(c) for c in f["tool_calls"].items("tool call")]
    if (role == "tool") != ("tool_call_id" in f):
        raise at.fail("a tool message needs 'tool_call_id' (and only a tool message has one)")
    if "tool_call_id" in f:
        message["tool_call_id"] = f["tool_call_id"].text()
    return message


def _parse_content(at: _At, variables: _Template) -> str | list[dict[str, Any]]:
    if isinstance(at.value, str):
        return _substituted(at, variables)
    if not isinstance(at.value, list):
        raise at.expected("a string or a list of content parts")
    return [_parse_part(part, variables) for part in at.items("content part")]


def _parse_part(at: _At, variables: _Template) -> dict[str, Any]:
    f = at.fields(("type", "text", "image_url"), ("type",))
    kind = f["type"].choice(("text", "image_url"))
    other = "image_url" if kind == "text" else "text"
    if kind not in f or other in f:
        raise at.fail(f"a {kind} part has '{kind}' and no '{other}'")
    if kind == "text":
        return {"type": "text", "text": _substituted(f["text"], variables)}
    image = f["image_url"].fields(("url", "detail"), ("url",))
    url: dict[str, Any] = {"url": _image_url(image["url"])}
    if "detail" in image:
        url["detail"] = image["detail"].choice(("auto", "low", "high"))
    return {"type": "image_url", "image_url": url}


def _message_tool_call(at: _At) -> dict[str, Any]:
    f = at.fields(("id", "type", "function"), ("id", "function"))
    _opt(f, "type", lambda t: t.choice(("function",)), None)
    fn = f["function"].fields(("name", "arguments"), ("name",))
    arguments = _opt(fn, "arguments", lambda a: a.value, {})
    if not isinstance(arguments, str | dict):
        raise fn["arguments"].expected("a JSON string or a mapping")
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    name = _tool_name(fn["name"])
    return {"id": f["id"].text(), "type": "function", "function": {"name": name, "arguments": text}}


def _attach_images(messages: list[dict[str, Any]], at: _At) -> None:
    """Images go to the last user message, after its text."""
    urls = [_image_url(item) for item in at.items("image")]
    target = next((m for m in reversed(messages) if m["role"] == "user"), None)
    if target is None:
        raise at.fail("no user message to attach the images to")
    content = target["content"]
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    target["content"] = parts + [{"type": "image_url", "image_url": {"url": u}} for u in urls]


def _image_url(at: _At) -> str:
    ref = at.text()
    if ref.startswith(("http://", "https://", "data:")):
        return ref
    try:
        data = at.src.read_bytes(ref)
    except OSError as exc:
        raise at.fail(f"cannot read image {ref!r} ({at.src.base_dir / ref}): {exc.strerror or exc}") from None
    mime = _image_type(data)
    if mime is None:
        raise at.fail(f"{ref!r} is not a PNG, JPEG, GIF or WebP image")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _image_type(data: bytes) -> str | None:
    """The MIME type from the file's magic bytes (the extension may lie)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _tool_name(at: _At) -> str:
    if not isinstance(at.value, str) or not _TOOL_NAME.fullmatch(at.value):
        raise at.expected("a name of 1-64 letters, digits, '_' or '-'")
    return at.value


def _json_schema(at: _At) -> None:
    problem = schema_problem(at.value)
    if problem:
        raise at.fail(problem)


def _parse_tools(at: _At) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    for i, item in enumerate(at.items("tool")):
        tool = _parse_tool(item)
        name = tool["function"]["name"]
        if name in first:
            problem = f"duplicate tool name {name!r} (also tools[{first[name]}])"
            raise item.at("function", "name").fail(problem)
        first[name] = i
        tools.append(tool)
    return tools


def _parse_tool(at: _At) -> dict[str, Any]:
    what = "a mapping {type: function, function: {name, ...}}"
    f = at.fields(("type", "function"), ("function",), what=what)
    _opt(f, "type", lambda t: t.choice(("function",)), None)
    fn = f["function"].fields(("name", "description", "parameters", "strict"), ("name",))
    _tool_name(fn["name"])
    _opt(fn, "description", _At.text, None)
    _opt(fn, "parameters", _json_schema, None)
    _opt(fn, "strict", _At.boolean, None)
    return {"type": "function", "function": copy.deepcopy(f["function"].value)}


def _parse_tool_choice(at: _At, tools: list[dict[str, Any]] | None) -> str | dict[str, Any]:
    if tools is None:
        raise at.fail("tool_choice needs 'tools' in the same case", key_line=True)
    if not isinstance(at.value, dict):
        return at.choice(("none", "auto", "required"))
    f = at.fields(("type", "function"), ("type", "function"))
    f["type"].choice(("function",))
    name_at = f["function"].fields(("name",), ("name",))["name"]
    names = [t["function"]["name"] for t in tools]
    if name_at.value not in names:
        shown = describe_value(name_at.value)
        raise name_at.fail(f"no tool named {shown} in this case's tools ({', '.join(names)})")
    return copy.deepcopy(at.value)


def _check_tool_names(at: _At, checks: Sequence[Check], tools: list[dict[str, Any]]) -> None:
    """A tool_call check must name one of the case's tools (catches typos early)."""
    names = [t["function"]["name"] for t in tools]
    for i, check in enumerate(checks):
        if check.kind == "tool_call" and isinstance(check.arg, ToolCallSpec) and check.arg.name not in names:
            hint = did_you_mean(check.arg.name, names)
            raise at.at(i, "tool_call").fail(f"no tool named {check.arg.name!r} in this case's tools{hint}")


def _parse_response_format(at: _At) -> dict[str, Any]:
    f = at.fields(("type", "json_schema"), ("type",))
    kind = f["type"].choice(("text", "json_object", "json_schema"))
    if kind != "json_schema":
        if "json_schema" in f:
            raise f["json_schema"].fail("only allowed with type: json_schema", key_line=True)
        return {"type": kind}
    if "json_schema" not in f:
        raise at.fail("type json_schema needs a 'json_schema' mapping {name, schema, strict}")
    spec = f["json_schema"].fields(("name", "schema", "strict", "description"), ("name", "schema"))
    _tool_name(spec["name"])
    _json_schema(spec["schema"])
    _opt(spec, "strict", _At.boolean, None)
    _opt(spec, "description", _At.text, None)
    return copy.deepcopy(at.value)

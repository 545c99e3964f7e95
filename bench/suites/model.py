"""The typed suite: models, endpoints, cases and the suite itself, as the planner reads them.

Values only (frozen dataclasses, plus the request-body pieces and the prompt-size estimate a
case yields); reading YAML into them is ``bench.suites.parse``'s job.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.suites.checks import DEFAULT_PASS_SCORE, Check

OPENROUTER = "openrouter"  # the endpoint name of models not routed to a named endpoint
DEFAULT_VARIANT = "default"  # the provider variant name when a suite defines none
IMAGE_TOKENS_ESTIMATE = 258  # per image; providers charge 85..1,500+ depending on size
CHARS_PER_TOKEN = 4  # the rough estimate of prompt sizes (budgets) and of tokens no usage reported
_MESSAGE_OVERHEAD_TOKENS = 4


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
        body: dict[str, Any] = {"messages": json_copy(self.messages)}
        for key in ("tools", "tool_choice", "response_format", "max_tokens", "temperature"):
            value = getattr(self, key)
            if value is not None:  # a number is its own copy (deepcopy returned it anyway)
                body[key] = value if type(value) in (int, float) else copy.deepcopy(value)
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


@dataclass(frozen=True)
class SyntheticSpec:
    """One item of ``synthetic:``."""

    id: str
    prompt_tokens: int
    output_tokens: int
    count: int = 1
    temperature: float | None = None
    description: str | None = None


CACHE_MODES = ("auto", "explicit", "off")
"""``cache:``: auto = send nothing special (providers that cache by themselves do); explicit = add
``cache_control`` breakpoints where a provider family needs them; off = ask for no caching at all."""
REPLAY_MODES = ("live", "recorded")


@dataclass(frozen=True)
class Conversation:
    """One item of ``conversations:`` (or one row of a conversation dataset): user turns sent one
    after another, each with the answers to the turns before it (bench.run.conversation)."""

    id: str
    turns: tuple[str, ...]  # the user messages, in order
    system: str | None = None
    recorded: tuple[str | None, ...] = ()  # recorded assistant answers, per turn (replay: recorded)
    replay: str = "live"  # live: the model's own answers are the history; recorded: the dataset's
    checks: tuple[tuple[Check, ...], ...] = ()  # per turn; empty tuples where a turn has none
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class SyntheticConversationSpec:
    """One item of ``synthetic_conversations:``: ``count`` conversations of ``turns`` turns on a shared
    system prompt of ``system_tokens`` (in the target's own tokens, calibrated like ``synthetic:``)."""

    id: str
    system_tokens: int
    turns: int
    user_tokens: int
    output_tokens: int
    count: int = 1
    temperature: float | None = None


@dataclass(repr=False)
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
    seed: int = 0  # seeds everything drawn at random (dataset samples, synthetic text)
    synthetic: tuple[SyntheticSpec, ...] = ()  # planned per target by bench.run.synthetic, not cases
    conversations: tuple[Conversation, ...] = ()  # planned turn by turn by bench.run.conversation
    synthetic_conversations: tuple[SyntheticConversationSpec, ...] = ()
    cache: str = "auto"  # one of CACHE_MODES
    _expanded: tuple[tuple[Case, ...], list[ExpandedCase]] | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:  # not every case: a dataset brings 100,000 of them
        return f"Suite(path={str(self.path)!r}, name={self.name!r}, models={len(self.models)}, cases={len(self.cases)})"

    def route(self, model_id: str) -> tuple[str, str]:
        """(endpoint name, model id to send) for a model id."""
        return route_model(model_id, self.endpoints)

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


def expand_cases(suite: Suite) -> list[ExpandedCase]:
    """Each case's request body pieces (messages, tools, ...) plus its estimate and checks."""
    return [
        ExpandedCase(
            c.id, c.body(), estimate_prompt_tokens(c.messages, c.tools), c.checks, c.pass_threshold, c.tags
        )
        for c in suite.cases
    ]


_SCALARS = frozenset({str, int, float, bool, type(None)})


class _NotJSON(Exception):
    """A value a JSON round trip would change (a tuple, a non-text key) or refuse."""


def _copy_json(value: Any) -> Any:
    t = type(value)
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _NotJSON
            out[k] = v if type(v) in _SCALARS else _copy_json(v)
        return out
    if t is list:
        return [v if type(v) in _SCALARS else _copy_json(v) for v in value]
    if t in _SCALARS:
        return value
    raise _NotJSON


def json_copy(value: Any) -> Any:
    """``json.loads(json.dumps(value))``: a deep copy that is JSON-safe, without the text in
    between (6x faster; 100,000 planned requests build 100,000 bodies). Anything a round
    trip would change or refuse takes the round trip itself, so the result is the same."""
    try:
        return _copy_json(value)
    except (_NotJSON, RecursionError):
        return json.loads(json.dumps(value))


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
    return math.ceil(chars / CHARS_PER_TOKEN) + overhead + IMAGE_TOKENS_ESTIMATE * images


def route_model(model_id: str, endpoints: Mapping[str, Endpoint]) -> tuple[str, str]:
    prefix, _, rest = model_id.partition("/")
    return (prefix, rest) if prefix in endpoints and rest else (OPENROUTER, model_id)

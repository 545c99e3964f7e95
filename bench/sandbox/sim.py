"""The simulated model: what a request gets as an answer, how long it takes, and what it costs.

Pure functions, no I/O. Everything is deterministic from ``random.Random`` instances the
caller seeds with (sandbox seed, request fingerprint, purpose), so the same seed and the
same request give the same text, token counts and timing.

- Prompt tokens: ~4 characters a token plus a small per-message overhead; an image
  counts ``IMAGE_TOKENS``.
- Answer: ``X-Sandbox-Answer`` header, else ``[[answer: TEXT]]`` in the last user
  message, else a configured per-model answer, else JSON for ``response_format``, else
  seeded filler long enough to reach ``max_tokens`` (finish ``length``; ``stop`` when a
  shorter scripted answer ends first). Tokens are "words-ish" pieces of the text.
- Reasoning (models with a ``reasoning`` entry, when asked or mandatory) comes first and
  shares the ``max_tokens`` budget, as with the real reasoning models.
- Tool calls: ``[[tool: NAME {json}]]`` in the prompt with ``tools`` given, or a forced
  ``tool_choice``; arguments stream as OpenAI-style fragments.
- Timing: TTFT = provider base + prompt tokens x prefill + seeded exponential jitter;
  then one token every 1/decode_tps seconds.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Mapping

from bench.sandbox.catalog import Endpoint, Model

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
IMAGE_TOKENS = 85
OTHER_MEDIA_TOKENS = 200
MAX_DEFAULT_TOKENS = 32768  # cap on answers when neither the request nor the model limits them
DEFAULT_ANSWER_TOKENS = (120, 360)  # seeded length of a filler answer when max_tokens is absent
REASONING_TOKENS = {"none": 0, "minimal": 8, "low": 24, "medium": 48, "high": 96, "xhigh": 160, "max": 256}

ANSWER_RE = re.compile(r"\[\[answer:\s?(.*?)\]\]", re.DOTALL)
TOOL_RE = re.compile(r"\[\[tool:\s*([\w.\-]+)\s*(\{.*?\})?\s*\]\]", re.DOTALL)
TOKEN_RE = re.compile(r"\s*\w{1,12}|\s*[^\w\s]+|\s+")

WORDS = (
    "the model answer data system value result request provider token latency signal cost time "
    "first second simple clear small large fast slow stream event number text output input test "
    "check measure report note point line case step part rule plan list table field record price "
    "budget window context prompt reply query cache queue route order sort limit rate error retry "
    "and with for from into over under about after before while when then also only each every "
    "is are was can will should may must does gives shows keeps makes takes uses reads writes "
    "sends returns counts holds finds means helps leaves brings follows remains appears"
).split()

Answers = Mapping[str, "str | Callable[[dict[str, Any]], str | None]"]


@dataclass
class ToolCallPlan:
    id: str
    name: str
    arguments: str
    pieces: list[str] = field(default_factory=list)  # argument fragments, one token each


@dataclass
class Plan:
    """What one generation will emit, token by token."""

    reasoning: list[str]
    content: list[str]
    tool_calls: list[ToolCallPlan]
    finish_reason: str
    reasoning_visible: bool = True

    @property
    def completion_tokens(self) -> int:
        return len(self.reasoning) + len(self.content) + sum(1 + len(t.pieces) for t in self.tool_calls)

    @property
    def text(self) -> str:
        return "".join(self.content)


# --- prompt -------------------------------------------------------------------------------


def prompt_size(body: dict[str, Any]) -> tuple[int, int]:
    """(estimated prompt tokens, number of images) for a chat request."""
    chars, tokens, images = 0, 0, 0
    for message in body.get("messages") or []:
        tokens += MESSAGE_OVERHEAD_TOKENS
        c, t, i = _content_size(message.get("content"))
        chars, tokens, images = chars + c, tokens + t, images + i
        if message.get("tool_calls"):
            chars += len(json.dumps(message["tool_calls"]))
    for extra in ("tools", "response_format"):
        if body.get(extra):
            chars += len(json.dumps(body[extra]))
    return max(1, tokens + math.ceil(chars / CHARS_PER_TOKEN)), images


def _content_size(content: Any) -> tuple[int, int, int]:
    if isinstance(content, str):
        return len(content), 0, 0
    chars, tokens, images = 0, 0, 0
    for part in content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            chars += len(part.get("text") or "")
        elif kind == "image_url":
            tokens, images = tokens + IMAGE_TOKENS, images + 1
        elif kind:
            tokens += OTHER_MEDIA_TOKENS
    return chars, tokens, images


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def all_prompt_text(body: dict[str, Any]) -> str:
    parts = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return "\n".join(parts)


# --- tokens -------------------------------------------------------------------------------


def split_tokens(text: str) -> list[str]:
    """Words-ish tokens whose concatenation is exactly ``text``."""
    return TOKEN_RE.findall(text)


def filler_tokens(rng: random.Random, count: int) -> list[str]:
    """``count`` tokens of plausible filler prose: sentences of 6-14 words."""
    tokens: list[str] = []
    while len(tokens) < count:
        words = rng.choices(WORDS, k=rng.randint(6, 14))
        words[0] = words[0].capitalize()
        lead = " " if tokens else ""
        tokens += [lead + words[0], *(" " + w for w in words[1:]), "."]
    return tokens[:count]


# --- answer planning ------------------------------------------------------------------------


def output_limit(body: dict[str, Any], model: Model) -> int | None:
    """max_completion_tokens (or legacy max_tokens), capped by the model's own limit."""
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    caps = [int(v) for v in (asked, model.max_completion_tokens) if v]
    return min(caps) if asked else None


def plan_answer(
    body: dict[str, Any],
    headers: Mapping[str, str],
    model: Model,
    rng: random.Random,
    answers: Answers,
) -> Plan:
    """Decide reasoning, content and tool calls for one request (deterministic in ``rng``)."""
    limit = output_limit(body, model)
    budget = limit if limit is not None else (model.max_completion_tokens or MAX_DEFAULT_TOKENS)
    reasoning, visible = _reasoning_tokens(body, model, rng)
    reasoning = reasoning[:budget]
    budget -= len(reasoning)
    tool_calls = plan_tool_calls(body, rng)
    if tool_calls:
        return _fit_tool_calls(reasoning, visible, tool_calls, budget)
    text = _scripted_text(body, headers, model, answers)
    if text is None:
        text = _default_text(body, rng, limit, budget)
    tokens = split_tokens(_apply_stop(text, body.get("stop")))
    finish = "length" if len(tokens) > budget else "stop"
    return Plan(reasoning, tokens[:budget], [], finish, visible)


def _scripted_text(body: dict[str, Any], headers: Mapping[str, str], model: Model, answers: Answers) -> str | None:
    if headers.get("x-sandbox-answer") is not None:
        return _header_text(headers["x-sandbox-answer"])
    match = ANSWER_RE.search(last_user_text(body))
    if match:
        return match.group(1)
    configured = answers.get(model.id, answers.get("*"))
    if callable(configured):
        return configured(body)
    return configured


def _header_text(value: str) -> str:
    # Header values arrive as latin-1; a UTF-8 sender's bytes are recovered here.
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _default_text(body: dict[str, Any], rng: random.Random, limit: int | None, budget: int) -> str:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        return json.dumps(sample_from_schema(schema, rng))
    if fmt.get("type") == "json_object":
        return json.dumps({"answer": "".join(filler_tokens(rng, 12)).strip()})
    count = budget + 1 if limit is not None else rng.randint(*DEFAULT_ANSWER_TOKENS)
    return "".join(filler_tokens(rng, min(count, budget + 1)))


def _apply_stop(text: str, stop: Any) -> str:
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if s]
    cuts = [text.find(s) for s in stops if s and s in text]
    return text[: min(cuts)] if cuts else text


def _reasoning_tokens(body: dict[str, Any], model: Model, rng: random.Random) -> tuple[list[str], bool]:
    """Reasoning tokens to emit first, and whether they are visible (not ``exclude``)."""
    spec = model.reasoning
    if not spec:
        return [], True
    opts = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
    effort = opts.get("effort") or body.get("reasoning_effort")
    asked = bool(opts) or bool(effort) or bool(body.get("include_reasoning"))
    disabled = opts.get("enabled") is False or effort == "none"
    on = spec.get("mandatory") or (asked and not disabled) or (not asked and spec.get("default_enabled"))
    if not on:
        return [], True
    if opts.get("max_tokens"):
        count = int(opts["max_tokens"])
    else:
        base = REASONING_TOKENS.get(effort or spec.get("default_effort") or "medium", 48)
        count = max(4, round(base * rng.uniform(0.75, 1.25)))
    return filler_tokens(rng, count), not opts.get("exclude")


# --- tool calls ---------------------------------------------------------------------------


def plan_tool_calls(body: dict[str, Any], rng: random.Random) -> list[ToolCallPlan]:
    """Tool calls asked for by ``[[tool: ...]]`` markers or a forcing ``tool_choice``."""
    tools = {t["function"]["name"]: t["function"] for t in body.get("tools") or [] if t.get("type") == "function"}
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return []
    calls = [(m.group(1), (m.group(2) or "").strip()) for m in TOOL_RE.finditer(all_prompt_text(body))]
    forced = _forced_tool(choice, tools)
    if forced and forced not in [name for name, _ in calls]:
        calls = [(forced, "")]
    plans = []
    for name, args in calls:
        if not args:
            params = (tools.get(name) or {}).get("parameters") or {}
            args = json.dumps(sample_from_schema(params, rng))
        call_id = "call_" + "".join(rng.choices(string.ascii_letters + string.digits, k=24))
        plans.append(ToolCallPlan(call_id, name, args, split_tokens(args)))
    return plans


def _forced_tool(choice: Any, tools: dict[str, Any]) -> str | None:
    if isinstance(choice, dict):
        return (choice.get("function") or {}).get("name")
    if choice == "required":
        return next(iter(tools))
    return None


def _fit_tool_calls(reasoning: list[str], visible: bool, calls: list[ToolCallPlan], budget: int) -> Plan:
    finish = "tool_calls"
    kept = []
    for call in calls:
        if budget <= 0:
            finish = "length"
            break
        budget -= 1
        if len(call.pieces) > budget:
            call.pieces, finish = call.pieces[:budget], "length"
        budget -= len(call.pieces)
        kept.append(call)
    return Plan(reasoning, [], kept, finish, visible)


def sample_from_schema(schema: dict[str, Any], rng: random.Random) -> Any:
    """A small value that satisfies a simple JSON schema (objects, arrays, enums, scalars)."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        names = schema.get("required") or list(props)
        return {n: sample_from_schema(props.get(n) or {}, rng) for n in names}
    if kind == "array":
        return [sample_from_schema(schema.get("items") or {}, rng) for _ in range(schema.get("minItems", 1))]
    return {"string": lambda: rng.choice(WORDS), "integer": lambda: rng.randint(1, 100),
            "number": lambda: round(rng.uniform(0, 100), 2), "boolean": lambda: True,
            "null": lambda: None}.get(kind or "string", lambda: rng.choice(WORDS))()


# --- finish reasons, timing, cost -------------------------------------------------------------

NATIVE_FINISH = {
    "anthropic": {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"},
    "google": {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"},
    "x-ai": {"stop": "completed", "length": "length", "tool_calls": "tool_calls"},
}
REASONING_FORMAT = {"anthropic": "anthropic-claude-v1", "openai": "openai-responses-v1", "google": "google-gemini-v1"}


def native_finish_reason(model: Model, finish: str | None) -> str | None:
    if finish is None or finish == "error":
        return None
    return NATIVE_FINISH.get(model.author, {}).get(finish, finish)


def reasoning_format(model: Model) -> str:
    return REASONING_FORMAT.get(model.author, "unknown")


def ttft_ms(endpoint: Endpoint, prompt_tokens: int, rng: random.Random) -> float:
    """Unscaled simulated time to first token: base + prefill + exponential jitter."""
    jitter = -endpoint.jitter_ms * math.log(1.0 - rng.random() * 0.999)
    return endpoint.ttft_ms + prompt_tokens * endpoint.prefill_ms_per_token + jitter


def cost_parts(endpoint: Endpoint, prompt_tokens: int, completion_tokens: int) -> tuple[Decimal, Decimal, Decimal]:
    """(prompt cost, completion cost, total) in USD: catalog unit price x tokens, exactly."""
    prices = endpoint.unit_prices(prompt_tokens)
    zero = Decimal(0)
    prompt_cost = prices.get("prompt", zero) * prompt_tokens
    completion_cost = prices.get("completion", zero) * completion_tokens
    return prompt_cost, completion_cost, prompt_cost + completion_cost + prices.get("request", zero)

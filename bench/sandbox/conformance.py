"""Simulated providers of one model that serve it faithfully or not (the demo of ``orbench verify``).

The sandbox serves ``meta-llama/llama-3.3-70b-instruct`` through five extra simulated providers
(``conformance_catalog.extend_catalog``), each misbehaving in one known way, so that a verify has something to find:

- ``sim-faithful``: serves the model as it is (the reference a verify should agree with);
- ``sim-quantized``: low-bit weights, about 15 points lower accuracy on the probes;
- ``sim-toolbreak``: drops or mangles the arguments of about 20% of its tool calls;
- ``sim-tokenpad``: reports ``prompt_tokens`` about 12% above what the prompt is;
- ``sim-ignoremax``: ignores ``max_tokens`` (answers run on, finish ``stop``).

The simulated model itself (every provider of that model, the six catalog ones too) knows the
answers of the built-in conformance probes (bench/examples/verify/conformance.yaml, read as plain
YAML: the sandbox imports nothing of bench's pipeline), does arithmetic, calls the tool a probe
expects with the arguments it expects, and counts. It is nearly deterministic at temperature 0: a
faithful provider flips about 1% of accuracy answers, seeded by (sandbox seed, request), as real
serving stacks do. Only prompts it recognises are answered this way; scripted answers
(``[[answer: ...]]``, ``X-Sandbox-Answer``, configured answers) and everything else keep the
sandbox's usual behaviour, so other uses of the model are unchanged.
"""

from __future__ import annotations

import functools
import json
import random
import re
from pathlib import Path
from typing import Any

import yaml

from bench.sandbox import sim
from bench.sandbox.conformance_catalog import MISBEHAVIOUR, SIM_MODEL

PROBES_PATH = Path(__file__).resolve().parents[1] / "examples" / "verify" / "conformance.yaml"

QUANTIZED_EXTRA_ERRORS = 0.17  # of the items the full model answers right: ~15 points of accuracy
TOOL_BREAK_RATE = 0.20
PROMPT_TOKEN_INFLATION = 1.12
FAITHFUL_FLIP_RATE = 0.01  # temperature-0 answers that differ between serving stacks
IGNORED_MAX_TOKENS_FACTOR = 3  # how far an answer runs past an ignored max_tokens

_ARITH = re.compile(r"What is (-?\d+) (plus|minus|times) (-?\d+)\?")
_COUNT = re.compile(r"Count from (\d+) to (\d+)")


@functools.lru_cache(maxsize=1)
def _answer_key() -> dict[str, dict[str, Any]]:
    """Prompt text -> what the simulated model answers (from the probes' own checks)."""
    try:
        doc = yaml.safe_load(PROBES_PATH.read_text(encoding="utf-8"))
    except OSError:
        return {}
    key: dict[str, dict[str, Any]] = {}
    for case in doc.get("cases") or []:
        prompt = case.get("prompt")
        if not isinstance(prompt, str):
            continue
        for check in case.get("checks") or []:
            if "tool_call" in check:
                key[prompt] = {"tool": check["tool_call"]["name"], "arguments": check["tool_call"]["arguments"]}
            elif "numeric" in check:
                key[prompt] = {"text": str(check["numeric"])}
            elif "icontains" in check:
                key[prompt] = {"text": str(check["icontains"]).capitalize()}
    return key


def _known_text(prompt: str) -> str | None:
    entry = _answer_key().get(prompt)
    if entry is not None and "text" in entry:
        return str(entry["text"])
    m = _ARITH.search(prompt)
    if m:
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        return str(a + b if op == "plus" else a - b if op == "minus" else a * b)
    m = _COUNT.search(prompt)
    if m:
        return ", ".join(str(i) for i in range(int(m.group(1)), int(m.group(2)) + 1))
    return None


def _unit(seed: int, fp: str, purpose: str) -> float:
    return random.Random(f"{seed}|{fp}|conformance:{purpose}").random()


def _wrong(text: str) -> str:
    return str(int(text) + 10) if text.lstrip("-").isdigit() else "I am not sure"


def adjust(ex: Any, seed: int, fp: str, occurrence: int, answers: Any) -> None:
    """Answer a recognised probe as the simulated model would, then apply the provider's fault.

    ``ex`` is delivery.Exchange (not imported: delivery imports the catalog, which imports this)."""
    if ex.model.id != SIM_MODEL:
        return
    scripted = (ex.req.header("x-sandbox-answer") is not None or sim.ANSWER_RE.search(sim.last_user_text(ex.body))
                is not None or SIM_MODEL in answers or "*" in answers)
    fault = MISBEHAVIOUR.get(ex.endpoint.tag)
    limit = sim.output_limit(ex.body, ex.model)
    if not scripted:
        _answer_probe(ex, seed, fp, fault, limit)
    if fault == "prompt_tokens":
        ex.prompt_tokens = round(ex.prompt_tokens * PROMPT_TOKEN_INFLATION)
    elif fault == "tool_arguments" and ex.plan.tool_calls and _unit(seed, f"{fp}|{occurrence}", "toolbreak") \
            < TOOL_BREAK_RATE:
        _break_tool_call(ex.plan.tool_calls[0], _unit(seed, fp, "how"))
    elif fault == "max_tokens" and limit is not None and ex.plan.finish_reason == "length" \
            and not ex.plan.tool_calls:
        rng = random.Random(f"{seed}|{fp}|conformance:longer")
        extra = sim.filler_tokens(rng, limit * (IGNORED_MAX_TOKENS_FACTOR - 1))
        ex.plan.content = (ex.plan.content + extra)[: limit * IGNORED_MAX_TOKENS_FACTOR]
        ex.plan.finish_reason = "stop"


def _answer_probe(ex: Any, seed: int, fp: str, fault: str | None, limit: int | None) -> None:
    prompt = sim.last_user_text(ex.body)
    entry = _answer_key().get(prompt) or {}
    tools = {t["function"]["name"] for t in ex.body.get("tools") or [] if t.get("type") == "function"}
    if entry.get("tool") in tools and ex.body.get("tool_choice") != "none":
        args = json.dumps(entry["arguments"])
        call = sim.ToolCallPlan("call_" + fp[:24], entry["tool"], args, sim.split_tokens(args))
        ex.plan = sim.Plan([], [], [call], "tool_calls")
        return
    text = _known_text(prompt)
    if text is None:
        return
    if _unit(seed, fp, "flip") < FAITHFUL_FLIP_RATE:
        text = _wrong(text)
    elif fault == "quantized" and _unit(seed, prompt, "quantized") < QUANTIZED_EXTRA_ERRORS:
        text = _wrong(text)
    text = _cut_at_stop(text, ex.body.get("stop"))
    tokens = sim.split_tokens(text)
    budget = limit if limit is not None else len(tokens)
    finish = "length" if len(tokens) > budget else "stop"
    ex.plan = sim.Plan([], tokens[:budget], [], finish)


def _cut_at_stop(text: str, stop: Any) -> str:
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str) and s]
    cuts = [text.find(s) for s in stops if s in text]
    return text[: min(cuts)] if cuts else text


def _break_tool_call(call: sim.ToolCallPlan, how: float) -> None:
    """Drop a required argument, or cut the JSON short (the two faults users report)."""
    args = json.loads(call.arguments)
    if how < 0.5 and isinstance(args, dict) and args:
        args.pop(next(iter(args)))
        call.arguments = json.dumps(args)
    else:
        call.arguments = call.arguments[: max(1, len(call.arguments) // 2)]
    call.pieces = sim.split_tokens(call.arguments)

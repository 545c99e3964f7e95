"""The JSON Schema (draft 2020-12) of a suite file, for editors (completion, red squiggles).

It describes the shapes ``bench.suites`` accepts: keys, types, enums and ranges. It is
looser than ``load_suite`` where a rule needs more than a schema can say (placeholders
naming a var, images that must be readable, regexes that must compile, a tool_call
naming one of the case's tools): ``orbench suite validate`` is the full check. Built
here in Python so the installed package needs no data file; ``docs/suite.schema.json``
is this dict as ``orbench suite schema`` prints it (a test keeps the two identical).
"""

from __future__ import annotations

import json
from typing import Any

from bench.suites.checks import KINDS

SCHEMA_ID = "urn:orbench:suite"  # no public host serves it; editors map files to docs/suite.schema.json
_IDENT = "^[A-Za-z_][A-Za-z0-9_]*$"
_NAME = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_TOOL_NAME = "^[A-Za-z0-9_-]{1,64}$"
_TEXT = {"type": "string", "minLength": 1, "pattern": r"\S"}
_POSITIVE_INT = {"type": "integer", "minimum": 1}
_MONEY = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": r"^\s*[0-9.eE+-]+\s*$"}]}
_SCORE = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
_QUANTIZATIONS = ["int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown"]
_SORTS = ["price", "throughput", "latency", "exacto"]


def _obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out | extra


def _long_form(arg: dict[str, Any]) -> dict[str, Any]:
    """A scalar check argument, or its long form {value, weight}."""
    return {"anyOf": [arg, _obj({"value": arg, "weight": {"$ref": "#/$defs/weight"}}, ["value"])]}


_TEXT_ARG = _long_form({"anyOf": [_TEXT, {"type": "integer"}]})
_CHECK_ARGS: dict[str, Any] = {
    "equals": _TEXT_ARG, "contains": _TEXT_ARG, "icontains": _TEXT_ARG, "not_contains": _TEXT_ARG,
    "regex": _long_form(_TEXT),
    "one_of": _long_form({"type": "array", "items": {"anyOf": [_TEXT, {"type": "integer"}]}, "minItems": 1}),
    "numeric": {"anyOf": [{"type": ["number", "string"]},
                          _obj({"value": {"type": ["number", "string"]}, "tolerance": {"type": ["number", "string"]},
                                "weight": {"$ref": "#/$defs/weight"}}, ["value"])]},
    "json_valid": _long_form({"const": True}),
    "json_schema": {"type": "object", "minProperties": 1,
                    "description": "an inline JSON Schema, or {file: PATH} relative to the suite"},
    "tool_call": {"anyOf": [{"type": "string", "pattern": _TOOL_NAME},
                            _obj({"name": {"type": "string", "pattern": _TOOL_NAME}, "arguments": {"type": "object"}},
                                 ["name"])]},
    "max_latency_ms": _long_form({"type": "number", "exclusiveMinimum": 0}),
    "max_ttft_ms": _long_form({"type": "number", "exclusiveMinimum": 0}),
    "max_cost_usd": _long_form(_MONEY),
    "max_output_tokens": _long_form(_POSITIVE_INT),
    "judge": {"anyOf": [_TEXT, _obj({"rubric": _TEXT, "model": _TEXT, "pass_score": {"type": "number", "minimum": 0,
                                                                                     "maximum": 1}})]},
}  # fmt: skip


def _check_defs() -> dict[str, Any]:
    missing = set(KINDS) ^ set(_CHECK_ARGS)
    assert not missing, f"the schema and bench.suites.checks disagree on check kinds: {missing}"
    one = [_obj({kind: arg, "weight": {"$ref": "#/$defs/weight"}}, [kind], title=kind)
           for kind, arg in _CHECK_ARGS.items()]
    return {"check": {"description": "one check: {KIND: ARG} with an optional weight", "anyOf": one},
            "checks": {"type": "array", "items": {"$ref": "#/$defs/check"}},
            "weight": {"type": "number", "exclusiveMinimum": 0}}


def _message_defs() -> dict[str, Any]:
    text_part = _obj({"type": {"const": "text"}, "text": _TEXT}, ["type", "text"])
    image_part = _obj({"type": {"const": "image_url"},
                       "image_url": _obj({"url": _TEXT, "detail": {"enum": ["auto", "low", "high"]}}, ["url"])},
                      ["type", "image_url"])
    call = _obj({"id": _TEXT, "type": {"const": "function"},
                 "function": _obj({"name": {"type": "string", "pattern": _TOOL_NAME},
                                   "arguments": {"type": ["string", "object"]}}, ["name"])}, ["id", "function"])
    content = {"anyOf": [_TEXT, {"type": "array", "items": {"anyOf": [text_part, image_part]}, "minItems": 1}]}
    message = _obj({"role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
                    "content": {"anyOf": [content, {"type": "null"}]}, "name": _TEXT,
                    "tool_calls": {"type": "array", "items": call, "minItems": 1}, "tool_call_id": _TEXT}, ["role"])
    tool = _obj({"type": {"const": "function"},
                 "function": _obj({"name": {"type": "string", "pattern": _TOOL_NAME}, "description": _TEXT,
                                   "parameters": {"type": "object"}, "strict": {"type": "boolean"}}, ["name"])},
                ["function"])
    return {"message": message, "tool": tool}


def _case() -> dict[str, Any]:
    tool_choice = {"anyOf": [{"enum": ["none", "auto", "required"]},
                             _obj({"type": {"const": "function"}, "function": _obj({"name": _TEXT}, ["name"])},
                                  ["type", "function"])]}
    response_format = {"anyOf": [
        _obj({"type": {"enum": ["text", "json_object"]}}, ["type"]),
        _obj({"type": {"const": "json_schema"},
              "json_schema": _obj({"name": {"type": "string", "pattern": _TOOL_NAME}, "schema": {"type": "object"},
                                   "strict": {"type": "boolean"}, "description": _TEXT}, ["name", "schema"])},
             ["type", "json_schema"]),
    ]}  # fmt: skip
    props = {
        "id": {**_TEXT, "description": "unique within the suite"},
        "description": _TEXT,
        "prompt": {**_TEXT, "description": "one user message; {name} is a var, {{ and }} are literal braces"},
        "messages": {"type": "array", "items": {"$ref": "#/$defs/message"}, "minItems": 1},
        "system": _TEXT,
        "vars": {"$ref": "#/$defs/vars"},
        "images": {"type": "array", "items": _TEXT, "minItems": 1,
                   "description": "local files (relative to the suite) or http(s)/data URLs"},
        "tools": {"type": "array", "items": {"$ref": "#/$defs/tool"}, "minItems": 1},
        "tool_choice": tool_choice,
        "response_format": response_format,
        "max_tokens": _POSITIVE_INT,
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "tags": {"type": "array", "items": _TEXT},
        "checks": {"$ref": "#/$defs/checks"},
        "pass_threshold": _SCORE,
    }
    return _obj(props, ["id"], oneOf=[{"required": ["prompt"]}, {"required": ["messages"]}])


def _dataset() -> dict[str, Any]:
    """One ``datasets:`` item: a data file whose rows become cases (bench.suites.datasets)."""
    case = _case()["properties"]
    template = {**_TEXT, "description": "a template over the row's columns: {column}, {row}, a suite var"}
    props = {
        "path": {"type": "string", "pattern": r"\.(csv|jsonl|ndjson|parquet|CSV|JSONL|NDJSON|PARQUET)$",
                 "description": "a CSV, JSONL or Parquet file, relative to the suite"},
        "id": {**template, "description": "unique case ids; default \"<file stem>-{row}\" ({row}: 0-based)"},
        "prompt": template,
        "messages": {"type": "string", "pattern": r"^\s*\{[A-Za-z_][A-Za-z0-9_]*\}\s*$",
                     "description": "\"{column}\": a column holding a chat list (JSON text or a list)"},
        "system": template, "description": template,
        "checks": {"type": "array", "description": "as a case's checks; every string in them is a template"},
        "sample": {**_POSITIVE_INT, "description": "rows drawn without replacement, seeded by the suite's seed"},
        "tags": {"type": "array", "items": template},
        **{key: case[key] for key in ("max_tokens", "temperature", "pass_threshold", "tools", "tool_choice",
                                      "response_format")},
    }  # fmt: skip
    return _obj(props, ["path"], oneOf=[{"required": ["prompt"]}, {"required": ["messages"]}])


def _synthetic() -> dict[str, Any]:
    """One ``synthetic:`` item: prompts sized in the target model's own tokens (bench.run.synthetic)."""
    props = {
        "id": {**_TEXT, "description": "the case id of these requests; unique across cases, datasets and synthetic"},
        "prompt_tokens": {**_POSITIVE_INT, "maximum": 2_000_000,
                          "description": "as the target model counts them: its server's usage.prompt_tokens"},
        "output_tokens": {**_POSITIVE_INT, "description": "max_tokens (plus ignore_eos and min_tokens on "
                                                         "generic OpenAI-compatible servers)"},
        "count": {**_POSITIVE_INT, "description": "distinct prompts per model x provider (and per repeat); default 1"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "description": _TEXT,
    }
    return _obj(props, ["id", "prompt_tokens", "output_tokens"])


def _conversation() -> dict[str, Any]:
    """One ``conversations:`` item: inline turns, or a dataset of chats (bench.run.conversation)."""
    checks = {"anyOf": [{"$ref": "#/$defs/checks"}, {"type": "array", "items": {"$ref": "#/$defs/checks"}}],
              "description": "checks of the last turn, or one list of checks per turn"}
    common = {"max_tokens": _POSITIVE_INT, "temperature": {"type": "number", "minimum": 0, "maximum": 2}}
    inline = _obj({
        "id": {**_TEXT, "description": "unique across cases, datasets, synthetic and conversations"},
        "system": {**_TEXT, "description": "the system prompt; {name} placeholders as in cases"},
        "turns": {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": 1000,
                  "description": "the user turns, sent one after another with the answers so far"},
        "checks": checks, "vars": {"$ref": "#/$defs/vars"}, **common,
    }, ["id", "turns"])
    dataset = _obj({
        "dataset": {"type": "string", "pattern": r"\.(jsonl|parquet)$",
                    "description": "one conversation per row (ShareGPT-style), relative to the suite"},
        "turns_field": {**_TEXT, "description": "the field holding the chat list; default messages"},
        "replay": {"enum": ["live", "recorded"],
                   "description": "recorded: send the recorded assistant turns instead of the model's own"},
        "id": _TEXT, "sample": _POSITIVE_INT, "checks": {"$ref": "#/$defs/checks"}, **common,
    }, ["dataset"])
    return {"anyOf": [inline, dataset]}


def _synthetic_conversation() -> dict[str, Any]:
    """One ``synthetic_conversations:`` item: turns on a shared system prompt of a calibrated size."""
    props = {
        "id": _TEXT,
        "system_tokens": {**_POSITIVE_INT, "maximum": 2_000_000,
                          "description": "the shared prefix, in the target's tokens (calibrated like synthetic)"},
        "turns": {**_POSITIVE_INT, "maximum": 1000},
        "user_tokens": _POSITIVE_INT,
        "output_tokens": {**_POSITIVE_INT, "description": "max_tokens of every turn"},
        "count": {**_POSITIVE_INT, "description": "conversations per model x provider (and per repeat); default 1"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    }
    return _obj(props, ["id", "system_tokens", "turns", "user_tokens", "output_tokens"])


def _provider() -> dict[str, Any]:
    percentiles = {"anyOf": [{"type": "number", "minimum": 0},
                             _obj({p: {"type": "number", "minimum": 0} for p in ("p50", "p75", "p90", "p99")})]}
    strings = {"type": "array", "items": _TEXT}
    props = {
        "order": strings, "only": strings, "ignore": strings, "allow_fallbacks": {"type": "boolean"},
        "require_parameters": {"type": "boolean"}, "data_collection": {"enum": ["allow", "deny"]},
        "zdr": {"type": "boolean"}, "quantizations": {"type": "array", "items": {"enum": _QUANTIZATIONS}},
        "sort": {"anyOf": [{"enum": _SORTS}, _obj({"by": {"enum": _SORTS}, "partition": {"enum": ["model", "none"]}},
                                                  ["by"])]},
        "max_price": _obj({k: _MONEY for k in ("prompt", "completion", "request", "image", "audio")}),
        "preferred_min_throughput": percentiles, "preferred_max_latency": percentiles,
        "enforce_distillable_text": {"type": "boolean"}, "options": {"type": "object"},
    }  # fmt: skip
    return {"anyOf": [{"type": "null"}, _obj(props, description="the OpenRouter `provider` routing object")]}


def suite_schema() -> dict[str, Any]:
    """The suite JSON Schema as a dict."""
    model_id = {"type": "string", "pattern": r"^[^\s/]+/\S+$", "description": "e.g. openai/gpt-4o-mini"}
    model = {"anyOf": [model_id, _obj({"id": model_id, "label": _TEXT, "params": {"type": "object"}}, ["id"])]}
    endpoint = _obj({"base_url": {"type": "string", "pattern": "^https?://"},
                     "api_key_env": {"type": "string", "description": "the NAME of the variable holding the key"},
                     "prices": _obj({"prompt": _MONEY, "completion": _MONEY}, ["prompt", "completion"],
                                    description="USD per 1M tokens")}, ["base_url"])
    named = {"propertyNames": {"pattern": _NAME}}
    top = {
        "name": _TEXT,
        "description": _TEXT,
        "models": {"type": "array", "items": model, "minItems": 1},
        "providers": {"type": "object", **named, "additionalProperties": {"$ref": "#/$defs/provider"}},
        "endpoints": {"type": "object", "propertyNames": {"pattern": _NAME, "not": {"const": "openrouter"}},
                      "additionalProperties": endpoint},
        "repeats": _POSITIVE_INT,
        "warmup": {"type": "boolean"},
        "defaults": _obj({"max_tokens": _POSITIVE_INT, "temperature": {"type": "number", "minimum": 0, "maximum": 2}}),
        "vars": {"$ref": "#/$defs/vars"},
        "checks": {"$ref": "#/$defs/checks"},
        "pass_threshold": _SCORE,
        "judge": _obj({"model": _TEXT, "rubric": _TEXT, "pass_score": {"type": "number", "minimum": 0, "maximum": 1}}),
        "seed": {"type": "integer", "minimum": 0,
                 "description": "seeds dataset sampling and synthetic text; default 0"},
        "cases": {"type": "array", "items": {"$ref": "#/$defs/case"}, "minItems": 1},
        "datasets": {"type": "array", "items": {"$ref": "#/$defs/dataset"}, "minItems": 1},
        "synthetic": {"type": "array", "items": {"$ref": "#/$defs/synthetic"}, "minItems": 1},
        "conversations": {"type": "array", "items": {"$ref": "#/$defs/conversation"}, "minItems": 1},
        "synthetic_conversations": {"type": "array", "items": {"$ref": "#/$defs/synthetic_conversation"},
                                    "minItems": 1},
        "cache": {"enum": ["auto", "explicit", "off", False],
                  "description": "prompt caching: auto (default), explicit (cache_control breakpoints), off "
                               "(a bare YAML off reads as false, which means off)"},
    }
    defs = {
        "case": _case(), "dataset": _dataset(), "synthetic": _synthetic(), "provider": _provider(),
        "conversation": _conversation(), "synthetic_conversation": _synthetic_conversation(),
        **_message_defs(), **_check_defs(),
        "vars": {"type": "object", "propertyNames": {"pattern": _IDENT},
                 "additionalProperties": {"type": ["string", "number"]},
                 "description": "substituted for {name} in prompt, system and message text"},
    }  # fmt: skip
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "orbench suite",
        "description": "A prompt suite for orbench: models x providers x cases x repeats.",
        **_obj(top, ["name", "models"],
               anyOf=[{"required": [k]} for k in ("cases", "datasets", "synthetic", "conversations",
                                                   "synthetic_conversations")]),
        "$defs": defs,
    }


def schema_json() -> str:
    """The schema as ``orbench suite schema`` prints it (and docs/suite.schema.json holds it)."""
    return json.dumps(suite_schema(), indent=2, ensure_ascii=False) + "\n"

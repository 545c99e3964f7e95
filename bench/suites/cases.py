"""Cases: prompts or messages, vars, images, tools and per-case checks, resolved at load time.

Everything a case sends is final after parsing: vars substituted (``{name}``; ``{{`` and
``}}`` are literal braces), images read into data URLs, tools and response formats
checked. Shared by the suite's ``cases`` and by ``bench.suites.datasets`` (rows as cases).
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bench.suites.checks import (
    Check,
    CheckSpecError,
    JudgeSpec,
    ToolCallSpec,
    describe_value,
    did_you_mean,
    parse_checks,
    schema_problem,
)
from bench.suites.cursor import At, opt
from bench.suites.model import Case, JudgeSettings

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CASE_KEYS = ("id", "description", "prompt", "messages", "system", "vars", "images", "tools",
              "tool_choice", "response_format", "max_tokens", "temperature", "tags", "checks",
              "pass_threshold")  # fmt: skip
ROLES = ("system", "developer", "user", "assistant", "tool")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# `{{ name }}` first (an error when name is a var), then the escapes, then `{name}`.
PLACEHOLDER = re.compile(r"\{\{\s*(?P<doubled>[A-Za-z_][A-Za-z0-9_]*)\s*\}\}|\{\{|\}\}"
                          r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")


def read_temperature(at: At) -> float:
    return at.number(0, 2)


def read_threshold(at: At) -> float:
    value = at.number(0, 1)
    if value == 0:
        raise at.fail("expected a number above 0 and at most 1, got 0")
    return value


def parse_case_checks(at: At, judge: JudgeSettings) -> tuple[Check, ...]:
    try:
        checks = parse_checks(at.value, read_bytes=at.src.read_bytes)
    except CheckSpecError as exc:
        raise at.src.error(at.path + exc.where, exc.problem) from None
    return tuple(resolve_judge(at.at(i), c, judge) if c.kind == "judge" else c for i, c in enumerate(checks))


def resolve_judge(at: At, check: Check, judge: JudgeSettings) -> Check:
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
class Shared:
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


def parse_cases(at: At, shared: Shared) -> tuple[Case, ...]:
    cases: list[Case] = []
    first: dict[str, int] = {}
    for i, item in enumerate(at.items("case")):
        case = _parse_case(item, shared)
        if case.id in first:
            raise item.at("id").fail(f"duplicate case id {case.id!r} (also cases[{first[case.id]}])")
        first[case.id] = i
        cases.append(case)
    return tuple(cases)


def _parse_case(at: At, shared: Shared) -> Case:
    f = at.fields(_CASE_KEYS, ("id",), what="a mapping with id and prompt (or messages)")
    case_id = f["id"].text()
    variables = _Template(case_id, {**shared.vars, **opt(f, "vars", parse_vars, {})})
    tools = opt(f, "tools", parse_tools, None)
    checks: tuple[Check, ...] = opt(f, "checks", lambda c: parse_case_checks(c, shared.judge), ())
    if tools is not None and "checks" in f:
        _check_tool_names(f["checks"], checks, tools)
    return Case(
        id=case_id,
        messages=_case_messages(at, f, variables),
        tools=tools,
        tool_choice=opt(f, "tool_choice", lambda c: parse_tool_choice(c, tools), None),
        response_format=opt(f, "response_format", parse_response_format, None),
        max_tokens=opt(f, "max_tokens", At.integer, shared.max_tokens),
        temperature=opt(f, "temperature", read_temperature, shared.temperature),
        tags=tuple(opt(f, "tags", At.strings, [])),
        checks=shared.checks + checks,
        pass_threshold=opt(f, "pass_threshold", read_threshold, shared.pass_threshold),
        description=opt(f, "description", At.text, None),
    )


def parse_vars(at: At) -> dict[str, str]:
    variables = {}
    for name, item in at.entries("variable names are identifiers (letters, digits, '_')", _IDENT):
        if isinstance(item.value, bool) or not isinstance(item.value, str | int | float):
            raise item.expected("a string or a number")
        variables[name] = str(item.value)
    return variables


def _substituted(at: At, tpl: _Template) -> str:
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

    return PLACEHOLDER.sub(replace_one, text)


def substitute(at: At, owner: str, variables: Mapping[str, str]) -> str:
    """One text field with its ``{name}`` placeholders filled, as a case's are (``owner`` names the case
    or conversation in errors); used by ``bench.suites.conversations``."""
    return _substituted(at, _Template(owner, variables))


def _case_messages(
    at: At, f: Mapping[str, At], variables: _Template
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


def _parse_message(at: At, variables: _Template) -> dict[str, Any]:
    f = at.fields(("role", "content", "name", "tool_calls", "tool_call_id"), ("role",))
    role = f["role"].choice(ROLES)
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


def _parse_content(at: At, variables: _Template) -> str | list[dict[str, Any]]:
    if isinstance(at.value, str):
        return _substituted(at, variables)
    if not isinstance(at.value, list):
        raise at.expected("a string or a list of content parts")
    return [_parse_part(part, variables) for part in at.items("content part")]


def _parse_part(at: At, variables: _Template) -> dict[str, Any]:
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


def _message_tool_call(at: At) -> dict[str, Any]:
    f = at.fields(("id", "type", "function"), ("id", "function"))
    opt(f, "type", lambda t: t.choice(("function",)), None)
    fn = f["function"].fields(("name", "arguments"), ("name",))
    arguments: Any = opt(fn, "arguments", lambda a: a.value, {})
    if not isinstance(arguments, str | dict):
        raise fn["arguments"].expected("a JSON string or a mapping")
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    name = _tool_name(fn["name"])
    return {"id": f["id"].text(), "type": "function", "function": {"name": name, "arguments": text}}


def _attach_images(messages: list[dict[str, Any]], at: At) -> None:
    """Images go to the last user message, after its text."""
    urls = [_image_url(item) for item in at.items("image")]
    target = next((m for m in reversed(messages) if m["role"] == "user"), None)
    if target is None:
        raise at.fail("no user message to attach the images to")
    content = target["content"]
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    target["content"] = parts + [{"type": "image_url", "image_url": {"url": u}} for u in urls]


def _image_url(at: At) -> str:
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


def _tool_name(at: At) -> str:
    if not isinstance(at.value, str) or not _TOOL_NAME.fullmatch(at.value):
        raise at.expected("a name of 1-64 letters, digits, '_' or '-'")
    return at.value


def _json_schema(at: At) -> None:
    problem = schema_problem(at.value)
    if problem:
        raise at.fail(problem)


def parse_tools(at: At) -> list[dict[str, Any]]:
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


def _parse_tool(at: At) -> dict[str, Any]:
    what = "a mapping {type: function, function: {name, ...}}"
    f = at.fields(("type", "function"), ("function",), what=what)
    opt(f, "type", lambda t: t.choice(("function",)), None)
    fn = f["function"].fields(("name", "description", "parameters", "strict"), ("name",))
    _tool_name(fn["name"])
    opt(fn, "description", At.text, None)
    opt(fn, "parameters", _json_schema, None)
    opt(fn, "strict", At.boolean, None)
    return {"type": "function", "function": copy.deepcopy(f["function"].value)}


def parse_tool_choice(at: At, tools: list[dict[str, Any]] | None) -> str | dict[str, Any]:
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


def _check_tool_names(at: At, checks: Sequence[Check], tools: list[dict[str, Any]]) -> None:
    """A tool_call check must name one of the case's tools (catches typos early)."""
    names = [t["function"]["name"] for t in tools]
    for i, check in enumerate(checks):
        if check.kind == "tool_call" and isinstance(check.arg, ToolCallSpec) and check.arg.name not in names:
            hint = did_you_mean(check.arg.name, names)
            raise at.at(i, "tool_call").fail(f"no tool named {check.arg.name!r} in this case's tools{hint}")


def parse_response_format(at: At) -> dict[str, Any]:
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
    opt(spec, "strict", At.boolean, None)
    opt(spec, "description", At.text, None)
    return copy.deepcopy(at.value)

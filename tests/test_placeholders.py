"""Strict placeholders: {name} is a var wherever text is sent, {{ }} are literal braces,
and the mistakes (a typo'd name, promptfoo's {{ var }}) are one-line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import invoke

from bench.errors import SuiteError
from bench.suites.model import Suite
from bench.suites.parse import load_suite

HEAD = """\
name: p
models: [openai/gpt-4o-mini]
cases:
"""


def load(tmp_path: Path, cases: str, head: str = HEAD) -> Suite:
    path = tmp_path / "s.yaml"
    path.write_text(head + textwrap.dedent(cases), encoding="utf-8")
    return load_suite(path)


def error(tmp_path: Path, cases: str, head: str = HEAD) -> str:
    with pytest.raises(SuiteError) as info:
        load(tmp_path, cases, head)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 's.yaml'}: ")
    return message


def content(suite: Suite, message: int = 0) -> object:
    return suite.cases[0].messages[message]["content"]


@pytest.mark.parametrize("field", [
    "prompt: 'Hi {who}'",
    "system: 'You are {who}'\n    prompt: Hi",
    "messages: [{role: user, content: 'Hi {who}'}]",
    "messages: [{role: user, content: [{type: text, text: 'Hi {who}'}]}]",
])  # fmt: skip
def test_unknown_placeholder_without_vars_names_file_case_and_name(tmp_path: Path, field: str) -> None:
    message = error(tmp_path, f"  - id: greet\n    {field}\n")
    assert "unknown placeholder {who} in case 'greet'" in message
    assert "(vars: none;" in message and "{{ and }}" in message


def test_unknown_placeholder_lists_the_vars_there_are(tmp_path: Path) -> None:
    message = error(tmp_path, "  - id: c\n    vars: {city: Oslo}\n    prompt: 'In {town}?'\n")
    assert "cases[0].prompt (line 6): unknown placeholder {town} in case 'c' (vars: city;" in message


@pytest.mark.parametrize("token", ["{{city}}", "{{ city }}", "{{  city}}"])
def test_double_braces_around_a_defined_var_suggest_single_braces(tmp_path: Path, token: str) -> None:
    message = error(tmp_path, f"  - id: c\n    vars: {{city: Oslo}}\n    prompt: 'In {token}?'\n")
    assert f"{token} in case 'c' is literal braces, not a placeholder: write {{city}}" in message


def test_double_braces_around_a_suite_var_also_fail(tmp_path: Path) -> None:
    head = HEAD.replace("cases:\n", "vars: {company: Acme}\ncases:\n")
    message = error(tmp_path, "  - id: c\n    system: 'You work for {{ company }}.'\n    prompt: Hi\n", head)
    assert "cases[0].system" in message and "write {company}" in message


def test_double_braces_around_an_undefined_name_are_literal(tmp_path: Path) -> None:
    suite = load(tmp_path, "  - id: c\n    vars: {city: Oslo}\n    prompt: 'Keep {{ town }} and {{x}}; {city}'\n")
    assert content(suite) == "Keep { town } and {x}; Oslo"


def test_escapes_json_and_nested_braces(tmp_path: Path) -> None:
    prompt = """'{{{city}}} {"a": 1} {{"b": {{"c": 2}}}} { city } {1}'"""
    suite = load(tmp_path, f"  - id: c\n    vars: {{city: Oslo}}\n    prompt: {prompt}\n")
    assert content(suite) == '{Oslo} {"a": 1} {"b": {"c": 2}} { city } {1}'


def test_suite_vars_reach_every_case_and_case_vars_win(tmp_path: Path) -> None:
    head = HEAD.replace("cases:\n", "vars: {company: Acme, tone: calm}\ncases:\n")
    suite = load(tmp_path, """\
      - id: a
        system: 'You work for {company}; be {tone}.'
        prompt: Hi
      - id: b
        vars: {tone: brisk}
        prompt: 'Be {tone} for {company}.'
    """, head)
    assert suite.cases[0].messages[0]["content"] == "You work for Acme; be calm."
    assert suite.cases[1].messages[0]["content"] == "Be brisk for Acme."


def test_suite_vars_are_checked_like_case_vars(tmp_path: Path) -> None:
    head = HEAD.replace("cases:\n", "vars: {'bad name': x}\ncases:\n")
    assert "vars['bad name'] (line 3): invalid name" in error(tmp_path, "  - id: a\n    prompt: Hi\n", head)


def test_tools_and_response_format_are_not_templates(tmp_path: Path) -> None:
    suite = load(tmp_path, """\
      - id: c
        prompt: Weather?
        tools:
          - type: function
            function:
              name: get_weather
              description: 'Takes {city} and {{units}}'
              parameters: {type: object, properties: {city: {type: string, description: '{city}'}}}
        response_format:
          type: json_schema
          json_schema: {name: out, schema: {type: object, description: '{{x}} {y}'}}
    """)
    case = suite.cases[0]
    assert case.tools[0]["function"]["description"] == "Takes {city} and {{units}}"
    assert case.response_format["json_schema"]["schema"]["description"] == "{{x}} {y}"


def test_every_example_suite_still_loads() -> None:
    suites = sorted((Path(__file__).resolve().parent.parent / "data" / "suites").glob("*.yaml"))
    assert len(suites) >= 7
    for path in suites:
        load_suite(path)


def test_run_stops_on_a_placeholder_typo_before_any_request(tmp_path: Path, cli_db: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + "  - id: c\n    vars: {city: Oslo}\n    prompt: 'In {cty}?'\n", encoding="utf-8")
    code, out, err = invoke("run", str(path), "--sandbox")
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "unknown placeholder {cty} in case 'c'" in errors[0]
    assert not cli_db.exists()

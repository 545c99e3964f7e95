"""``orbench import promptfoo``: a promptfoo config becomes a suite that loads and runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import duckdb
import pytest
import yaml
from conftest import invoke

from bench.errors import ConfigError
from bench.suites.parse import load_suite
from bench.suites.promptfoo import convert_config

CONFIG = """\
description: Support bot
prompts:
  - 'Answer in one word: {{question}} [[answer: {{answer}}]]'
providers:
  - openrouter:openai/gpt-4o-mini
  - id: openrouter:google/gemini-2.5-flash
    label: flash
    config: {temperature: 0, max_tokens: 32}
  - openai:gpt-4o
  - anthropic:messages:claude-3-5-haiku-latest
defaultTest:
  assert:
    - type: latency
      threshold: 60000
    - type: cost
      threshold: 0.05
tests:
  - description: capital
    vars: {question: "What is the capital of France?", answer: Paris}
    assert:
      - type: contains
        value: Paris
      - type: icontains
        value: "{{answer}}"
        weight: 2
      - type: llm-rubric  # the marker makes the sandbox's judge answer this verdict
        value: 'Names the capital of France. [[answer: {"score": 0.9, "reason": "says Paris"}]]'
        threshold: 0.5
      - type: javascript
        value: output.length < 50
  - description: json
    vars: {question: 'Give {"ok": true}', answer: '{"ok": true}'}
    threshold: 0.5
    assert:
      - type: is-json
      - type: python
        value: file://check.py
      - type: similar
        value: ok
"""


RUBRIC = 'Names the capital of France. [[answer: {"score": 0.9, "reason": "says Paris"}]]'


def write(tmp_path: Path, text: str, name: str = "promptfooconfig.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def convert(tmp_path: Path, text: str) -> dict:
    return convert_config(write(tmp_path, text)).suite


def minimal(prompts: str = "'Say {{x}}'", tests: str = "[{vars: {x: hi}}]", extra: str = "") -> str:
    return f"prompts: {prompts}\nproviders: [openrouter:openai/gpt-4o-mini]\ntests: {tests}\n{extra}"


# ----------------------------------------------------------------- end to end
def test_import_writes_a_suite_that_validates_and_runs_on_the_sandbox(tmp_path: Path, cli_db: Path) -> None:
    config, out = write(tmp_path, CONFIG), tmp_path / "suite.yaml"
    code, stdout, err = invoke("import", "promptfoo", str(config), "-o", str(out))
    assert code == 0, err
    assert stdout == ""
    assert "providers: unsupported (orbench runs openrouter:MODEL only): openai:gpt-4o, anthropic:" in err
    assert "tests[0].assert[3]: javascript assert refused: orbench runs no code" in err
    assert "tests[1].assert[1]: python assert refused" in err
    assert "tests[1].assert[2]: unknown assert type 'similar'" in err
    assert "2 cases x 2 models, 3 asserts not carried over" in err
    assert invoke("suite", "validate", str(out))[0] == 0
    code, _, err = invoke("run", str(out), "--sandbox")
    assert code == 0, err
    with duckdb.connect(str(cli_db), read_only=True) as con:
        rows = con.execute("select case_id, model, outcome, passed from requests where not is_warmup "
                           "order by case_id, model").fetchall()
        details = con.execute("select check_detail from requests "
                              "where not is_warmup and case_id = 'capital'").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("capital", "google/gemini-2.5-flash", "ok"), ("capital", "openai/gpt-4o-mini", "ok"),
        ("json", "google/gemini-2.5-flash", "ok"), ("json", "openai/gpt-4o-mini", "ok"),
    ]
    assert all(r[3] is True for r in rows)  # contains, icontains, judge, is-json, latency and cost all held
    for (detail,) in details:
        kinds = {c["kind"]: c["passed"] for c in json.loads(detail)}
        assert kinds == {"max_latency_ms": True, "max_cost_usd": True, "contains": True, "icontains": True,
                         "judge": True}


def test_import_without_output_prints_the_suite_on_stdout(tmp_path: Path) -> None:
    code, out, err = invoke("import", "promptfoo", str(write(tmp_path, CONFIG)))
    assert code == 0
    assert out.startswith("# Imported from promptfooconfig.yaml by `orbench import promptfoo`.")
    assert "#   tests[0].assert[3]: javascript assert refused" in out  # the suite says what was left
    assert yaml.safe_load(out)["name"] == "support-bot"
    assert "imported" in err


def test_import_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "suite.yaml"
    out.write_text("keep", encoding="utf-8")
    code, _, err = invoke("import", "promptfoo", str(write(tmp_path, CONFIG)), "-o", str(out))
    assert code == 1 and "exists; pass --force" in err and out.read_text() == "keep"
    assert invoke("import", "promptfoo", str(write(tmp_path, CONFIG)), "-o", str(out), "--force")[0] == 0
    assert load_suite(out).name == "support-bot"


# ----------------------------------------------------------------- mapping
def test_asserts_map_to_checks_with_weights_and_thresholds(tmp_path: Path) -> None:
    suite = convert(tmp_path, CONFIG)
    assert suite["models"] == ["openai/gpt-4o-mini",
                               {"id": "google/gemini-2.5-flash", "label": "flash",
                                "params": {"temperature": 0, "max_tokens": 32}}]
    assert suite["checks"] == [{"max_latency_ms": 60000}, {"max_cost_usd": 0.05}]
    capital, as_json = suite["cases"]
    assert capital["checks"] == [{"contains": "Paris"}, {"icontains": "Paris", "weight": 2},
                                 {"judge": {"rubric": RUBRIC, "pass_score": 0.5}}]
    assert as_json["checks"] == [{"json_valid": True}]
    assert as_json["pass_threshold"] == 0.5
    assert suite["judge"] == {"model": "openai/gpt-4o-mini"}


@pytest.mark.parametrize(("assertion", "checks"), [
    ({"type": "equals", "value": "4"}, [{"equals": "4"}]),
    ({"type": "contains", "value": "a"}, [{"contains": "a"}]),
    ({"type": "icontains", "value": "a"}, [{"icontains": "a"}]),
    ({"type": "not-contains", "value": "a"}, [{"not_contains": "a"}]),
    ({"type": "regex", "value": "^\\d+$"}, [{"regex": "^\\d+$"}]),
    ({"type": "is-json"}, [{"json_valid": True}]),
    ({"type": "contains-json"}, [{"json_valid": True}]),
    ({"type": "is-json", "value": {"type": "object"}}, [{"json_schema": {"type": "object"}}]),
    ({"type": "llm-rubric", "value": "Polite.", "provider": "openrouter:openai/gpt-4.1-mini"},
     [{"judge": {"rubric": "Polite.", "model": "openai/gpt-4.1-mini"}}]),
    ({"type": "latency", "threshold": 1500}, [{"max_latency_ms": 1500}]),
    ({"type": "cost", "threshold": 0.002}, [{"max_cost_usd": 0.002}]),
    ({"type": "contains", "value": "a", "weight": 3}, [{"contains": "a", "weight": 3}]),
    ({"type": "contains-all", "value": ["a", "b"], "weight": 3},
     [{"contains": "a", "weight": 1.5}, {"contains": "b", "weight": 1.5}]),
    ({"type": "icontains-any", "value": ["a.b", "c"]}, [{"regex": "(?i)a\\.b|c"}]),
])  # fmt: skip
def test_each_assert_type_maps_to_its_check(tmp_path: Path, assertion: dict, checks: list) -> None:
    tests = json.dumps([{"vars": {"x": "hi"}, "assert": [assertion]}])
    case = convert(tmp_path, minimal(tests=tests))["cases"][0]
    assert case["checks"] == checks


@pytest.mark.parametrize("kind", ["javascript", "python"])
def test_code_asserts_are_refused_with_the_reason_and_the_case_converts(tmp_path: Path, kind: str) -> None:
    tests = json.dumps([{"assert": [{"type": "contains", "value": "hi"}, {"type": kind, "value": "true"}],
                         "vars": {"x": "hi"}}])
    conv = convert_config(write(tmp_path, minimal(tests=tests)))
    assert conv.suite["cases"][0]["checks"] == [{"contains": "hi"}]
    assert conv.notes == [f"tests[0].assert[1]: {kind} assert refused: orbench runs no code from suites; "
                          "the case converts without it"]
    assert conv.refused == 1


def test_unknown_asserts_and_zero_weights_are_listed(tmp_path: Path) -> None:
    tests = json.dumps([{"vars": {"x": "hi"}, "assert": [{"type": "levenshtein", "value": "hi"},
                                                        {"type": "contains", "value": "h", "weight": 0}]}])
    conv = convert_config(write(tmp_path, minimal(tests=tests)))
    assert "tests[0].assert[0]: unknown assert type 'levenshtein'; left out" in conv.notes
    assert any(n.startswith("tests[0].assert[1]: contains assert with weight 0") for n in conv.notes)
    assert "checks" not in conv.suite["cases"][0]


# ----------------------------------------------------------------- templates
def test_nunjucks_vars_become_placeholders_and_literal_braces_are_escaped(tmp_path: Path) -> None:
    config = minimal(prompts="""['Return {"name": "{{ name }}", "n": {{n}}} for {{name}}']""",
                     tests='[{vars: {name: Ada, n: 3}}]')
    path = tmp_path / "suite.yaml"
    assert invoke("import", "promptfoo", str(write(tmp_path, config)), "-o", str(path))[0] == 0
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert raw["cases"][0]["prompt"] == 'Return {{"name": "{name}", "n": {n}}} for {name}'
    assert load_suite(path).cases[0].messages[0]["content"] == 'Return {"name": "Ada", "n": 3} for Ada'


def test_assert_values_are_rendered_with_the_tests_vars(tmp_path: Path) -> None:
    tests = '[{vars: {x: hi, want: Hello}, assert: [{type: icontains, value: "{{ want }}!"}]}]'
    assert convert(tmp_path, minimal(tests=tests))["cases"][0]["checks"] == [{"icontains": "Hello!"}]


def test_nunjucks_beyond_vars_leaves_the_case_out_with_a_note(tmp_path: Path) -> None:
    config = minimal(prompts="['Say {{ x | upper }}', 'Say {{x}}']")
    conv = convert_config(write(tmp_path, config))
    assert [c["id"] for c in conv.suite["cases"]] == ["p2.t1"]
    assert any("'{{ x | upper }}': Nunjucks beyond" in n for n in conv.notes)


def test_a_var_the_test_lacks_is_sent_empty_as_promptfoo_does(tmp_path: Path) -> None:
    conv = convert_config(write(tmp_path, minimal(prompts="'Say {{x}} {{y}}'")))
    assert conv.suite["cases"][0]["vars"] == {"x": "hi", "y": ""}
    assert any("uses {{y}} but the test has no such var" in n for n in conv.notes)


# ----------------------------------------------------------------- structure
def test_prompts_times_tests_give_stable_readable_ids(tmp_path: Path) -> None:
    write(tmp_path, "Say {{x}}\n---\nShout {{x}}\n", "prompts.txt")
    write(tmp_path, '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{x}}"}]', "chat.json")
    config = minimal(prompts="[file://prompts.txt, {id: file://chat.json, label: Chat Bot}]",
                     tests="[{description: Greeting, vars: {x: hi}}, {vars: {x: [a, b]}}]")
    suite = convert(tmp_path, config)
    ids = [c["id"] for c in suite["cases"]]
    assert ids == ["prompts-1.greeting", "prompts-2.greeting", "chat-bot.greeting",
                   "prompts-1.t2", "prompts-2.t2", "chat-bot.t2",
                   "prompts-1.t2-v2", "prompts-2.t2-v2", "chat-bot.t2-v2"]
    chat = suite["cases"][2]
    assert chat["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{x}"}]
    assert [c["vars"]["x"] for c in suite["cases"][3:]] == ["a", "a", "a", "b", "b", "b"]


def test_default_test_becomes_suite_vars_checks_and_threshold(tmp_path: Path) -> None:
    extra = ("defaultTest:\n  vars: {tone: calm}\n  threshold: 0.5\n"
             "  assert: [{type: not-contains, value: sorry}]\n"
             "  options: {provider: openrouter:openai/gpt-4.1-mini}\n")
    suite = convert(tmp_path, minimal(prompts="'Say {{x}}, {{tone}}'", extra=extra))
    assert suite["vars"] == {"tone": "calm"}
    assert suite["checks"] == [{"not_contains": "sorry"}]
    assert suite["pass_threshold"] == 0.5
    assert suite["cases"][0]["vars"] == {"x": "hi"}


def test_tests_from_csv_and_jsonl_files(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("x,__expected1,__expected2,__description\n"
                                    "hi,contains: hi,latency: 900,first row\n4,4,grade: Is four.,\n",
                                    encoding="utf-8")
    (tmp_path / "t.jsonl").write_text('{"vars": {"x": "yo"}, "assert": [{"type": "regex", "value": "y"}]}\n',
                                      encoding="utf-8")
    suite = convert(tmp_path, minimal(tests="[file://t.csv, file://t.jsonl]"))
    first, second, third = suite["cases"]
    assert (first["id"], first["vars"], first["checks"]) == (
        "first-row", {"x": "hi"}, [{"contains": "hi"}, {"max_latency_ms": 900.0}])
    assert second["checks"] == [{"equals": "4"}, {"judge": {"rubric": "Is four."}}]
    assert third["checks"] == [{"regex": "y"}]
    assert convert(tmp_path, minimal(tests="file://t.csv"))["cases"][0]["id"] == "first-row"


def test_only_unsupported_providers_is_one_line_and_exit_1(tmp_path: Path) -> None:
    config = minimal().replace("[openrouter:openai/gpt-4o-mini]", "[openai:gpt-4o, ollama:llama3]")
    code, out, err = invoke("import", "promptfoo", str(write(tmp_path, config)))
    assert code == 1 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: {tmp_path / 'promptfooconfig.yaml'}: providers: no openrouter:MODEL provider "
                      "to run (unsupported: openai:gpt-4o, ollama:llama3)"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("- a\n", "expected a promptfoo config mapping"),
    ("prompts: [hi]\ntests: []\n", "providers: missing"),
    ("providers: [openrouter:a/b]\n", "prompts: missing"),
    (minimal(tests="file://nowhere.csv"), "cannot read"),
    (minimal(tests="[{assert: [{type: latency}]}]"), "tests[0].assert[0].threshold: a latency assert needs"),
    ("prompts: [hi]\nproviders: [openrouter:a/b]\ntests: [: x\n", "is not valid YAML"),
])  # fmt: skip
def test_bad_configs_are_one_line_errors(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        convert_config(write(tmp_path, text))
    assert "\n" not in str(info.value) and fragment in str(info.value)

"""Quality checks: every kind passes and fails with a reason; weights, thresholds, judge."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench.errors import ProviderError, SuiteError
from bench.quality.checks import (
    CheckOutcome,
    JudgeVerdict,
    evaluate_checks,
    evaluate_checks_async,
    last_number,
    results_json,
)
from bench.records import ToolCall
from bench.suites.checks import (
    Check,
    CheckSpecError,
    JudgeSpec,
    parse_checks,
)
from bench.suites.parse import load_suite

PERSON_SCHEMA = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}


def weather_call(arguments: str, name: str = "get_weather") -> ToolCall:
    return ToolCall(index=0, id="c1", name=name, arguments=arguments)


def run(raw: list[Any], text: str = "", **observed: Any) -> CheckOutcome:
    return evaluate_checks(parse_checks(raw), output_text=text, **observed)


# (check, observation that passes, observation that fails, fragment of the failure reason)
KINDS: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], str]] = [
    ({"equals": "42"}, {"text": " 42\n"}, {"text": "41"}, "expected '42', got '41'"),
    ({"equals": 42}, {"text": "42"}, {"text": "forty-two"}, "expected '42'"),
    ({"contains": "Paris"}, {"text": "It is Paris."}, {"text": "It is paris."}, "'Paris' not found in the answer"),
    ({"icontains": "Paris"}, {"text": "PARIS"}, {"text": "Lyon"}, "not found in the answer (ignoring case)"),
    ({"not_contains": "sorry"}, {"text": "Here you go"}, {"text": "I am sorry"}, "'sorry' found in the answer"),
    ({"regex": r"^\d+$"}, {"text": "123"}, {"text": "12a"}, r"no match for /^\d+$/ in '12a'"),
    ({"one_of": ["positive", "negative"]}, {"text": "Positive."}, {"text": "mixed"}, "expected one of 'positive', 'negative', got 'mixed'"),
    ({"numeric": 42}, {"text": "6 x 7 = 42"}, {"text": "I think 41"}, "expected 42, got 41 (the last number"),
    ({"numeric": {"value": 3.14, "tolerance": 0.01}}, {"text": "pi is ~3.141"}, {"text": "3.2"}, "expected 3.14 ± 0.01, got 3.2"),
    ({"numeric": 1234.5}, {"text": "Total: $1,234.50"}, {"text": "no idea"}, "no number in the answer"),
    ({"json_valid": True}, {"text": '```json\n{"a": 1}\n```'}, {"text": "{'a': 1}"}, "not valid JSON: Expecting property name"),
    ({"json_schema": PERSON_SCHEMA}, {"text": '{"age": 3}'}, {"text": '{"age": "3"}'}, "does not match the schema at $.age: '3' is not of type 'integer'"),
    ({"json_schema": PERSON_SCHEMA}, {"text": '{"age": 3}'}, {"text": "nope"}, "not valid JSON"),
    ({"tool_call": "get_weather"}, {"tool_calls": [weather_call("{}")]}, {"text": "It is sunny"}, "no call to 'get_weather' (tool calls: none)"),
    (
        {"tool_call": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
        {"tool_calls": [weather_call('{"city": "Oslo", "unit": "celsius"}')]},
        {"tool_calls": [weather_call('{"city": "Bergen"}')]},
        'get_weather arguments differ: city: expected "Oslo", got "Bergen"',
    ),
    (
        {"tool_call": {"name": "get_weather", "arguments": {"where": {"city": "Oslo"}}}},
        {"tool_calls": [weather_call('{"where": {"city": "Oslo", "country": "NO"}}')]},
        {"tool_calls": [weather_call('{"where": {"country": "NO"}}')]},
        "where.city: missing",
    ),
    (
        {"tool_call": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
        {"tool_calls": [weather_call("{}", "lookup"), weather_call('{"city": "Oslo"}')]},
        {"tool_calls": [weather_call('{"city": "Oslo"')]},
        "get_weather arguments are not valid JSON",
    ),
    ({"max_latency_ms": 1500}, {"e2e_ms": 1499.0}, {"e2e_ms": 1834.0}, "e2e latency 1834 ms > 1500 ms"),
    ({"max_ttft_ms": 300}, {"ttft_ms": 120.0}, {"ttft_ms": 450.0}, "TTFT 450 ms > 300 ms"),
    ({"max_cost_usd": 0.001}, {"cost_usd": Decimal("0.001")}, {"cost_usd": Decimal("0.0021")}, "cost 0.0021 USD > 0.001 USD"),
    ({"max_output_tokens": 200}, {"completion_tokens": 200}, {"completion_tokens": 210}, "completion tokens 210 > 200"),
]


def observe(observation: dict[str, Any]) -> dict[str, Any]:
    observed = dict(observation)
    observed["output_text"] = observed.pop("text", "")
    return observed


@pytest.mark.parametrize(("raw", "good", "bad", "reason"), KINDS, ids=[next(iter(k[0])) for k in KINDS])
def test_check_kind_passes_and_fails_with_reason(raw: dict[str, Any], good: dict[str, Any], bad: dict[str, Any], reason: str) -> None:
    checks = parse_checks([raw])
    passed = evaluate_checks(checks, **observe(good))
    assert (passed.passed, passed.score, passed.results[0].reason) == (True, 1.0, None)
    failed = evaluate_checks(checks, **observe(bad))
    assert (failed.passed, failed.score) == (False, 0.0)
    assert failed.results[0].reason is not None and reason in failed.results[0].reason


def test_every_kind_is_covered() -> None:
    from bench.suites.checks import KINDS as ALL_KINDS

    covered = {next(iter(k[0])) for k in KINDS} | {"judge"}
    assert covered == set(ALL_KINDS)


def test_tool_call_argument_types_are_strict() -> None:
    outcome = run([{"tool_call": {"name": "f", "arguments": {"flag": True, "n": 1}}}],
                  tool_calls=[weather_call('{"flag": 1, "n": 1.0}', "f")])  # fmt: skip
    assert outcome.passed is False and "flag: expected true, got 1" in (outcome.results[0].reason or "")


def test_missing_measurement_is_not_evaluated() -> None:
    outcome = run([{"max_latency_ms": 100}], e2e_ms=None)
    assert outcome.passed is None and outcome.score is None
    assert outcome.results[0].reason == "not evaluated: e2e latency not measured"


@pytest.mark.parametrize(
    ("text", "number"),
    [("x = -5", "-5"), ("pages 3-5", "5"), ("1,234.56 total", "1234.56"), ("v2 is 7.", "7"), ("none", None), (".5 left", ".5")],
)
def test_last_number(text: str, number: str | None) -> None:
    assert last_number(text) == (None if number is None else Decimal(number))


# ----------------------------------------------------------------- weights and thresholds
def test_weights_and_threshold_decide_the_outcome() -> None:
    raw = [{"contains": "a", "weight": 3}, {"contains": {"value": "b", "weight": 1}}]
    checks = parse_checks(raw)
    assert [c.weight for c in checks] == [3.0, 1.0]
    only_a = evaluate_checks(checks, output_text="a", threshold=0.75)
    assert (only_a.passed, only_a.score) == (True, 0.75)
    assert evaluate_checks(checks, output_text="a").passed is False  # default threshold 1.0
    assert evaluate_checks(checks, output_text="b", threshold=0.75).passed is False


def test_no_checks_means_no_verdict() -> None:
    assert run([]) == CheckOutcome(None, None, [], 1.0)


def test_weight_given_twice_is_rejected() -> None:
    with pytest.raises(CheckSpecError, match=r"checks\[0\]\.weight: weight given twice"):
        parse_checks([{"contains": {"value": "a", "weight": 2}, "weight": 1}])


# ----------------------------------------------------------------- judge
JUDGE = {"judge": {"rubric": "Is it polite?", "model": "openai/gpt-4o-mini", "pass_score": 0.6}}


def test_judge_without_callback_is_not_evaluated_and_pending_decides() -> None:
    outcome = run([JUDGE, {"contains": "hi"}], text="hi")
    assert outcome.results[0] == _result("judge", None, None, "not evaluated: no judge available")
    assert (outcome.passed, outcome.score) == (None, 1.0)  # the judge could still fail it
    assert run([JUDGE, {"contains": "hi"}], text="bye").passed is False  # fails whatever the judge says
    assert run([JUDGE, {"contains": "hi"}], text="hi", threshold=0.5).passed is True


def test_judge_callback_scores_against_pass_score() -> None:
    seen: list[tuple[JudgeSpec, str]] = []

    def judge(spec: JudgeSpec, answer: str) -> JudgeVerdict:
        seen.append((spec, answer))
        return JudgeVerdict(0.5, "a bit curt")

    outcome = run([JUDGE], text="hi", judge_fn=judge)
    assert seen == [(JudgeSpec("Is it polite?", "openai/gpt-4o-mini", 0.6), "hi")]
    assert outcome.results[0] == _result("judge", False, 0.5, "judge score 0.50 < 0.60: a bit curt")
    assert run([JUDGE], judge_fn=lambda s, a: JudgeVerdict(0.9)).passed is True


def test_judge_failure_is_recorded_as_not_evaluated() -> None:
    def broken(spec: JudgeSpec, answer: str) -> JudgeVerdict:
        raise ProviderError("judge model unavailable", status=503)

    outcome = run([JUDGE], judge_fn=broken)
    assert outcome.passed is None and "judge failed: judge model unavailable" in (outcome.results[0].reason or "")


def test_async_judge() -> None:
    async def judge(spec: JudgeSpec, answer: str) -> JudgeVerdict:
        return JudgeVerdict(1.0, "fine")

    outcome = asyncio.run(evaluate_checks_async(parse_checks([JUDGE, {"equals": "x"}]), output_text="x", judge_fn=judge))
    assert (outcome.passed, outcome.score) == (True, 1.0)


def test_async_judge_failure_and_low_score_with_other_checks() -> None:
    async def low(spec: JudgeSpec, answer: str) -> JudgeVerdict:
        return JudgeVerdict(0.2, "too vague")

    async def broken(spec: JudgeSpec, answer: str) -> JudgeVerdict:
        raise ProviderError("judge model unavailable", status=503)

    checks = parse_checks([{"equals": "x"}, JUDGE])
    outcome = asyncio.run(evaluate_checks_async(checks, output_text="x", judge_fn=low, e2e_ms=5.0))
    assert outcome.passed is False and outcome.results[1].reason and "too vague" in outcome.results[1].reason
    outcome = asyncio.run(evaluate_checks_async(checks, output_text="x", judge_fn=broken))
    assert outcome.passed is None and "judge model unavailable" in (outcome.results[1].reason or "")


def test_results_json_is_a_list_of_results() -> None:
    outcome = run([{"equals": "a", "weight": 2}, {"contains": "z"}], text="a")
    assert json.loads(results_json(outcome)) == [
        {"kind": "equals", "passed": True, "score": 1.0, "reason": None, "weight": 2.0},
        {"kind": "contains", "passed": False, "score": 0.0, "reason": "'z' not found in the answer", "weight": 1.0},
    ]


def _result(kind: str, passed: bool | None, score: float | None, reason: str | None) -> Any:
    from bench.quality.checks import CheckResult

    return CheckResult(kind, passed, score, reason, 1.0)


# ----------------------------------------------------------------- parsing errors
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("contains: x", "checks: expected a list of checks, got 'contains: x'"),
        (["contains"], "checks[0]: expected a mapping like {contains: Paris}, got 'contains'"),
        ([{"contain": "x"}], "checks[0].contain: unknown check kind 'contain' (did you mean 'contains'?)"),
        ([{"weight": 2}], "checks[0]: missing the check kind"),
        ([{"contains": "x", "regex": "y"}], "checks[0]: several check kinds in one item (contains, regex)"),
        ([{"regex": "(unclosed"}], "checks[0].regex: invalid regular expression '(unclosed': missing ), unterminated subpattern"),
        ([{"json_schema": {"type": "objekt"}}], "checks[0].json_schema: invalid JSON schema at type"),
        ([{"numeric": "forty"}], "checks[0].numeric: expected a number, got 'forty'"),
        ([{"numeric": {"value": 1, "tolerance": -1}}], "checks[0].numeric.tolerance: expected a number >= 0, got -1"),
        ([{"numeric": {"value": 1, "tol": 1}}], "checks[0].numeric.tol: unknown key 'tol' (did you mean 'tolerance'?)"),
        ([{"json_valid": False}], "checks[0].json_valid: expected true, got false"),
        ([{"one_of": []}], "checks[0].one_of: expected a non-empty list of strings"),
        ([{"tool_call": {"name": "f", "args": {}}}], "checks[0].tool_call.args: unknown key 'args' (did you mean 'arguments'?)"),
        ([{"tool_call": {"name": "f", "weight": 2}}], "put weight beside the kind"),
        ([{"max_output_tokens": 1.5}], "checks[0].max_output_tokens: expected a positive integer, got 1.5"),
        ([{"max_latency_ms": -3}], "checks[0].max_latency_ms: expected a positive number of milliseconds"),
        ([{"contains": "x", "weight": 0}], "checks[0].weight: expected a positive number, got 0"),
        ([{"judge": {"pass_score": 2}}], "checks[0].judge.pass_score: expected a number between 0 and 1, got 2"),
        ([{"json_schema": {"file": "missing.json"}}], "checks[0].json_schema.file: cannot read schema file 'missing.json'"),
    ],
)
def test_parse_checks_rejects_malformed(raw: object, message: str) -> None:
    with pytest.raises(SuiteError) as info:
        parse_checks(raw, read_bytes=lambda ref: (_ for _ in ()).throw(FileNotFoundError(2, "No such file")))
    assert message in str(info.value)


def test_cost_limit_accepts_yaml_exponent_text() -> None:
    (check,) = parse_checks([{"max_cost_usd": "1e-3"}])
    assert check == Check("max_cost_usd", Decimal("0.001"))


# ----------------------------------------------------------------- through a suite file
SUITE = """\
name: s
models: [openai/gpt-4o-mini]
cases:
  - id: first
    prompt: hi
  - id: second
    prompt: hi
    checks:
      - contains: hi
      - {CHECK}
"""


@pytest.mark.parametrize(
    ("check", "fragment"),
    [
        ("regex: '(a'", "cases[1].checks[1].regex (line 10): invalid regular expression '(a'"),
        ("regexp: a", "cases[1].checks[1].regexp (line 10): unknown check kind 'regexp' (did you mean 'regex'?)"),
        ("json_schema: {type: 7}", "cases[1].checks[1].json_schema (line 10): invalid JSON schema at type"),
        ("json_schema: {file: gone.json}", "cases[1].checks[1].json_schema.file (line 10): cannot read schema file 'gone.json'"),
        ("numeric: {value: x}", "cases[1].checks[1].numeric.value (line 10): expected a number, got 'x'"),
        ("judge: {rubric: polite}", "cases[1].checks[1].judge (line 10): a judge check needs a model"),
        ("tool_call: get_weather", None),
    ],
)
def test_suite_check_errors_name_file_case_and_check(tmp_path: Path, check: str, fragment: str | None) -> None:
    path = tmp_path / "checks.yaml"
    path.write_text(SUITE.replace("{CHECK}", check))
    if fragment is None:
        assert load_suite(path).cases[1].checks[1].arg.name == "get_weather"
        return
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(info.value).startswith(f"{path}: {fragment}")
    assert "\n" not in str(info.value)


def test_tool_call_check_must_name_a_case_tool(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(SUITE.replace("{CHECK}", "tool_call: get_wether").replace(
        "    checks:", "    tools: [{type: function, function: {name: get_weather}}]\n    checks:"))  # fmt: skip
    with pytest.raises(SuiteError, match=r"cases\[1\]\.checks\[1\]\.tool_call \(line 11\): no tool named 'get_wether'"):
        load_suite(path)


def test_suite_checks_apply_to_every_case_first(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.replace("{CHECK}", "equals: hi") + "checks: [{max_output_tokens: 9}]\npass_threshold: 0.5\n")
    first, second = load_suite(path).cases
    assert [c.kind for c in first.checks] == ["max_output_tokens"]
    assert [c.kind for c in second.checks] == ["max_output_tokens", "contains", "equals"]
    assert second.pass_threshold == 0.5


def test_json_schema_file_is_loaded_relative_to_suite_and_hashed(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    schema_file = tmp_path / "schemas" / "person.json"
    schema_file.write_text(json.dumps(PERSON_SCHEMA))
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.replace("{CHECK}", "json_schema: {file: schemas/person.json}"))
    suite = load_suite(path)
    assert suite.cases[1].checks[1].arg.schema == PERSON_SCHEMA
    schema_file.write_text(json.dumps({**PERSON_SCHEMA, "required": []}))
    assert load_suite(path).content_hash != suite.content_hash


def test_judge_takes_suite_defaults(tmp_path: Path) -> None:
    path = tmp_path / "j.yaml"
    path.write_text(SUITE.replace("{CHECK}", "judge: {rubric: polite}") + "judge: {model: openai/gpt-4o-mini, pass_score: 0.8}\n")
    spec = load_suite(path).cases[1].checks[1].arg
    assert spec == JudgeSpec("polite", "openai/gpt-4o-mini", 0.8)

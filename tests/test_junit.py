"""JUnit XML: a testcase per case x model x provider with the failed checks' reasons, beside the gates.

End to end through the CLI against the real sandbox (known answers and an injected 500),
then the XML parsed with the standard library: what CI reporters will read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl

from bench.results.gates import CaseResult, Gate, GateResult, case_results, junit_xml
from bench.sandbox import start_sandbox
from tests.conftest import invoke

SUITE = """\
name: junit-demo
models: [openai/gpt-4o-mini, meta-llama/llama-3.3-70b-instruct]
repeats: 2
warmup: false
defaults: {max_tokens: 16}
cases:
  - id: capital
    prompt: "[[answer: Paris]] What is the capital of France?"
    checks: [{equals: Paris}]
  - id: city
    prompt: "[[answer: Lyon]] Name the largest French city."
    checks: [{contains: Paris}, {regex: "^P"}]
"""


def _cases(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    suite = root.find("testsuite[@name='junit-demo cases']")
    assert suite is not None
    return {(c.get("classname", ""), c.get("name", "")): c for c in suite.iter("testcase")}


def test_junit_has_a_testcase_per_case_model_and_provider(cli_db: Path, tmp_path: Path) -> None:
    suite = tmp_path / "junit.yaml"
    suite.write_text(SUITE)
    junit = tmp_path / "out.xml"
    with start_sandbox(time_scale=0.01, faults={"meta-llama/llama-3.3-70b-instruct": "500"}) as sb:
        code, _, err = invoke("run", str(suite), "--base-url", sb.base_url, "--max-failures", "0",
                              "--fail-on", "error_rate>0.5", "--junit", str(junit))
    assert code == 3, err  # llama's error rate is 100 %
    root = ET.fromstring(junit.read_text())  # well-formed, or this raises
    assert root.tag == "testsuites" and root.get("tests") == "7" and root.get("failures") == "4"
    cases = _cases(root)
    gpt, llama = "openai/gpt-4o-mini [default]", "meta-llama/llama-3.3-70b-instruct [default]"
    assert sorted(cases) == sorted([(gpt, "capital"), (gpt, "city"), (llama, "capital"), (llama, "city")])
    assert cases[(gpt, "capital")].find("failure") is None
    city = cases[(gpt, "city")].find("failure")
    assert city is not None
    message = city.get("message", "")
    assert message.startswith("2 of 2 requests failed: repeat 0: contains:") and "regex:" in message
    assert city.text is not None and city.text.count("\n") == 1  # one line per failed request
    assert "repeat 1: contains:" in city.text
    error = cases[(llama, "capital")].find("failure")
    assert error is not None and "provider_error" in error.get("message", "")
    gates = root.find("testsuite[@name='junit-demo gates']")
    assert gates is not None and len(gates.findall("testcase")) == 3  # 2 groups + TOTAL
    failed_gates = [c.get("name") for c in gates.iter("testcase") if c.find("failure") is not None]
    assert failed_gates == [f"{llama} :: error_rate>0.5"]


def test_junit_escapes_everything_an_answer_can_carry() -> None:
    nasty = 'a"b\'<c>&d\x00e\x1bf\ng\th'
    case = CaseResult(group=f"m/x [{nasty}]", case_id=nasty, requests=1, sent=1,
                      failures=(f"repeat 0: contains: got {nasty}",), time_s=0.5)
    gate = GateResult(Gate("ttft_p95_ms", ">", 5.0), f"m/x [{nasty}]", 7.0, True)
    root = ET.fromstring(junit_xml([gate], f"suite {nasty}", [case]))
    tc = root.find("testsuite/testcase")
    assert tc is not None
    clean = nasty.replace("\x00", "\ufffd").replace("\x1b", "\ufffd")  # not representable in XML 1.0
    assert tc.get("name") == clean and tc.get("classname") == f"m/x [{clean}]"
    failure = tc.find("failure")
    assert failure is not None and failure.get("message", "").endswith(f"got {clean}")  # newline kept
    assert failure.text == f"repeat 0: contains: got {clean}"
    assert root.get("name") == f"suite {clean}"


def test_a_case_none_of_whose_requests_was_sent_is_skipped_not_failed() -> None:
    rows = pl.DataFrame({
        "request_idx": [0, 1, 2, 3], "model": ["m/a"] * 4, "provider_variant": ["default"] * 4,
        "case_id": ["one", "one", "two", "two"], "repeat": [0, 1, 0, 1],
        "outcome": ["ok", "ok", "budget_skipped", "budget_skipped"], "passed": [True, None, None, None],
        "check_detail": [None] * 4, "error": [None, None, "the budget cannot cover it", None],
        "e2e_ms": [100.0, 300.0, None, None],
    })
    one, two = case_results(rows)
    assert (one.case_id, one.failed, one.skipped, one.time_s) == ("one", False, False, 0.4)
    assert (two.case_id, two.failed, two.skipped) == ("two", False, True)
    xml = ET.fromstring(junit_xml([], "s", [one, two]))
    skipped = xml.find(".//testcase[@name='two']/skipped")
    assert skipped is not None and "budget_skipped: the budget cannot cover it" in skipped.get("message", "")
    assert xml.get("skipped") == "1" and xml.get("failures") == "0"

"""A suite's ``datasets:``: rows of CSV, JSONL and Parquet files become cases; one-line errors."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import polars as pl
import pytest

from bench.errors import SuiteError
from bench.sandbox import start_sandbox
from bench.store.store import Store
from bench.suites.parse import load_suite
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text("name: ds\nmodels: [openai/gpt-4o-mini]\n" + textwrap.dedent(body), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)
    return path


def trivia_csv(tmp_path: Path, n: int) -> Path:
    rows = [[f"What is {i} plus {i}? [[answer: {2 * i}]]", 2 * i, f"c{i % 3}"] for i in range(n)]
    return write_csv(tmp_path / "trivia.csv", ["question", "answer", "category"], rows)


def load_error(path: Path) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------- expansion
def test_datasets_csv_rows_become_cases_with_templates(tmp_path: Path) -> None:
    trivia_csv(tmp_path, 3)
    suite = load_suite(write(tmp_path, """\
        vars: {style: briefly}
        defaults: {max_tokens: 20}
        datasets:
          - path: trivia.csv
            system: "Answer {style}."
            prompt: "Q{row}: {question} {{literal}}"
            tags: ["{category}", fixed]
            checks: [{icontains: "{answer}"}, {numeric: "{answer}"}]
        """))
    ids = [c.id for c in suite.cases]
    assert ids == ["trivia-0", "trivia-1", "trivia-2"]
    case = suite.cases[2]
    assert case.messages == [{"role": "system", "content": "Answer briefly."},
                             {"role": "user", "content": "Q2: What is 2 plus 2? [[answer: 4]] {literal}"}]
    assert case.tags == ("c2", "fixed") and case.max_tokens == 20
    assert [(c.kind, str(c.arg)) for c in case.checks][0] == ("icontains", "4")
    assert case.checks[1].kind == "numeric"
    assert "trivia.csv" in suite.files


def test_datasets_mix_with_cases_and_ids_stay_unique(tmp_path: Path) -> None:
    trivia_csv(tmp_path, 2)
    path = write(tmp_path, """\
        cases: [{id: q1, prompt: hand-written}]
        datasets:
          - {path: trivia.csv, id: "q{row}", prompt: "{question}"}
        """)
    message = load_error(path)
    assert message.startswith(f"{path}: datasets[0].id (line 5): trivia.csv row 1: duplicate case id 'q1'")
    assert "also cases[0]" in message


def test_datasets_jsonl_messages_column_holds_a_chat(tmp_path: Path) -> None:
    lines = [{"chat": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi {there}"}],
              "label": "yes", "n": 3},
             {"chat": json.dumps([{"role": "user", "content": "second"}]), "label": "no", "n": 4}]
    (tmp_path / "chats.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    suite = load_suite(write(tmp_path, """\
        datasets:
          - {path: chats.jsonl, messages: "{chat}", checks: [{equals: "{label}"}], id: "c-{n}"}
        """))
    first, second = suite.cases
    assert first.messages[1] == {"role": "user", "content": "hi {there}"}  # row data is never a template
    assert second.messages == [{"role": "user", "content": "second"}]
    assert (first.id, second.id) == ("c-3", "c-4") and second.checks[0].arg == "no"


def test_datasets_parquet_with_a_list_of_structs(tmp_path: Path) -> None:
    frame = pl.DataFrame({"msgs": [[{"role": "user", "content": "one"}], [{"role": "user", "content": "two"}]],
                          "gold": ["a", "b"]})
    frame.write_parquet(tmp_path / "chats.parquet")
    suite = load_suite(write(tmp_path, """\
        datasets:
          - {path: chats.parquet, messages: "{msgs}", system: "Sys.", checks: [{contains: "{gold}"}]}
        """))
    assert [c.messages for c in suite.cases] == [
        [{"role": "system", "content": "Sys."}, {"role": "user", "content": "one"}],
        [{"role": "system", "content": "Sys."}, {"role": "user", "content": "two"}]]
    assert [c.id for c in suite.cases] == ["chats-0", "chats-1"]


def test_datasets_sample_is_seeded_and_without_replacement(tmp_path: Path) -> None:
    trivia_csv(tmp_path, 200)
    body = "seed: {seed}\ndatasets:\n  - {{path: trivia.csv, prompt: '{{question}}', sample: 20}}\n"
    ids = {seed: [c.id for c in load_suite(write(tmp_path, body.format(seed=seed))).cases] for seed in (0, 1)}
    again = [c.id for c in load_suite(write(tmp_path, body.format(seed=0))).cases]
    assert len(set(ids[0])) == 20 and ids[0] == again and set(ids[0]) != set(ids[1])


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize(("body", "expected"), [
    ("datasets:\n  - {path: trivia.csv, prompt: '{questoin}'}\n",
     "datasets[0].prompt (line 4): unknown placeholder {questoin}: trivia.csv has no column 'questoin' "
     "(columns: question, answer, category"),
    ("datasets:\n  - {path: trivia.csv, prompt: '{{ question }}'}\n",
     "datasets[0].prompt (line 4): {{ question }} is literal braces"),
    ("datasets:\n  - {path: nope.csv, prompt: x}\n", "datasets[0].path (line 4): cannot read 'nope.csv'"),
    ("datasets:\n  - {path: trivia.txt, prompt: x}\n", "expected a .csv, .jsonl or .parquet file"),
    ("datasets:\n  - {path: trivia.csv}\n", "datasets[0] (line 4): give 'prompt' or 'messages'"),
    ("datasets:\n  - {path: trivia.csv, prompt: x, sample: 99}\n", "sample 99 is more than the 5 rows of 'trivia.csv'"),
    ("datasets:\n  - {path: trivia.csv, prompt: x, sample: 0}\n", "sample (line 4): expected a positive integer"),
    ("datasets:\n  - {path: trivia.csv, prompt: x, promt: y}\n", "unknown key 'promt'"),
    ("datasets:\n  - {path: trivia.csv, messages: 'chat {question}'}\n", "datasets[0].messages (line 4): expected one"),
    ("datasets:\n  - {path: trivia.csv, messages: '{chat}'}\n", "trivia.csv has no column 'chat'"),
    ("datasets:\n  - {path: trivia.csv, prompt: x, checks: [{numeric: '{question}'}]}\n",
     "datasets[0].checks[0].numeric (line 4): trivia.csv row 0, column 'question':"),
    ("seed: -1\ndatasets:\n  - {path: trivia.csv, prompt: x}\n", "seed (line 3): expected an integer >= 0"),
    ("description: no cases\n",
     "missing required key 'cases' (or 'datasets', 'synthetic', 'conversations' or 'synthetic_conversations')"),
])  # fmt: skip
def test_datasets_bad_item_is_one_line_with_the_place(tmp_path: Path, body: str, expected: str) -> None:
    trivia_csv(tmp_path, 5)
    (tmp_path / "trivia.txt").write_text("x", encoding="utf-8")
    path = write(tmp_path, body)
    message = load_error(path)
    assert message.startswith(f"{path}: ") and expected in message, message


def test_datasets_bad_value_names_file_row_and_column(tmp_path: Path) -> None:
    write_csv(tmp_path / "d.csv", ["q", "a"], [["fine", "1"], ["", "2"]])
    message = load_error(write(tmp_path, "datasets:\n  - {path: d.csv, prompt: '{q}'}\n"))
    assert "datasets[0].prompt (line 4): d.csv row 1: prompt is empty (from column 'q')" in message
    lines = [{"q": ["a", "list"], "a": 1}, {"q": ["b"], "a": 2}]  # (mixed with text, polars reads JSON text)
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    message = load_error(write(tmp_path, "datasets:\n  - {path: d.jsonl, prompt: '{q}'}\n"))
    assert "datasets[0] (line 4): d.jsonl row 0, column 'q': expected text or a number, got a list" in message
    (tmp_path / "m.jsonl").write_text(json.dumps({"m": '[{"role": "robot", "content": "x"}]'}), encoding="utf-8")
    message = load_error(write(tmp_path, "datasets:\n  - {path: m.jsonl, messages: '{m}'}\n"))
    assert "m.jsonl row 0, column 'm': message 0: role must be one of system" in message
    (tmp_path / "n.jsonl").write_text(json.dumps({"m": "not json"}), encoding="utf-8")
    assert "n.jsonl row 0, column 'm': not a JSON chat list" in load_error(
        write(tmp_path, "datasets:\n  - {path: n.jsonl, messages: '{m}'}\n"))


def test_datasets_null_and_unreadable_files_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"q": "a"}\n{"q": null}\n', encoding="utf-8")
    message = load_error(write(tmp_path, "datasets:\n  - {path: d.jsonl, prompt: '{q}'}\n"))
    assert "d.jsonl row 1, column 'q': the value is empty (null)" in message
    (tmp_path / "bad.parquet").write_bytes(b"not a parquet file at all")
    message = load_error(write(tmp_path, "datasets:\n  - {path: bad.parquet, prompt: x}\n"))
    assert "datasets[0].path (line 4): cannot read 'bad.parquet' as Parquet:" in message
    (tmp_path / "bad.jsonl").write_text('{"q": "a"}\n{broken\n', encoding="utf-8")
    message = load_error(write(tmp_path, "datasets:\n  - {path: bad.jsonl, prompt: '{q}'}\n"))
    assert "cannot read 'bad.jsonl' as JSONL:" in message
    (tmp_path / "empty.csv").write_text("q,a\n", encoding="utf-8")
    assert "'empty.csv' has no rows" in load_error(write(tmp_path, "datasets:\n  - {path: empty.csv, prompt: x}\n"))


def test_datasets_file_change_changes_the_suite_hash(tmp_path: Path) -> None:
    """--resume warns when the data changed: the file's bytes are in the content hash."""
    path = write(tmp_path, "datasets:\n  - {path: trivia.csv, prompt: '{question}'}\n")
    trivia_csv(tmp_path, 3)
    before = load_suite(path).content_hash
    trivia_csv(tmp_path, 4)
    assert load_suite(path).content_hash != before


# ----------------------------------------------------------------- through the CLI
def _run_ids(out: str) -> str:
    return str(json.loads(out)["run_id"])


def test_datasets_1000_row_csv_sampled_50_on_the_sandbox(cli_db: Path, tmp_path: Path) -> None:
    """The issue's must-show: 50 of 1,000 rows, distinct, the same for a seed, others for another."""
    trivia_csv(tmp_path, 1000)
    body = ("seed: {seed}\nwarmup: false\ndefaults: {{max_tokens: 8}}\ndatasets:\n"
            "  - {{path: trivia.csv, id: 'q{{row}}', prompt: '{{question}}', sample: 50, "
            "checks: [{{icontains: '{{answer}}'}}]}}\n")  # fmt: skip
    picked: dict[str, list[str]] = {}
    with start_sandbox(time_scale=0.02) as sb:
        for label, seed in (("a", 7), ("b", 7), ("c", 8)):
            suite = write(tmp_path, body.format(seed=seed), f"{label}.yaml")
            code, out, err = invoke("run", str(suite), "--base-url", sb.base_url, "--json", "--concurrency", "16")
            assert code == 0, err
            rows = Store(cli_db).requests_frame(_run_ids(out)).to_dicts()
            assert len(rows) == 50 and all(r["outcome"] == "ok" and r["passed"] for r in rows)
            picked[label] = sorted(r["case_id"] for r in rows)
    assert len(set(picked["a"])) == 50 and picked["a"] == picked["b"] and picked["a"] != picked["c"]


def test_datasets_example_suite_runs_on_the_sandbox(cli_db: Path) -> None:
    code, out, err = invoke("suite", "validate", str(ROOT / "data" / "suites" / "trivia.yaml"))
    assert code == 0 and "ok (2 models, 10 cases)" in out, err
    with start_sandbox(time_scale=0.02) as sb:
        code, out, err = invoke("run", str(ROOT / "data" / "suites" / "trivia.yaml"), "--base-url", sb.base_url,
                                "--json", "--no-warmup")
    assert code == 0, err
    rows = Store(cli_db).requests_frame(_run_ids(out)).to_dicts()
    passed = {r["case_id"]: r["passed"] for r in rows}
    assert len(rows) == 20 and sum(passed.values()) == 9 and passed["trivia-9"] is False


def test_datasets_dry_run_on_a_bad_row_exits_1_with_one_line(cli_db: Path, tmp_path: Path) -> None:
    write_csv(tmp_path / "d.csv", ["q"], [["fine"], ["   "]])
    code, _, err = invoke("run", str(write(tmp_path, "datasets:\n  - {path: d.csv, prompt: '{q}'}\n")),
                          "--dry-run", "--sandbox")
    lines = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert code == 1 and len(lines) == 1 and "d.csv row 1: prompt is empty (from column 'q')" in lines[0]
    assert not cli_db.exists()

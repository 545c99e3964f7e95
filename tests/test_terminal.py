"""Terminal output: tables on stdout fitted to COLUMNS, readable money and rates, exact machine formats.

Real components: the CLI in-process (click's runner), the real sandbox on loopback, a real
DuckDB file; the progress printer is driven with its own clock and an in-memory stream.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from bench.cli.run import ProgressPrinter
from bench.results.render import Column, fit_table, hidden_note, rate, shorten, usd
from bench.run.state import Progress
from bench.sandbox import start_sandbox
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "data" / "suites" / "smoke.yaml"
LONG_DECIMAL = re.compile(r"\d\.\d{7,}")  # what "0.00007519895833333333333333333333" looked like


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, str, str]:
    """Two sandbox runs of the smoke suite in one database: (db, run_a, run_b, stdout_a, stderr_a)."""
    db = tmp_path_factory.mktemp("term") / "orbench.duckdb"
    mp = pytest.MonkeyPatch()
    for k in [k for k in os.environ if k.startswith(("OPENROUTER_", "ORBENCH_"))]:
        mp.delenv(k)
    mp.setenv("ORBENCH_DB", str(db))
    mp.setenv("COLUMNS", "100")
    try:
        with start_sandbox(time_scale=0.02) as sb:
            code, out_a, err_a = invoke("run", str(SMOKE), "--base-url", sb.base_url)
            assert code == 0, err_a
            code, out_b, err_b = invoke("run", str(SMOKE), "--base-url", sb.base_url, "--json")
            assert code == 0, err_b
    finally:
        mp.undo()
    run_b = json.loads(out_b)["run_id"]
    head = re.search(r"^run (\S+) ", out_a, flags=re.M)
    assert head is not None, out_a
    run_a = head.group(1)
    return db, run_a, run_b, out_a, err_a


@pytest.fixture
def db_env(two_runs: tuple[Path, str, str, str, str], cli_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORBENCH_DB", str(two_runs[0]))
    return two_runs[0]


def test_run_prints_its_table_to_stdout_within_100_columns(two_runs: tuple[Path, str, str, str, str]) -> None:
    _, run_a, _, out, err = two_runs
    lines = out.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= 100, out
    assert lines[0].startswith(f"run {run_a} (finished)") and "SIMULATED" in lines[0]
    header = lines[1]
    for key in ("model [provider]", "n", "ok", "errors", "TTFT p50 ms", "e2e p50 ms", "cost", "$/1k req"):
        assert key in header, header
    body = lines[3:]
    firsts = [line.split()[0] for line in body]
    assert len(body) == 4 and firsts[-1] == "TOTAL" and all("[default]" in line for line in body[:3])
    assert firsts[0].startswith("openai/") and firsts[2].startswith("mistralai/")
    assert all(re.search(r"\$\d", line) for line in body)  # money carries its unit
    assert all(" 0.0 %" in line for line in body)  # the error rate as a percentage
    assert not LONG_DECIMAL.search(out)
    # plan, progress and notes stay on stderr; the note says what the narrow table hid
    assert "progress:" in err and "progress:" not in out and "estimated worst case" not in out
    assert "req/s" in err and "columns hidden" in err and "--wide shows them" in err


def test_run_json_keeps_stdout_pure_json(two_runs: tuple[Path, str, str, str, str], db_env: Path) -> None:
    _, _, run_b, _, _ = two_runs
    code, out, _ = invoke("show", run_b, "--json")
    assert code == 0 and json.loads(out)[0]["run_id"] == run_b


def test_show_wide_shows_every_column(db_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    code, narrow, err = invoke("show")
    assert code == 0 and "TTFT p99" not in narrow and "columns hidden" in err
    code, wide, err = invoke("show", "--wide")
    assert code == 0 and "columns hidden" not in err
    for header in ("TTFT p90", "TTFT p99", "TPOT ms", "tok/s", "e2e p95 ms", "in tok", "out tok", "$/req",
                   "billed-list", "retried", "429s"):
        assert header in wide
    assert max(len(line) for line in wide.splitlines()) > 100
    assert "mistralai/mistral-small-3.2-24b-instruct [default]" in wide  # nothing shortened


def test_a_narrow_terminal_keeps_the_key_columns(db_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = invoke("show")
    assert code == 0 and max(len(line) for line in out.splitlines()[1:]) <= 60
    assert "TTFT p50 ms" in out and "[default]" in out and "TOTAL" in out


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _nl(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("args", [["runs"], ["show"], ["compare", "RUN_A", "RUN_B"],
                                  ["models", "--sandbox"], ["endpoints", "openai/gpt-4o-mini", "--sandbox"]],
                         ids=lambda a: a[0])
def test_csv_and_nl_carry_what_json_carries(args: list[str], two_runs: tuple[Path, str, str, str, str],
                                            db_env: Path) -> None:
    """The three machine formats of every listing agree field by field, with exact values."""
    args = [two_runs[1] if a == "RUN_A" else two_runs[2] if a == "RUN_B" else a for a in args]
    outs = {}
    for fmt in ("--json", "--csv", "--nl"):
        code, outs[fmt], err = invoke(*args, fmt)
        assert code == 0, err
    as_json, as_nl, as_csv = json.loads(outs["--json"]), _nl(outs["--nl"]), _csv(outs["--csv"])
    assert as_json and as_nl == as_json and len(as_csv) == len(as_json)
    assert list(as_csv[0]) == list(as_json[0])  # same fields, same order
    for j, c in zip(as_json, as_csv):
        for key, value in j.items():
            if value is None:
                assert c[key] == ""
            elif isinstance(value, bool):
                assert c[key] == str(value)
            elif isinstance(value, (int, float)):
                assert float(c[key]) == value, key  # not rounded
            else:
                assert isinstance(value, str)
                if re.fullmatch(r"-?\d+(\.\d+)?(E-\d+)?", value):
                    assert Decimal(c[key]) == Decimal(value), key  # money: exact decimal strings
                else:
                    assert c[key] == value, key


def test_runs_csv_money_is_exact(db_env: Path) -> None:
    _, out, _ = invoke("runs", "--csv")
    cost = Decimal(_csv(out)[0]["cost_usd"])
    _, table, _ = invoke("runs", "--wide")
    assert cost > 0 and len(str(cost)) > 7  # the exact sum, not "$0.0011"
    assert usd(cost) in table


def test_two_output_formats_are_refused_in_one_line(db_env: Path) -> None:
    code, _, err = invoke("runs", "--json", "--csv")
    assert code == 2 and "choose one output format, not --json and --csv" in err


def test_models_keeps_its_json_and_csv_flags() -> None:
    code, out, _ = invoke("models", "--sandbox", "--csv", "--search", "gpt-4o-mini")
    rows = _csv(out)
    assert code == 0 and rows[0]["id"] == "openai/gpt-4o-mini"
    assert rows[0]["prompt_usd_per_token"] == "0.00000015"  # per token, exact, as the API sends it
    code, out, _ = invoke("models", "--sandbox", "--search", "gpt-4o-mini")
    assert "$0.15" in out and "$0.60" in out  # the table: USD per 1M tokens with the unit


def test_money_is_rounded_with_its_unit_and_rates_are_percentages() -> None:
    assert usd(Decimal("0.00007519895833333333333333333333")) == "$0.000075"
    assert usd(Decimal("1.2345")) == "$1.23" and usd(Decimal("1234.5")) == "$1,234.50"
    assert usd(Decimal("0.5")) == "$0.50" and usd(Decimal(0)) == "$0" and usd(None) == ""
    assert usd(Decimal("-0.0000089")) == "-$0.0000089"
    assert rate(0.02) == "2.0 %" and rate(1) == "100.0 %" and rate(None) == ""


def test_fit_table_drops_the_least_important_columns_first() -> None:
    rows = [{"name": "openai/gpt-4o-mini [default]", "a": 1, "b": 2, "c": 3}]
    cols = [Column("name", priority=0, min_width=12), Column("a", "aaaa", priority=1),
            Column("b", "bbbb", priority=9), Column("c", "cccc", priority=2)]
    text, hidden = fit_table(rows, cols, 42)
    assert hidden == ["bbbb"] and text.splitlines()[0].split() == ["name", "aaaa", "cccc"]
    assert max(len(line) for line in text.splitlines()) <= 42
    text, hidden = fit_table(rows, cols, 30)  # key columns shorten the name, keeping its provider
    assert hidden == ["bbbb"] and "…" in text and "[default]" in text
    assert fit_table(rows, cols, None)[1] == []
    assert shorten("mistralai/mistral-small-3.2-24b-instruct [default]", 30) == "mistralai…b-instruct [default]"
    assert hidden_note(["x", "y"]) == "note: 2 columns hidden to fit the terminal (x, y); --wide shows them"


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_off_a_terminal_prints_at_most_every_10_seconds() -> None:
    stream, clock = io.StringIO(), _Clock()
    printer = ProgressPrinter(stream, clock=clock)
    for second in range(0, 31):  # 300 updates over 30 s, then the final one twice
        for _ in range(10):
            clock.t = float(second)
            printer(Progress(total=100, done=min(99, second * 3), in_flight=4))
    clock.t = 31.0
    printer(Progress(total=100, done=100))
    printer(Progress(total=100, done=100))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5  # t = 0, 10, 20, 30, and the final line once
    assert lines[2].startswith("progress: 60/100 done") and "3.0 req/s" in lines[2] and "ETA 0:13" in lines[2]
    assert "took 0:31" in lines[-1] and "100/100" in lines[-1]


def test_progress_on_a_terminal_redraws_in_place() -> None:
    stream, clock = _Tty(), _Clock()
    printer = ProgressPrinter(stream, clock=clock)
    for i in range(5):
        clock.t = i * 0.5
        printer(Progress(total=4, done=min(i, 4)))
    text = stream.getvalue()
    assert text.count("\r") == 5 and text.count("\n") == 1 and text.endswith("\n")
    assert "\x1b[K" in text and "req/s" in text and "ETA" in text

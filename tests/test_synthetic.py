"""A suite's ``synthetic:`` prompts: sized in the target's own tokens by two probes, unique, seeded.

Real servers on 127.0.0.1: the sandbox (which counts ~4 characters a token) and a small
OpenAI-compatible server here whose "tokenizer" splits words longer than five letters (so the
fit has a second, different counter to hit); real DuckDB files; a real ``python -m bench run``
process killed with SIGKILL for the resume test.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.errors import SuiteError
from bench.results.summary import run_summary
from bench.run.wordlist import WORDS
from bench.sandbox import start_sandbox
from bench.store.store import Store
from bench.suites.parse import load_suite
from tests._openai_compat import OpenAICompatServer
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"short-in": 100, "long-in": 1000}
OUTPUT = {"short-in": 12, "long-in": 20}
MODELS = ("openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct")


def write_suite(tmp: Path, head: str, body: str, name: str = "syn.yaml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(head) + textwrap.dedent(body), encoding="utf-8")
    return path


SYNTHETIC = """\
    synthetic:
      - id: short-in
        prompt_tokens: 100
        output_tokens: 12
        count: 5
      - id: long-in
        prompt_tokens: 1000
        output_tokens: 20
        count: 5
"""


def user_text(body: dict[str, Any]) -> str:
    return "".join(m["content"] for m in body["messages"] if m["role"] == "user")


class Recorder:
    """The sandbox's ``answers`` hook: sees every chat body, changes no answer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.bodies.append(json.loads(json.dumps(body)))


def sandbox_run(tmp: Path, recorder: Recorder, *flags: str, seed: int = 0, body: str = SYNTHETIC,
                time_scale: float = 0) -> str:
    head = f"name: syn\nmodels: [{', '.join(MODELS)}]\nseed: {seed}\n"
    suite = write_suite(tmp, head, body, name=f"syn-{seed}.yaml")
    with start_sandbox(time_scale=time_scale, answers={"*": recorder}) as sb:
        code, out, err = invoke("run", str(suite), "--base-url", sb.base_url, "--json", *flags)
    assert code == 0, err
    return str(json.loads(out)["run_id"])


@pytest.fixture(scope="module")
def on_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Recorder]]:
    """One run of both sizes on two sandbox models: (database, run id, what the server saw)."""
    tmp = tmp_path_factory.mktemp("sandbox")
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("OPENROUTER_", "ORBENCH_")):
                mp.delenv(k)
        mp.setenv("ORBENCH_DB", str(tmp / "orbench.duckdb"))
        recorder = Recorder()
        run_id = sandbox_run(tmp, recorder, time_scale=0.05)  # timed: a 1-token probe ends sooner
        yield tmp / "orbench.duckdb", run_id, recorder


def rows(db: Path, run_id: str) -> list[dict[str, Any]]:
    return Store(db).requests_frame(run_id).to_dicts()


def relative_errors(db: Path, run_id: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in rows(db, run_id):
        if not r["is_probe"]:
            asked = SIZES[r["case_id"]]
            out.setdefault(r["case_id"], []).append((r["prompt_tokens"] - asked) / asked)
    return out


# ----------------------------------------------------------------- sizes
def test_synthetic_prompts_land_within_3_percent_on_the_sandbox(on_sandbox: tuple[Path, str, Recorder]) -> None:
    db, run_id, _ = on_sandbox
    measured = [r for r in rows(db, run_id) if not r["is_probe"]]
    assert len(measured) == 2 * 2 * 5 and all(r["outcome"] == "ok" for r in measured)
    assert all(r["token_source"] == "usage" and r["completion_tokens"] == OUTPUT[r["case_id"]] for r in measured)
    errors = relative_errors(db, run_id)
    assert set(errors) == set(SIZES) and all(len(e) == 10 for e in errors.values())
    worst = {case: max(abs(e) for e in errs) for case, errs in errors.items()}
    assert all(w <= 0.03 for w in worst.values()), worst


def test_openrouter_requests_carry_max_tokens_and_no_generic_knobs(on_sandbox: tuple[Path, str, Recorder]) -> None:
    _, _, recorder = on_sandbox
    measured = [b for b in recorder.bodies if b["max_tokens"] != 1]
    assert len(measured) == 20 and {b["max_tokens"] for b in measured} == {12, 20}
    assert not any("ignore_eos" in b or "min_tokens" in b for b in recorder.bodies)


class TokenServer(ThreadingHTTPServer):
    """A vLLM-shaped server whose tokenizer splits long words: ceil(letters / 5) tokens a word,
    one per full stop, plus 11 for its chat template. It keeps every body it was sent."""

    daemon_threads = True
    block_on_close = False
    TEMPLATE_TOKENS = 11

    def __init__(self, token_gap_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []
        self.completed: list[str] = []  # prompts answered to the end
        self.token_gap_s = token_gap_s

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    @classmethod
    def count(cls, text: str) -> int:
        n = cls.TEMPLATE_TOKENS
        for piece in text.split():
            word = piece.rstrip(".")
            n += max(1, math.ceil(len(word) / 5)) + len(piece) - len(word)
        return n

    def __enter__(self) -> TokenServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TokenServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, payload: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802
        data = json.dumps({"object": "list", "data": [{"id": "tok/wordpiece", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        with self.server.lock:
            self.server.bodies.append(body)
        prompt, n = self.server.count(user_text(body)), int(body["max_tokens"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": body["model"]}
        for i in range(n):
            time.sleep(self.server.token_gap_s)
            self._send(b"data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]})
                       .encode() + b"\n\n")
        usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
        for event in ({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
                      {**base, "choices": [], "usage": usage}):
            self._send(b"data: " + json.dumps(event).encode() + b"\n\n")
        self._send(b"data: [DONE]\n\n")
        self._send(b"")
        with self.server.lock:
            self.server.completed.append(user_text(body))


def generic_suite(tmp: Path, base_url: str, body: str = SYNTHETIC, name: str = "gen.yaml") -> Path:
    head = f"""\
        name: gen
        models: [srv/tok/wordpiece]
        endpoints:
          srv: {{base_url: "{base_url}", prices: {{prompt: 1, completion: 2}}}}
    """
    return write_suite(tmp, head, body, name=name)


def test_a_generic_server_gets_its_own_sizes_and_ignore_eos(cli_db: Path, tmp_path: Path) -> None:
    with TokenServer() as server:
        code, out, err = invoke("run", str(generic_suite(tmp_path, server.base_url)), "--json")
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    errors = relative_errors(cli_db, run_id)
    worst = {case: max(abs(e) for e in errs) for case, errs in errors.items()}
    assert set(worst) == set(SIZES) and all(w <= 0.03 for w in worst.values()), worst
    probes = [b for b in server.bodies if b["max_tokens"] == 1]
    measured = [b for b in server.bodies if b["max_tokens"] != 1]
    assert len(probes) == 2 and not any("ignore_eos" in b for b in probes)
    assert len(measured) == 10
    assert all(b["ignore_eos"] is True and b["min_tokens"] == b["max_tokens"] for b in measured)


# ----------------------------------------------------------------- the text
def test_every_prompt_is_unique_from_its_first_words_and_made_of_real_words(
        on_sandbox: tuple[Path, str, Recorder]) -> None:
    _, _, recorder = on_sandbox
    texts = [user_text(b) for b in recorder.bodies]
    assert len(texts) == 4 + 20 and len(set(texts)) == len(texts)
    firsts = [t.split()[0] for t in texts]
    assert len(set(firsts)) == len(texts), "two prompts start with the same word"
    known = set(WORDS)
    for text in texts:
        words = [w.rstrip(".").lower() for w in text.split()]
        assert set(words) <= known
        assert text[0].isupper() and text.endswith(".")
    longest = max(texts, key=len).split()
    assert len({w.rstrip(".").lower() for w in longest}) > len(longest) / 3, "a repeated token, not text"


def test_the_same_seed_gives_the_same_prompts_and_another_seed_others(cli_db: Path, tmp_path: Path) -> None:
    small = """\
        synthetic:
          - {id: short-in, prompt_tokens: 100, output_tokens: 4, count: 3}
    """
    texts = []
    for seed in (7, 7, 8):
        recorder = Recorder()
        sandbox_run(tmp_path, recorder, seed=seed, body=small)
        texts.append(sorted(user_text(b) for b in recorder.bodies))
    assert texts[0] == texts[1] and len(texts[0]) == 2 * 2 + 2 * 3
    assert not set(texts[0]) & set(texts[2])


# ----------------------------------------------------------------- probes, money, figures
def test_probes_are_stored_flagged_as_warm_ups_and_counted_in_money(on_sandbox: tuple[Path, str, Recorder]) -> None:
    db, run_id, _ = on_sandbox
    probes = [r for r in rows(db, run_id) if r["is_probe"]]
    assert len(probes) == 2 * len(MODELS)
    assert all(r["is_warmup"] and r["repeat"] == -1 and r["outcome"] == "ok" for r in probes)
    assert all(r["completion_tokens"] == 1 and r["cost_usd"] > 0 for r in probes)
    assert {r["case_id"] for r in probes} == {"probe:short", "probe:long"}
    store = Store(db)
    all_cost = sum(r["cost_usd"] for r in rows(db, run_id))
    assert store.run_spend(run_id) == all_cost  # the run's money includes the probes
    summary = store.query("SELECT warmups, warmup_cost_usd FROM runs_summary WHERE run_id = $r", {"r": run_id})
    assert summary.to_dicts() == [{"warmups": 4, "warmup_cost_usd": sum(r["cost_usd"] for r in probes)}]
    current = store.query("SELECT count(*) FILTER (WHERE is_probe) AS n FROM requests_current WHERE run_id = $r",
                          {"r": run_id})
    assert current.item() == 4


def test_probes_stay_out_of_the_summary_figures(on_sandbox: tuple[Path, str, Recorder]) -> None:
    db, run_id, _ = on_sandbox
    summary = {r["model"]: r for r in run_summary(Store(db), run_id)}  # the one summary show prints
    for model in MODELS:
        mine = [r for r in rows(db, run_id) if r["model"] == model]
        measured = [r for r in mine if not r["is_probe"]]
        assert summary[model]["n"] == len(measured) == 10
        assert summary[model]["e2e_p50_ms"] == pytest.approx(statistics.median(r["e2e_ms"] for r in measured))
        for rows_used, same in ((measured, True), (mine, False)):
            p90 = quantile([r["ttft_ms"] for r in rows_used], 0.9)
            assert (summary[model]["ttft_p90_ms"] == pytest.approx(p90)) is same
        assert summary[model]["completion_tokens"] == 5 * 12 + 5 * 20  # no probe's token


def quantile(values: list[float], q: float) -> float:
    """DuckDB's quantile_cont: linear between the order statistics around q x (n - 1)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def test_the_budget_covers_the_probes(cli_db: Path, tmp_path: Path) -> None:
    """A budget that fits the probes and a few requests: the probes go first and are booked."""
    recorder = Recorder()
    head = f"name: syn\nmodels: [{MODELS[0]}]\n"
    suite = write_suite(tmp_path, head, SYNTHETIC)
    with start_sandbox(time_scale=0, answers={"*": recorder}) as sb:
        code, _, err = invoke("run", str(suite), "--base-url", sb.base_url, "--dry-run")
        estimate = Decimal(err.split("at list price): $")[1].split()[0])
        budget = estimate / 12  # the planned bound is ~4x what built prompts reserve
        code, out, err = invoke("run", str(suite), "--base-url", sb.base_url, "--json",
                                "--budget", str(budget), "--allow-partial")
        billed = sb.state.spend_usd
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    by_outcome: dict[str, int] = {}
    for r in rows(cli_db, run_id):
        by_outcome[r["outcome"]] = by_outcome.get(r["outcome"], 0) + 1
        if r["is_probe"]:
            assert r["outcome"] == "ok" and r["spend_usd"] > 0
    assert by_outcome.get("budget_skipped", 0) > 0 and by_outcome.get("ok", 0) > 2, by_outcome
    assert billed <= budget and Store(cli_db).run_spend(run_id) <= budget
    assert Store(cli_db).run_spend(run_id) >= billed


def test_a_target_its_server_cannot_calibrate_skips_its_synthetic_requests(cli_db: Path, tmp_path: Path) -> None:
    """That server counts 7 prompt tokens whatever it is sent: no line fits, nothing is sized."""
    with OpenAICompatServer() as server:
        head = f"""\
            name: flat
            models: [srv/Qwen/Qwen2.5-0.5B-Instruct]
            endpoints: {{srv: {{base_url: "{server.base_url}"}}}}
        """
        suite = write_suite(tmp_path, head, SYNTHETIC)
        code, out, err = invoke("run", str(suite), "--json")
        sent = [r["body"] for r in server.requests if r["method"] == "POST"]
    assert code == 0, err
    run_rows = rows(cli_db, json.loads(out)["run_id"])
    assert [r["outcome"] for r in run_rows if r["is_probe"]] == ["ok", "ok"]
    skipped = [r for r in run_rows if not r["is_probe"]]
    assert len(skipped) == 10 and {r["outcome"] for r in skipped} == {"skipped"}
    assert all("no calibration" in r["error"] and "7 tokens" in r["error"] for r in skipped)
    assert len(sent) == 2, "only the probes were sent"


# ----------------------------------------------------------------- resume
def spawn(args: list[str], db: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    env.update(ORBENCH_DB=str(db), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "bench", "run", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(what: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the kill point")
        time.sleep(0.01)


def test_a_killed_run_resumes_without_resending_probes_or_answers_and_with_the_same_prompts(
        cli_db: Path, tmp_path: Path) -> None:
    body = """\
        synthetic:
          - {id: short-in, prompt_tokens: 100, output_tokens: 20, count: 6}
          - {id: long-in, prompt_tokens: 1000, output_tokens: 20, count: 6}
    """
    with TokenServer() as clean:  # the prompts an uninterrupted run sends
        reference = tmp_path / "reference.duckdb"
        code, _, err = invoke("run", str(generic_suite(tmp_path, clean.base_url, body)), "--db", str(reference))
        assert code == 0, err
        expected = sorted(user_text(b) for b in clean.bodies)
    with TokenServer(token_gap_s=0.05) as server:
        suite = generic_suite(tmp_path, server.base_url, body, name="killed.yaml")
        proc = spawn([str(suite), "--concurrency", "2"], cli_db)
        wait_for(lambda: len(server.completed) >= 2 + 3)  # the probes and three answers
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.3)  # what was on the wire reaches the server
        first_session = len(server.bodies)
        run_id = Store(cli_db).resolve_run("latest")
        settled = Store(cli_db).finished_keys(run_id)  # what orbench holds a result for (the journal)
        code, _, err = invoke("run", "--resume", "latest")
        assert code == 0, err
        resent = [user_text(b) for b in server.bodies[first_session:]]
        probes_sent = sum(1 for b in server.bodies if b["max_tokens"] == 1)
        sent = [user_text(b) for b in server.bodies]
    run_rows = rows(cli_db, run_id)
    assert len(run_rows) == 2 + 12 and all(r["outcome"] == "ok" for r in run_rows)
    probe_idx = {r["request_idx"] for r in run_rows if r["is_probe"]}
    assert probe_idx <= settled and probes_sent == 2, "a settled probe was sent again"
    assert 5 <= len(settled) < 14
    assert len(resent) == 14 - len(settled), "a settled request was sent again, or an unsettled one twice"
    assert sorted(set(sent)) == expected, "the resume built other prompts than an uninterrupted run"
    errors = relative_errors(cli_db, run_id)
    assert all(abs(e) <= 0.03 for errs in errors.values() for e in errs), errors


# ----------------------------------------------------------------- suite errors and what is shown
@pytest.mark.parametrize("body, where, problem", [
    ("- {id: a, prompt_tokens: 0, output_tokens: 5}", "synthetic[0].prompt_tokens (line 5)",
     "expected a positive integer, got 0"),
    ("- {id: a, prompt_tokens: 10, output_tokens: 5, count: 0}", "synthetic[0].count (line 5)",
     "expected a positive integer, got 0"),
    ("- {prompt_tokens: 10, output_tokens: 5}", "synthetic[0] (line 5)", "missing required key 'id'"),
    ("- {id: a, prompt_tokens: 10}", "synthetic[0] (line 5)", "missing required key 'output_tokens'"),
    ("- {id: hello, prompt_tokens: 10, output_tokens: 5}", "synthetic[0].id (line 5)",
     "duplicate id 'hello' (also cases[0])"),
    ("- {id: a, prompt_tokens: 10, output_tokens: 5}\n  - {id: a, prompt_tokens: 20, output_tokens: 5}",
     "synthetic[1].id (line 6)", "duplicate id 'a' (also synthetic[0])"),
    ("- {id: a, prompt_tokens: 10, output_tokens: 5, size: 3}", "synthetic[0].size (line 5)",
     "unknown key 'size'"),
    ("- {id: a, prompt_tokens: 3000000, output_tokens: 5}", "synthetic[0].prompt_tokens (line 5)",
     "expected at most 2,000,000"),
])
def test_bad_synthetic_entries_are_one_line_naming_the_file_and_field(
        tmp_path: Path, body: str, where: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nmodels: [openai/gpt-4o-mini]\ncases: [{id: hello, prompt: hi}]\n"
                    f"synthetic:\n  {body}\n", encoding="utf-8")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: {where}: {problem}"), message


def test_validate_and_dry_run_show_the_synthetic_cases_sized_at_run_time(cli_db: Path) -> None:
    example = ROOT / "bench" / "examples" / "suites" / "synthetic.yaml"
    code, out, err = invoke("suite", "validate", str(example))
    assert code == 0, err
    assert "synthetic 'short-in': 10 prompts of 100 tokens (sized at run time)" in out
    code, _, err = invoke("run", str(example), "--sandbox", "--dry-run")
    assert code == 0, err
    assert "synthetic 'long-in': 20 prompts over 2 target(s), 1000 prompt tokens each (sized at run time)" in err
    assert "4 calibration probes" in err and "dry run: nothing was sent" in err
    assert not cli_db.exists()

"""Conversations and prompt caching: exact costs per cache behaviour, history, switches, resume.

Real servers on 127.0.0.1 (the sandbox, with its per-family prompt caches), real DuckDB files,
the CLI end to end. The sandbox counts a prompt as 4 tokens per message + ceil(characters / 4),
so every expected cost below is written out by hand from the texts' lengths.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench.errors import SuiteError
from bench.results import conversations
from bench.results.summary import run_summary
from bench.sandbox import start_sandbox
from bench.store.store import Store
from bench.suites.parse import load_suite, parse_suite
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "policy " * 571 + "abc"  # 3,997 + 3 = 4,000 characters: 1,000 tokens (+4 for the message)
USERS = [f"Question {k}: " + "q" * (400 - len(f"Question {k}: ")) for k in (1, 2, 3)]  # 400 chars: 100 tokens
ANSWER = " abcdefg" * 20  # 20 output tokens (the sandbox splits words), 160 characters: 40 prompt tokens later
# Prompt tokens of turn k (2k messages: system, k users, k-1 answers):
#   turn 1: 2 x 4 + (4000 + 400) / 4             = 8 + 1100  = 1108
#   turn 2: 4 x 4 + (4000 + 800 + 160) / 4       = 16 + 1240 = 1256
#   turn 3: 6 x 4 + (4000 + 1200 + 320) / 4      = 24 + 1380 = 1404
PROMPTS = (1108, 1256, 1404)


def suite_text(models: str | list[str], variant: dict[str, Any] | None, cache: str, *, repeats: int = 1) -> str:
    conv = {"id": "chat", "system": SYSTEM, "turns": USERS}
    providers = {"v": variant}
    return textwrap.dedent(f"""\
        name: conv
        models: {json.dumps([models] if isinstance(models, str) else models)}
        providers: {json.dumps(providers)}
        defaults: {{max_tokens: 20, temperature: 0}}
        cache: {cache}
        repeats: {repeats}
        conversations: [{json.dumps(conv)}]
        """)


class Recorder:
    """The sandbox's answers hook: keeps every chat body, answers ``ANSWER``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> str:
        with self.lock:
            self.bodies.append(json.loads(json.dumps(body)))
        return ANSWER


class UniqueAnswers(Recorder):
    """Answers that differ per request, so a history shows which answer it carries."""

    def __call__(self, body: dict[str, Any]) -> str:
        super().__call__(body)
        with self.lock:
            return f" a{len(self.bodies):04d}" + " abcdefg" * 19


def run_conv(tmp: Path, text: str, *flags: str, recorder: Recorder | None = None,
             time_scale: float = 0.0) -> tuple[str, Recorder]:
    recorder = recorder or Recorder()
    suite = tmp / f"conv-{len(list(tmp.glob('conv-*.yaml')))}.yaml"
    suite.write_text(text, encoding="utf-8")
    with start_sandbox(time_scale=time_scale, answers={"*": recorder}) as sb:
        code, out, err = invoke("run", str(suite), "--base-url", sb.base_url, "--json", *flags)
    assert code == 0, err
    return str(json.loads(out)["run_id"]), recorder


def turns(db: Path, run_id: str, model: str | None = None) -> list[dict[str, Any]]:
    rows = Store(db).requests_frame(run_id).to_dicts()
    return sorted((r for r in rows if r["turn"] is not None and model in (None, r["model"])),
                  key=lambda r: (r["conversation_id"], r["turn"]))


def conv_summary(db: Path, run_id: str, model: str | None = None) -> dict[str, Any]:
    [row] = [r for r in conversations.summarize(conversations.turn_rows(Store(db), [run_id]))
             if model in (None, r["model"])]
    return row


OPENAI, ANTHROPIC, LLAMA = "openai/gpt-4o-mini", "anthropic/claude-haiku-4.5", "meta-llama/llama-3.3-70b-instruct"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two runs in one database, each model pinned to one provider: ``explicit`` (cache: explicit) with
    OpenAI's auto cache, Anthropic's breakpoints and a provider with no cache; ``auto`` (cache: auto)
    with Anthropic, which then gets no breakpoint."""
    tmp = tmp_path_factory.mktemp("conv")
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("OPENROUTER_", "ORBENCH_")):
                mp.delenv(k)
        mp.setenv("ORBENCH_DB", str(tmp / "orbench.duckdb"))
        pin = {"only": ["openai", "anthropic", "deepinfra/turbo"]}  # one provider per model
        explicit, rec_explicit = run_conv(tmp, suite_text([OPENAI, ANTHROPIC, LLAMA], pin, "explicit"))
        auto, rec_auto = run_conv(tmp, suite_text(ANTHROPIC, pin, "auto"))
        yield {"db": tmp / "orbench.duckdb", "tmp": tmp, "explicit": explicit, "auto": auto,
               "bodies": rec_explicit.bodies, "auto_bodies": rec_auto.bodies}


# ----------------------------------------------------------------- exact costs, one per cache behaviour
def test_auto_cache_openai_family_costs_to_the_microdollar(shared: dict[str, Any]) -> None:
    """openai/gpt-4o-mini on OpenAI caches every prompt of >= 1,024 tokens by itself (breakpoints or not)."""
    db, run_id = shared["db"], shared["explicit"]
    rows = turns(db, run_id, OPENAI)
    # turn 1 caches its prompt (1108); turn 2 reads it; turn 3 reads turn 2's whole prompt (1256).
    assert [r["prompt_tokens"] for r in rows] == list(PROMPTS)
    assert [r["cached_tokens"] for r in rows] == [0, 1108, 1256]
    assert [r["cache_write_tokens"] for r in rows] == [0, 0, 0]
    # prompt $0.15/M, cache read $0.075/M, completion $0.60/M; 20 output tokens a turn = $0.000012
    # turn 1: 1108 x 0.15e-6                          + 0.000012 = 0.0001662 + 0.000012 = 0.0001782
    # turn 2: (1256-1108) x 0.15e-6 + 1108 x 0.075e-6 + 0.000012 = 0.0000222 + 0.0000831 + 0.000012 = 0.0001173
    # turn 3: (1404-1256) x 0.15e-6 + 1256 x 0.075e-6 + 0.000012 = 0.0000222 + 0.0000942 + 0.000012 = 0.0001284
    assert [r["cost_usd"] for r in rows] == [Decimal("0.0001782"), Decimal("0.0001173"), Decimal("0.0001284")]
    s = conv_summary(db, run_id, OPENAI)
    assert s["cost_per_conversation_usd"] == Decimal("0.0004239")  # 0.0001782 + 0.0001173 + 0.0001284
    # baseline: (1108 + 1256 + 1404) x 0.15e-6 + 60 x 0.6e-6 = 0.0005652 + 0.000036 = 0.0006012
    assert s["baseline_per_conversation_usd"] == Decimal("0.0006012")
    assert s["cache_discount_pct"] == pytest.approx(100 * (1 - 0.0004239 / 0.0006012))  # 29.49 %
    assert s["cache_hit_rate"] == pytest.approx(2 / 3) and s["switches"] == 0


def test_explicit_cache_anthropic_costs_to_the_microdollar(shared: dict[str, Any]) -> None:
    """Anthropic caches only at cache_control breakpoints and charges a write premium (cache: explicit)."""
    db, run_id = shared["db"], shared["explicit"]
    rows = turns(db, run_id, ANTHROPIC)
    sent = [b for b in shared["bodies"] if b["model"] == ANTHROPIC and len(b["messages"]) > 1]
    assert len(sent) == 3
    assert all(b["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"} for b in sent)
    assert all(b["messages"][-1]["content"][0]["cache_control"] == {"type": "ephemeral"} for b in sent)
    assert not any("cache_control" in json.dumps(b) for b in shared["bodies"] if b["model"] != ANTHROPIC)
    # Each turn writes up to its last breakpoint (its whole prompt) and reads what the turn before wrote.
    assert [r["prompt_tokens"] for r in rows] == list(PROMPTS)
    assert [r["cached_tokens"] for r in rows] == [0, 1108, 1256]
    assert [r["cache_write_tokens"] for r in rows] == [1108, 148, 148]
    # prompt $1/M, cache write $1.25/M, cache read $0.10/M, completion $5/M: 20 tokens = $0.0001
    # turn 1: 1108 x 1.25e-6                    + 0.0001 = 0.001385 + 0.0001             = 0.001485
    # turn 2: 148 x 1.25e-6 + 1108 x 0.1e-6     + 0.0001 = 0.000185 + 0.0001108 + 0.0001 = 0.0003958
    # turn 3: 148 x 1.25e-6 + 1256 x 0.1e-6     + 0.0001 = 0.000185 + 0.0001256 + 0.0001 = 0.0004106
    assert [r["cost_usd"] for r in rows] == [Decimal("0.001485"), Decimal("0.0003958"), Decimal("0.0004106")]
    s = conv_summary(db, run_id, ANTHROPIC)
    assert s["cost_per_conversation_usd"] == Decimal("0.0022914")
    # baseline: 3768 x 1e-6 + 60 x 5e-6 = 0.003768 + 0.0003 = 0.004068
    assert s["baseline_per_conversation_usd"] == Decimal("0.004068")
    assert s["cache_discount_pct"] == pytest.approx(100 * (1 - 0.0022914 / 0.004068))  # 43.67 %


def test_anthropic_without_breakpoints_caches_nothing(shared: dict[str, Any]) -> None:
    """cache: auto sends no breakpoints, so Anthropic bills every turn in full: the baseline itself."""
    db, run_id = shared["db"], shared["auto"]
    assert not any("cache_control" in json.dumps(b) for b in shared["auto_bodies"])
    rows = turns(db, run_id)
    assert [r["cached_tokens"] for r in rows] == [0, 0, 0] and [r["cache_write_tokens"] for r in rows] == [0, 0, 0]
    s = conv_summary(db, run_id)
    assert s["cost_per_conversation_usd"] == s["baseline_per_conversation_usd"] == Decimal("0.004068")
    assert s["cache_discount_pct"] == 0 and s["cache_hit_rate"] == 0


def test_provider_without_cache_prices_never_caches(shared: dict[str, Any]) -> None:
    """DeepInfra Turbo lists no input_cache_read for Llama 3.3 70B: no caching, whatever is asked."""
    db, run_id = shared["db"], shared["explicit"]
    rows = turns(db, run_id, LLAMA)
    assert [r["cached_tokens"] for r in rows] == [0, 0, 0]
    # prompt $0.10/M, completion $0.32/M: 20 tokens = $0.0000064 a turn
    # 1108 x 0.1e-6 + 1256 x 0.1e-6 + 1404 x 0.1e-6 + 3 x 0.0000064 = 0.0003768 + 0.0000192 = 0.000396
    s = conv_summary(db, run_id, LLAMA)
    assert s["cost_per_conversation_usd"] == s["baseline_per_conversation_usd"] == Decimal("0.000396")
    assert s["cache_discount_pct"] == 0


# ----------------------------------------------------------------- history, switches, the surfaces
def test_each_turn_carries_the_answers_before_it(shared: dict[str, Any]) -> None:
    sent = sorted((b for b in shared["bodies"] if b["model"] == OPENAI and len(b["messages"]) > 1),
                  key=lambda b: len(b["messages"]))
    assert [[m["role"] for m in b["messages"]] for b in sent] == [
        ["system", "user"], ["system", "user", "assistant", "user"],
        ["system", "user", "assistant", "user", "assistant", "user"]]
    last = sent[-1]["messages"]
    assert [m["content"] for m in last] == [SYSTEM, USERS[0], ANSWER, USERS[1], ANSWER, USERS[2]]


def test_default_routing_switches_providers_and_the_switches_are_counted(cli_db: Path, tmp_path: Path) -> None:
    """gpt-4o-mini has two providers at one price: default routing draws one per turn, and each has its
    own cache; a pinned variant keeps every turn on one provider."""
    text = suite_text("openai/gpt-4o-mini", None, "auto", repeats=8)
    run_id, _ = run_conv(tmp_path, text, recorder=UniqueAnswers())  # histories differ from turn 2 on
    rows = turns(cli_db, run_id)
    by_conv: dict[str, list[str]] = {}
    for r in rows:
        by_conv.setdefault(r["conversation_id"], []).append(r["provider"])
    expected = sum(a != b for p in by_conv.values() for a, b in zip(p, p[1:]))
    s = conv_summary(cli_db, run_id)
    assert s["conversations"] == 8 and expected > 0 and s["switches"] == expected
    assert s["conversations_switched"] == sum(any(a != b for a, b in zip(p, p[1:])) for p in by_conv.values())
    # On the same provider a turn reads the whole prompt of the turn before it; after a switch it reads
    # at most the system prompt + first question another conversation left there (1108), never its history.
    for c in by_conv:
        p_rows = sorted((r for r in rows if r["conversation_id"] == c), key=lambda r: r["turn"])
        for before, after in zip(p_rows, p_rows[1:]):
            if before["provider"] != after["provider"]:
                assert after["cached_tokens"] <= PROMPTS[0]
            else:
                assert after["cached_tokens"] == before["prompt_tokens"]
    # What the switches cost: the mean billed cost of conversations with a switch, and of those without.
    cost = {c: sum((r["cost_usd"] for r in rows if r["conversation_id"] == c), Decimal(0)) for c in by_conv}
    switched = [cost[c] for c, p in by_conv.items() if any(a != b for a, b in zip(p, p[1:]))]
    unswitched = [cost[c] for c in by_conv if cost[c] not in switched or c not in
                  [k for k, p in by_conv.items() if any(a != b for a, b in zip(p, p[1:]))]]
    assert s["cost_per_conversation_switched_usd"] == sum(switched, Decimal(0)) / len(switched)
    if len(switched) < 8:
        assert s["cost_per_conversation_unswitched_usd"] == sum(unswitched, Decimal(0)) / len(unswitched)
    pinned, _ = run_conv(tmp_path, suite_text("openai/gpt-4o-mini", {"order": ["azure"], "allow_fallbacks": False},
                                              "auto", repeats=4))
    assert conv_summary(cli_db, pinned)["switches"] == 0


def test_show_decide_and_gates_carry_cost_per_conversation(shared: dict[str, Any]) -> None:
    db, run_id = str(shared["db"]), shared["explicit"]
    rows = {r["group"]: r for r in run_summary(Store(db), run_id)}
    assert rows[f"{OPENAI} [v]"]["cost_per_conversation_usd"] == Decimal("0.0004239")
    # TOTAL: the mean over the three models' conversations
    assert rows["TOTAL"]["cost_per_conversation_usd"] == (Decimal("0.0004239") + Decimal("0.0022914")
                                                          + Decimal("0.000396")) / 3
    code, out, _ = invoke("show", run_id, "--db", db)
    assert code == 0 and "$/conv" in out and "cache saved %" in out and "conversations by turn" in out
    code, out, _ = invoke("decide", run_id, "--db", db, "--max", "cost_per_conversation_usd=0.001", "--json")
    cand = {c["model"]: c for c in json.loads(out)["ranking"]}
    found = cand[OPENAI]["constraints"]["cost_per_conversation_usd"]
    assert found["value"] == pytest.approx(0.0004239)
    assert Decimal(cand[OPENAI]["cost_per_conversation_usd"]) == Decimal("0.0004239")
    assert code == 3 and found["verdict"] == "uncertain"  # one conversation: no interval yet
    gates = [g for g in conversations_gates(db, run_id)]
    assert gates == [(f"{OPENAI} [v]", False), (f"{ANTHROPIC} [v]", True), (f"{LLAMA} [v]", False),
                     ("TOTAL", True)]


def conversations_gates(db: str, run_id: str) -> list[tuple[str, bool]]:
    from bench.results import gates

    results = gates.evaluate([gates.parse_gate("cost_per_conversation_usd>0.001")],
                             run_summary(Store(db), run_id))
    return [(r.group, r.failed) for r in results]


def test_a_gate_on_cost_per_conversation_exits_3(cli_db: Path, tmp_path: Path) -> None:
    suite = tmp_path / "gate.yaml"
    suite.write_text(suite_text(OPENAI, {"only": ["openai"]}, "auto"), encoding="utf-8")
    with start_sandbox(time_scale=0, answers={"*": ANSWER}) as sb:
        code, _, err = invoke("run", str(suite), "--base-url", sb.base_url,
                              "--fail-on", "cost_per_conversation_usd>0.0004")
    assert code == 3 and "FAIL openai/gpt-4o-mini [v]: cost_per_conversation_usd = 0.0004239" in err


def test_a_failed_turn_stops_its_conversation_and_a_resume_sends_nothing_again(
        cli_db: Path, tmp_path: Path) -> None:
    """Every answer of the model fails inside its stream: turn 1 is recorded provider_error, turns 2 and 3
    are recorded skipped (never sent), and a resume sends neither the failed turn nor the others."""
    suite = tmp_path / "fail.yaml"
    suite.write_text(suite_text("openai/gpt-4o-mini", {"only": ["openai"]}, "auto"), encoding="utf-8")
    rec = Recorder()
    with start_sandbox(time_scale=0, answers={"*": rec}, faults={"openai/gpt-4o-mini": "stream_error"}) as sb:
        code, out, err = invoke("run", str(suite), "--base-url", sb.base_url, "--json", "--no-warmup")
        run_id = json.loads(out)["run_id"]
        sent_first = len(rec.bodies)
        code, _, err = invoke("run", "--resume", run_id, "--base-url", sb.base_url)
        assert code == 0, err
    rows = turns(cli_db, run_id)
    assert [(r["turn"], r["outcome"]) for r in rows] == [(1, "provider_error"), (2, "skipped"), (3, "skipped")]
    assert rows[1]["error"] == "not sent: turn 1 of the conversation ended provider_error"
    assert sent_first == 1 and len(rec.bodies) == 1, "a stopped conversation sent a turn"
    s = conv_summary(cli_db, run_id)
    assert s["conversations_stopped"] == 1 and s["conversations_complete"] == 0
    assert s["cost_per_conversation_usd"] is None


def test_the_worst_case_covers_every_turn_with_its_growing_history(tmp_path: Path) -> None:
    """Before any answer exists, turn k is priced with k-1 answers of max_tokens at 16 bytes a token."""
    from bench.api.ceiling import prompt_bound
    from bench.run import conversation
    from bench.run.plan import Target

    suite = parse_suite(suite_text("openai/gpt-4o-mini", None, "auto"), tmp_path / "s.yaml")
    plan: list[Any] = []
    target = Target("openai/gpt-4o-mini", "openrouter", "openai/gpt-4o-mini", "v")
    conversation.extend_plan(plan, [target], suite.conversations, (), cache="auto", seed=0, repeats=1,
                             generic=lambda t: False, warmup=False)
    bounds = [prompt_bound(conversation.bound_body(p)).tokens for p in plan]
    # bytes of the texts + 32 per message + 64 per request; each earlier answer at 20 x 16 = 320 bytes
    assert bounds == [4000 + 400 + 2 * 32 + 64,
                      4000 + 800 + 320 + 4 * 32 + 64,
                      4000 + 1200 + 640 + 6 * 32 + 64]
    assert all(b >= p for b, p in zip(bounds, PROMPTS))


# ----------------------------------------------------------------- suites
def test_dataset_conversations_replay_recorded_answers(cli_db: Path, tmp_path: Path) -> None:
    chats = tmp_path / "chats.jsonl"
    chats.write_text("\n".join(json.dumps({"messages": m}) for m in [
        [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello there"},
         {"from": "human", "value": "how are you?"}],
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a"},
         {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
         {"role": "assistant", "content": "d"}],
    ]) + "\n", encoding="utf-8")
    text = textwrap.dedent("""\
        name: ds
        models: [openai/gpt-4o-mini]
        defaults: {max_tokens: 20}
        conversations:
          - {dataset: chats.jsonl, turns_field: messages, replay: recorded}
        """)
    suite = tmp_path / "ds.yaml"
    suite.write_text(text, encoding="utf-8")
    loaded = load_suite(suite)
    assert [c.id for c in loaded.conversations] == ["chats:1", "chats:2"]
    assert loaded.conversations[1].system == "be brief" and loaded.conversations[1].recorded == ("b", "d")
    rec = Recorder()
    with start_sandbox(time_scale=0, answers={"*": rec}) as sb:
        code, _, err = invoke("run", str(suite), "--base-url", sb.base_url)
    assert code == 0, err
    second = [b["messages"] for b in rec.bodies if len(b["messages"]) == 4]
    assert [m["content"] for m in second[0]] == ["be brief", "a", "b", "c"]  # the recorded answer, not ANSWER
    first = [b["messages"] for b in rec.bodies if len(b["messages"]) == 3]
    assert [m["content"] for m in first[0]] == ["hi", "hello there", "how are you?"]


@pytest.mark.parametrize("body, problem", [
    ("conversations: [{id: a}]", "conversations[0] (line 3): missing required key 'turns'"),
    ("conversations: [{id: a, turns: []}]", "conversations[0].turns (line 3): expected at least one user turn"),
    ("conversations: [{id: a, turns: [hi], checks: [[], []]}]",
     "conversations[0].checks (line 3): expected one list of checks per turn (1), got 2"),
    ("conversations: [{id: a, turns: ['{who}']}]", "unknown placeholder {who}"),
    ("cache: always\nconversations: [{id: a, turns: [hi]}]",
     "cache (line 3): expected one of auto, explicit, off, got 'always'"),
    ("synthetic_conversations: [{id: s, system_tokens: 10, turns: 0, user_tokens: 5, output_tokens: 5}]",
     "synthetic_conversations[0].turns (line 3): expected a positive integer, got 0"),
    ("conversations: [{dataset: nope.jsonl}]", "conversations[0].dataset (line 3): cannot read 'nope.jsonl'"),
])
def test_bad_conversations_fail_with_one_line(body: str, problem: str) -> None:
    with pytest.raises(SuiteError) as err:
        parse_suite(f"name: x\nmodels: [openai/gpt-4o-mini]\n{body}\n", "s.yaml")
    assert problem in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------- kill and resume
def spawn(args: list[str], db: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    env["ORBENCH_DB"] = str(db)
    return subprocess.Popen([sys.executable, "-m", "bench", "run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def last_user(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else content[0]["text"]


def test_kill_9_mid_conversation_then_resume_sends_no_answered_turn_again(cli_db: Path, tmp_path: Path) -> None:
    convs = [{"id": f"c{i}", "system": SYSTEM, "turns": [f"c{i} " + u for u in USERS]} for i in range(4)]
    suite = tmp_path / "kill.yaml"
    suite.write_text(textwrap.dedent(f"""\
        name: kill
        models: [openai/gpt-4o-mini]
        defaults: {{max_tokens: 20}}
        conversations: {json.dumps(convs)}
        """), encoding="utf-8")
    rec = UniqueAnswers()
    with start_sandbox(time_scale=0.3, answers={"*": rec}) as sb:
        proc = spawn([str(suite), "--base-url", sb.base_url, "--concurrency", "2", "--no-warmup"], cli_db)
        wait_for(lambda: len(sb.state.generations) >= 3)  # some turns answered, conversations mid-way
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.3)
        first_session = len(rec.bodies)
        run_id = Store(cli_db).resolve_run("latest")
        store = Store(cli_db)
        settled = store.finished_keys(run_id)
        run = store.get_run(run_id)
        assert run is not None
        by_idx = {p["request_idx"]: p["conversation"] for p in run["plan"]}  # the stored plan names each turn
        answered = {(by_idx[i]["id"], by_idx[i]["turn"]) for i in settled}
        code, _, err = invoke("run", "--resume", "latest", "--base-url", sb.base_url)
        assert code == 0, err
    assert 3 <= len(answered) < 12, answered
    resent = [last_user(b) for b in rec.bodies[first_session:]]
    again = [(c, t) for c, t in answered if f"{c} {USERS[t - 1]}" in resent]
    assert not again, f"answered turns sent again: {again}"
    todo = [f"c{i} {USERS[t - 1]}" for i in range(4) for t in (1, 2, 3) if (f"c{i}", t) not in answered]
    assert sorted(resent) == sorted(todo), "the resume sent other turns than the unanswered ones, once each"
    rows = turns(cli_db, run_id)
    assert len(rows) == 12 and all(r["outcome"] == "ok" for r in rows)
    # Each conversation finished with the right history: turn k carried the stored answers of turns 1..k-1.
    final = {last_user(b): b for b in rec.bodies}
    for r in rows:
        if r["turn"] == 1:
            continue
        body = final[f"{r['conversation_id']} {USERS[r['turn'] - 1]}"]
        carried = [m["content"] for m in body["messages"] if m["role"] == "assistant"]
        stored = [x["output_text"] for x in rows if x["conversation_id"] == r["conversation_id"]
                  and x["turn"] < r["turn"]]
        assert carried == stored


# ----------------------------------------------------------------- dashboard
def test_results_and_decide_pages_show_cost_per_conversation(shared: dict[str, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.test_dashboard import APP, charts, table

    monkeypatch.setenv("ORBENCH_DB", str(shared["db"]))
    with start_sandbox(time_scale=0) as sb:
        monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
        monkeypatch.setenv("OPENROUTER_BASE_URL", sb.base_url)
        monkeypatch.setenv("ORBENCH_DEMO_LOCAL", "0")
        st.cache_data.clear()
        at = AppTest.from_file(APP, default_timeout=60)
        at.switch_page("app_pages/results.py")
        at.run()
        at.multiselect(key="results-runs").set_value([shared["explicit"]]).run()  # not the newest run
        assert not at.exception, [e.message for e in at.exception]
        conv = table(at, "USD / conversation").set_index("model [provider]")
        assert conv.loc[f"{OPENAI} [v]", "USD / conversation"] == "$0.000424"
        assert conv.loc[f"{OPENAI} [v]", "cache saved"] == "29.5 %"
        [frames] = [v for k, v in charts(at).items() if k.startswith("Billed cost by turn")]
        by_turn = next(f for f in frames if "cost_usd_mean" in f.columns)
        mine = by_turn.filter(by_turn["group"] == f"{OPENAI} [v]").sort("turn")
        assert mine["cost_usd_mean"].to_list() == pytest.approx([0.0001782, 0.0001173, 0.0001284])
        assert mine["cache_hit_rate"].to_list() == [0.0, 1.0, 1.0]
        at.switch_page("app_pages/decide.py")
        at.run()
        at.multiselect(key="decide-runs").set_value([shared["explicit"]]).run()
        assert not at.exception, [e.message for e in at.exception]
        ranked = table(at, "USD / conversation").set_index("candidate")
        assert ranked.loc[f"{OPENAI} [v]", "USD / conversation"] == "$0.000424"
        st.cache_data.clear()


def test_the_html_report_has_a_conversations_section(shared: dict[str, Any]) -> None:
    out = shared["tmp"] / "r.html"
    code, _, err = invoke("report", shared["explicit"], "--db", str(shared["db"]), "-o", str(out))
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    assert "id='conversations'" in html and "$0.000424" in html and "29.5 %" in html
    assert "Billed cost by turn" in html


# ----------------------------------------------------------------- synthetic conversations
def test_synthetic_conversations_are_sized_in_the_targets_tokens_on_a_generic_server(
        cli_db: Path, tmp_path: Path) -> None:
    """A vLLM/llama.cpp-shaped server: the shared system prompt and the user turns are calibrated to its
    tokenizer; cache: off asks it for no prompt cache (cache_prompt false) and answers are exact."""
    from tests.test_synthetic import TokenServer, generic_suite

    body = """\
        cache: off
        synthetic_conversations:
          - {id: chat, system_tokens: 400, turns: 3, user_tokens: 40, output_tokens: 10, count: 2}
    """
    with TokenServer() as server:
        code, out, err = invoke("run", str(generic_suite(tmp_path, server.base_url, body)), "--json")
        assert code == 0, err
        bodies = [b for b in server.bodies if b["max_tokens"] != 1]
    run_id = json.loads(out)["run_id"]
    rows = turns(cli_db, run_id)
    assert [(r["conversation_id"], r["turn"]) for r in rows] == [(f"chat:{c}", t) for c in (1, 2) for t in (1, 2, 3)]
    assert all(r["outcome"] == "ok" and r["completion_tokens"] == 10 for r in rows)
    assert all(b["cache_prompt"] is False and b["ignore_eos"] is True and b["min_tokens"] == 10 for b in bodies)
    systems = {b["messages"][0]["content"] for b in bodies}
    assert len(systems) == 1, "the system prompt is one shared prefix"
    # This server counts user messages only (+ 11 for its template): each side within 5 % of what was asked.
    template = TokenServer.TEMPLATE_TOKENS
    [system] = systems
    assert abs(TokenServer.count(system) - template - 400) <= 20
    first = [r["prompt_tokens"] for r in rows if r["turn"] == 1]
    assert all(abs(p - template - 40) <= 2 for p in first), first
    third = [b for b in bodies if len(b["messages"]) == 6]
    assert len(third) == 2 and all([m["role"] for m in b["messages"]] == ["system", "user", "assistant"] * 1
                                   + ["user", "assistant", "user"] for b in third)


def test_the_sandbox_ttft_pays_prefill_only_on_the_uncached_part(tmp_path: Path) -> None:
    """A 100,000-token prefix read from the cache skips 100,000 x 0.05 ms of simulated prefill (5 s);
    the exponential jitter (mean 50 ms) cannot make up for that."""
    import httpx

    long = "x" * 400_000  # 100,000 tokens
    body = {"model": "openai/gpt-4o-mini", "max_tokens": 1, "provider": {"only": ["openai"]},
            "messages": [{"role": "system", "content": long}, {"role": "user", "content": "hi"}]}
    with start_sandbox(time_scale=0.001) as sb, httpx.Client(base_url=sb.base_url) as client:
        cold = client.post("/chat/completions", json=body).json()
        warm = client.post("/chat/completions", json={**body, "messages": [
            *body["messages"], {"role": "assistant", "content": "ok"}, {"role": "user", "content": "again"}]}).json()
        gens = {g.id: g for g in sb.state.generations.values()}
        cold_ms = gens[cold["id"]].ttft_target_ms / 0.001
        warm_ms = gens[warm["id"]].ttft_target_ms / 0.001
    assert cold["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert warm["usage"]["prompt_tokens_details"]["cached_tokens"] == cold["usage"]["prompt_tokens"]
    assert cold_ms > 420 + 100_000 * 0.05 > warm_ms + 4000
    assert gens[warm["id"]].to_api()["native_tokens_cached"] == cold["usage"]["prompt_tokens"]  # /generation too

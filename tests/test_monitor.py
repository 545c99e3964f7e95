"""orbench monitor / trends end to end: a real sandbox on 127.0.0.1 with scripted changes, a real
DuckDB file, the real CLI, a loopback webhook receiver. The scenario's clock is set per tick, so
"the provider slows from tick 5" means exactly that, whatever this machine's speed."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.sandbox import Change, Scenario, load_scenario, start_sandbox
from bench.store.store import Store
from tests.conftest import invoke

MODEL = "meta-llama/llama-3.3-70b-instruct"
SUITE = f"""name: watch
models: [{MODEL}]
providers:
  groq: {{only: [groq], allow_fallbacks: false}}
  together: {{only: [together], allow_fallbacks: false}}
repeats: 3
warmup: false
defaults: {{max_tokens: 12, temperature: 0}}
cases:
  - id: capital
    prompt: "Capital of France? One word. [[answer: Paris]]"
    checks: [{{contains: Paris}}]
  - id: sum
    prompt: "2+3? Number only. [[answer: 5]]"
    checks: [{{contains: "5"}}]
"""


class Clock:
    """The scenario's clock: the test says which tick it is."""

    def __init__(self) -> None:
        self.tick = 0.0

    def __call__(self) -> float:
        return self.tick


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(SUITE)
    return path


def _sandbox(changes: list[Change], time_scale: float = 0.02) -> tuple[Any, Clock]:
    clock = Clock()
    return start_sandbox(time_scale=time_scale, scenario=Scenario(changes, clock=clock)), clock


def _tick(suite: Path, base_url: str, clock: Clock, n: int, *extra: str) -> tuple[int, str]:
    clock.tick = float(n)
    code, _, err = invoke("monitor", "tick", str(suite), "--base-url", base_url, "--concurrency", "3", *extra)
    return code, err


class Receiver(http.server.ThreadingHTTPServer):
    """A loopback webhook: records every JSON body; answers 500 to the first ``fail_first`` POSTs."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.bodies.append(body)
                status = 500 if len(receiver.bodies) <= receiver.fail_first else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/T000/secret-token"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=1)
    yield r
    r.shutdown()
    r.server_close()


def test_monitor_tick_exits_3_when_an_outage_opens_then_0(cli_db: Path, suite: Path) -> None:
    """A provider that goes down at tick 3 opens an outage at tick 3 (exit 3); tick 4 opens nothing new
    (exit 0). ``orbench trends --json`` then has the issue's shape: ticks 2-4 against tick 1."""
    sb, clock = _sandbox([Change(at_s=3, model=MODEL, provider="together", error_rate=1.0)])
    with sb:
        assert [_tick(suite, sb.base_url, clock, n)[0] for n in (1, 2)] == [0, 0]
        code, err = _tick(suite, sb.base_url, clock, 3)
        assert code == 3, err
        assert "outage incident opened on meta-llama/llama-3.3-70b-instruct [together] at tick 3" in err
        assert _tick(suite, sb.base_url, clock, 4)[0] == 0
    store = Store(cli_db)
    runs = store.query("SELECT monitor, monitor_tick, name FROM runs ORDER BY monitor_tick")
    assert runs["monitor"].to_list() == ["watch"] * 4 and runs["monitor_tick"].to_list() == [1, 2, 3, 4]
    inc = store.incidents("watch")
    assert inc.select("kind", "provider", "opened_tick", "recovered_tick").rows() == [("outage", "together", 3, None)]

    code, out, err = invoke("trends", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"monitor", "baseline", "latest", "changes", "incidents"}
    assert result["monitor"] == "watch" and result["latest"]["ticks"] == [2, 4]
    assert result["baseline"]["ticks"] == [1, 1]
    assert all(set(c) == {"model", "provider", "metric", "baseline", "latest", "change", "beyond_noise"}
               for c in result["changes"])
    errors = [c for c in result["changes"] if c["metric"] == "error_rate" and c["provider"] == "together"]
    assert errors[0]["latest"] > 0.5 and errors[0]["beyond_noise"]
    (incident,) = result["incidents"]
    assert set(incident) == {"kind", "model", "provider", "metric", "opened_tick", "recovered_tick", "opened_at",
                             "recovered_at", "evidence"}
    assert (incident["kind"], incident["opened_tick"], incident["recovered_tick"]) == ("outage", 3, None)
    code, out, _ = invoke("trends")
    assert code == 0 and "outage" in out and "OPEN" in out


def test_monitor_latency_step_is_detected_within_3_ticks_and_recovers(cli_db: Path, suite: Path) -> None:
    """groq x1.5 at ticks 4-6: a latency incident opens by tick 6 (within 3 ticks) and recovers after."""
    sb, clock = _sandbox([Change(at_s=4, until_s=7, model=MODEL, provider="groq", latency_factor=1.5)],
                         time_scale=0.3)  # ~70 ms TTFT: well above this machine's scheduling noise
    with sb:
        for n in range(1, 8):
            _tick(suite, sb.base_url, clock, n)
    inc = Store(cli_db).incidents("watch")
    latency = inc.filter((inc["kind"] == "latency") & (inc["provider"] == "groq"))
    assert latency.height >= 1
    assert all(4 <= t <= 6 for t in latency["opened_tick"].to_list())
    assert latency["recovered_tick"].to_list() == [7] * latency.height  # the first tick after the step
    assert inc.filter(inc["provider"] == "together").is_empty()  # the steady provider: no incident


def test_monitor_webhook_gets_one_open_and_one_recovery(cli_db: Path, suite: Path, receiver: Receiver) -> None:
    """together down and groq's price x1.25 at ticks 2-3, both back at 4: an outage and two catalog
    incidents (prompt and completion price), each with exactly one open and one recovery delivered;
    the first POST failed (500) and was retried and recorded; the webhook URL is nowhere in the database."""
    sb, clock = _sandbox([Change(at_s=2, until_s=4, model=MODEL, provider="together", error_rate=1.0),
                          Change(at_s=2, until_s=4, model=MODEL, provider="groq", price_factor=1.25)])
    with sb:
        for n in range(1, 6):
            _tick(suite, sb.base_url, clock, n, "--alert-webhook", receiver.url)
    store = Store(cli_db)
    inc = store.incidents("watch")
    assert sorted(inc.select("kind", "provider", "metric", "opened_tick", "recovered_tick").rows()) == [
        ("catalog", "groq", "completion_price", 2, 4), ("catalog", "groq", "prompt_price", 2, 4),
        ("outage", "together", "error_rate", 2, 4)]
    assert receiver.bodies[0] == receiver.bodies[1]  # the first answer was a 500: the same POST again
    delivered = receiver.bodies[1:]
    for incident_id in inc["incident_id"]:
        events = [b["incident"]["event"] for b in delivered if b["incident"]["incident_id"] == incident_id]
        assert events == ["open", "recovery"], incident_id
    outage = [b for b in delivered if b["incident"]["kind"] == "outage"]
    assert outage[0]["text"].startswith("orbench monitor watch: outage incident opened")
    assert outage[1]["incident"]["recovered_tick"] == 4 and outage[0]["incident"]["opened_tick"] == 2
    attempts = store.deliveries("watch")
    assert attempts.height == 7 and attempts.filter(~attempts["delivered"])["status_code"].to_list() == [500]
    for table in ("monitors", "monitor_ticks", "monitor_incidents", "alert_deliveries", "runs"):
        text = store.query(f"SELECT CAST(list(t) AS VARCHAR) AS s FROM {table} AS t")["s"][0]
        assert "secret-token" not in text and str(receiver.server_address[1]) not in text


def test_monitor_budget_per_day_skips_a_tick_with_a_row(cli_db: Path, suite: Path) -> None:
    sb, clock = _sandbox([])
    with sb:
        code, err = _tick(suite, sb.base_url, clock, 1, "--budget-per-day", "0.0000001")
    assert code == 0
    assert "tick 1 skipped: its worst case" in err
    store = Store(cli_db)
    ticks = store.monitor_ticks("watch")
    assert ticks.select("tick", "status", "run_id").rows() == [(1, "skipped", None)]
    assert "--budget-per-day" in ticks["note"][0]
    assert store.query("SELECT count(*) AS n FROM runs")["n"][0] == 0


def test_monitor_scheduler_and_tick_share_the_state(cli_db: Path, suite: Path) -> None:
    """`monitor SUITE --every` (the group's default command) and `monitor tick NAME` coexist: the
    scheduler's --count counts every tick of the monitor, so a restart continues, never repeats.
    Every tick sends fresh prompts: synthetic leading text of its own, the checked part kept."""
    sb, clock = _sandbox([])
    with sb:
        code, _, err = invoke("monitor", str(suite), "--base-url", sb.base_url, "--every", "0.2s", "--count", "2")
        assert code == 0, err
        code, err = _tick(Path("watch"), sb.base_url, clock, 3)  # by the monitor's name
        assert code == 0 and "monitor watch: tick 3 finished" in err
        code, _, err = invoke("monitor", str(suite), "--base-url", sb.base_url, "--every", "0.2s", "--count", "4")
        assert code == 0, err
    store = Store(cli_db)
    ticks = store.monitor_ticks("watch")
    assert ticks["tick"].to_list() == [1, 2, 3, 4] and set(ticks["status"]) == {"finished"}
    assert store.query("SELECT count(DISTINCT monitor_tick) AS n FROM runs")["n"][0] == 4
    plans = [store.get_run(r).plan for r in store.query("SELECT run_id FROM runs ORDER BY monitor_tick")["run_id"]]
    prompts = [{p["body"]["messages"][-1]["content"] for p in plan} for plan in plans]  # type: ignore[union-attr]
    assert all(not a & b for i, a in enumerate(prompts) for b in prompts[i + 1:])
    assert all("[[answer: Paris]]" in text for text in prompts[0] if "France" in text)
    passed = store.query("SELECT count(*) FILTER (WHERE passed) AS p, count(*) AS n FROM requests")
    assert passed["p"][0] == passed["n"][0] == 48


def test_monitor_killed_mid_tick_resumes_it_without_resending(cli_db: Path, suite: Path, tmp_path: Path) -> None:
    """kill -9 during tick 2; the next start resumes tick 2's run (no second run, no answered
    request sent twice, tick 1's incident kept) and then goes on with tick 3."""
    sb, clock = _sandbox([Change(at_s=1, model=MODEL, provider="together", error_rate=1.0)], time_scale=0.3)
    with sb:
        assert _tick(suite, sb.base_url, clock, 1)[0] == 3  # together down from the start
        journal = cli_db.parent / "journal" / cli_db.stem
        before = set(journal.glob("*.jsonl"))
        proc = subprocess.Popen([sys.executable, "-m", "bench", "monitor", "tick", str(suite), "--base-url",
                                 sb.base_url, "--concurrency", "1"], env={**os.environ},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _answered_in_journal(journal, before, at_least=3):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = Store(cli_db)
        assert store.last_tick("watch")["status"] == "running"  # type: ignore[index]
        code, err = _tick(suite, sb.base_url, clock, 2)
        assert "tick 2 did not finish; resuming its run" in err
        assert _tick(suite, sb.base_url, clock, 3)[0] == 0
    ticks = store.monitor_ticks("watch")
    assert ticks["tick"].to_list() == [1, 2, 3] and set(ticks["status"]) == {"finished"}
    assert store.query("SELECT count(*) AS n FROM runs")["n"][0] == 3
    twice = store.query(
        "SELECT run_id, request_idx, count(*) AS n FROM (SELECT run_id, request_idx, outcome FROM requests UNION ALL "
        "SELECT run_id, request_idx, outcome FROM superseded_requests) WHERE outcome = 'ok' GROUP BY ALL HAVING n > 1")
    assert twice.is_empty()
    assert store.incidents("watch").select("kind", "opened_tick").rows() == [("outage", 1)]


def _answered_in_journal(folder: Path, skip: set[Path], at_least: int) -> bool:
    """The new run's journal (files not in ``skip``) holds ``at_least`` answered requests."""
    n = 0
    for path in set(folder.glob("*.jsonl")) - skip:
        with path.open() as f:
            n += sum(1 for line in f if '"outcome": "ok"' in line or '"outcome":"ok"' in line)
    return n >= at_least


def test_sandbox_scenario_file_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("- {at_s: 1, model: m, latncy_factor: 2}\n")
    with pytest.raises(ValueError, match=r"s.yaml: item 1: unknown field 'latncy_factor'"):
        load_scenario(bad)
    bad.write_text("- {at_s: 1, model: m, error_rate: 2}\n")
    code, _, err = invoke("sandbox", "--scenario", str(bad), "--port", "0")
    assert code == 1 and "item 1: error_rate must be between 0 and 1" in err


def test_monitor_catalog_incidents_for_a_removed_provider_and_a_deprecation(cli_db: Path, suite: Path) -> None:
    """The sandbox lists together's endpoint for ticks 1 and 4-5 only (removed at 2, back at 4), and
    announces the model's deprecation date from tick 3: a provider_removed incident opened at 2 and
    recovered at 4, and one expiration_date incident opened at 3 with the date as evidence, still open."""
    sb, clock = _sandbox([Change(at_s=2, until_s=4, model=MODEL, provider="together", unlisted=True),
                          Change(at_s=3, model=MODEL, expiration_date="2027-03-01")])
    with sb:
        codes = [_tick(suite, sb.base_url, clock, n)[0] for n in range(1, 6)]
    assert codes == [0, 3, 3, 0, 0]  # exit 3 at the ticks that opened an incident
    inc = Store(cli_db).incidents("watch")
    rows = sorted(inc.select("kind", "provider", "metric", "opened_tick", "recovered_tick").rows(),
                  key=lambda r: (r[2], str(r[1])))
    assert rows == [("catalog", None, "expiration_date", 3, None),
                    ("catalog", "together", "provider_removed", 2, 4)], rows
    evidence = json.loads(inc.filter(inc["metric"] == "expiration_date")["evidence"][0])
    assert evidence["before"] is None and evidence["after"] == "2027-03-01"

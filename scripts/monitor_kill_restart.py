"""kill -9 a monitor mid-tick and restart it: no incident lost, no tick repeated, no answered request
sent twice, and a loopback webhook gets exactly one open and one recovery message per incident.

Starts ``orbench sandbox --scenario`` (``together`` down for a stretch), a loopback webhook receiver
(a thread here), and ``orbench monitor SUITE --every 4s --count 10 --alert-webhook URL``; once the
outage's incident is open and a later tick has answered a few requests, the monitor is killed with
SIGKILL and the same command is started again. Then the database and the receiver are checked.

    python scripts/monitor_kill_restart.py --out /tmp/kill
"""

from __future__ import annotations

import argparse
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from monitor_scenario import MODEL, SUITE, free_port  # noqa: E402

from bench.store.store import Store  # noqa: E402

RECEIVED: list[dict[str, Any]] = []


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        RECEIVED.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def answered(journal: Path, skip: set[Path]) -> int:
    return sum(line.count('"outcome":"ok"') for p in set(journal.glob("*.jsonl")) - skip for line in p.open())


def _until(done: Any, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for p in out.glob("monitor.duckdb*"):
        p.unlink()
    db = out / "monitor.duckdb"
    (out / "watch.yaml").write_text(SUITE)
    (out / "scenario.yaml").write_text(
        f"- {{at_s: 10, until_s: 40, model: {MODEL}, provider: together, error_rate: 1.0}}\n")
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_address[1]}/services/T0/B0/secret"
    port = free_port()
    orbench = str(Path(sys.executable).parent / "orbench")
    sandbox = subprocess.Popen([orbench, "sandbox", "--scenario", str(out / "scenario.yaml"), "--port", str(port),
                                "--time-scale", "0.5"], stderr=subprocess.PIPE, text=True)
    assert sandbox.stderr is not None
    sandbox.stderr.readline()
    cmd = [orbench, "monitor", str(out / "watch.yaml"), "--base-url", f"http://127.0.0.1:{port}/api/v1",
           "--every", "4s", "--jitter", "0", "--count", "14", "--db", str(db), "--alert-webhook", url]
    log = (out / "monitor.log").open("w")
    try:
        first = subprocess.Popen(cmd, stderr=log)
        journal = db.parent / "journal" / db.stem
        _until(lambda: "outage incident opened" in (out / "monitor.log").read_text(), "an outage incident")
        text = (out / "monitor.log").read_text()
        ticks_done = text.count(" finished (run ")
        _until(lambda: (out / "monitor.log").read_text().count(" finished (run ") > ticks_done,
               "the end of the tick that opened it")  # the next one is starting
        skip = set(journal.glob("*.jsonl"))
        _until(lambda: answered(journal, skip) >= 4, "4 answered requests of the next tick")
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_tick = (out / "monitor.log").read_text().count(" finished (run ") + 1
        print(f"killed the monitor (SIGKILL) during tick {killed_tick}, after {answered(journal, skip)} "
              "answered requests of that tick", flush=True)
        log.write("---- restart ----\n")
        log.flush()
        rc = subprocess.call(cmd, stderr=log)
        print(f"restarted monitor exit {rc}")
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(10)
        hook.shutdown()
    report(Store(db), url)


def report(store: Store, url: str) -> None:
    ticks = store.monitor_ticks("watch")
    print(f"ticks: {ticks['tick'].to_list()} statuses {sorted(set(ticks['status']))}")
    runs = store.query("SELECT monitor_tick, count(*) AS runs FROM runs GROUP BY ALL HAVING count(*) > 1")
    print(f"ticks with more than one run: {runs.height}")
    sessions = store.query("SELECT r.monitor_tick, max(q.session) AS last_session FROM requests q JOIN runs r "
                           "USING (run_id) GROUP BY ALL HAVING max(q.session) > 0")
    print(f"ticks resumed in a later session: {sessions.rows()}")
    twice = store.query(
        "SELECT run_id, request_idx, count(*) AS n FROM (SELECT run_id, request_idx, outcome FROM requests "
        "UNION ALL SELECT run_id, request_idx, outcome FROM superseded_requests) WHERE outcome = 'ok' "
        "GROUP BY ALL HAVING n > 1")
    print(f"answered requests sent twice: {twice.height}")
    for inc in store.incidents("watch").iter_rows(named=True):
        events = [b["incident"]["event"] for b in RECEIVED if b["incident"]["incident_id"] == inc["incident_id"]]
        print(f"incident {inc['kind']} {inc['provider']} {inc['metric']}: opened tick {inc['opened_tick']}, "
              f"recovered tick {inc['recovered_tick']}; webhook received {events}")
    print(f"webhook messages in all: {len(RECEIVED)}")
    secret = url.rsplit("/", 1)[1]
    leaks = [t for t in ("monitors", "monitor_ticks", "monitor_incidents", "alert_deliveries", "runs")
             if secret in store.query(f"SELECT CAST(list(t) AS VARCHAR) AS s FROM {t} AS t")["s"][0]]
    log = (Path(store.path).parent / "monitor.log").read_text()
    print(f"webhook URL in the database: {leaks or 'no'}; in the monitor's output: {'yes' if secret in log else 'no'}")


if __name__ == "__main__":
    main()

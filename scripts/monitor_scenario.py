"""A scripted sandbox scenario watched by a real monitor: the detection table (or false alarms).

Starts ``orbench sandbox --scenario FILE --port N`` and ``orbench monitor SUITE --base-url
http://127.0.0.1:N/api/v1 --every 2s --count 100`` as two processes (exactly what a user runs),
then reads the monitor's database and prints, for each injected change, the tick at which it
started, the tick its incident opened and the tick it recovered; every incident that matches no
injected change is listed as a false alarm. ``--steady`` runs the same monitor with no change
at all (the false-alarm count over 100 ticks).

    python scripts/monitor_scenario.py --out /tmp/scenario            # ~4 minutes
    python scripts/monitor_scenario.py --out /tmp/steady --steady
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.store.store import Store  # noqa: E402

MODEL = "meta-llama/llama-3.3-70b-instruct"
SUITE = f"""name: watch
models: [{MODEL}]
providers:
  default: {{}}
  groq: {{only: [groq], allow_fallbacks: false}}
  together: {{only: [together], allow_fallbacks: false}}
repeats: 3
warmup: false
defaults: {{max_tokens: 16, temperature: 0}}
cases:
  - id: capital
    prompt: "Capital of France? One word. [[answer: Paris]]"
    checks: [{{contains: Paris}}]
  - id: colour
    prompt: "Colour of the sky on a clear day? One word. [[answer: Blue]]"
    checks: [{{icontains: blue}}]
  - id: sum
    prompt: "2+3? Number only. [[answer: 5]]"
    checks: [{{contains: "5"}}]
"""
# (label, expected incident kind, provider variant it shows on, first tick, last tick, scenario fields)
CHANGES = [
    ("groq slows x1.5", "latency", "groq", 20, 34, {"provider": "groq", "latency_factor": 1.5}),
    ("together down", "outage", "together", 45, 47, {"provider": "together", "error_rate": 1.0}),
    ("groq quality drops", "quality", "groq", 60, 74, {"provider": "groq", "quality_drop": 0.6}),
    ("deepinfra/turbo price x1.3", "catalog", "deepinfra/turbo", 80, 89,
     {"provider": "deepinfra/turbo", "price_factor": 1.3}),
    ("deepinfra (both endpoints) down: default routing moves", "routing", "default", 92, 97,
     {"provider": "deepinfra", "error_rate": 1.0}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scenario_yaml(every_s: float, lead_s: float) -> str:
    """Changes timed so that each starts just before its first tick's scheduled start."""
    lines = []
    for _, _, _, first, last, fields in CHANGES:
        at = lead_s + every_s * (first - 1) - every_s / 2
        until = lead_s + every_s * last - every_s / 2
        extra = ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items())
        lines.append(f"- {{at_s: {at:.1f}, until_s: {until:.1f}, model: {MODEL}, {extra}}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ticks", type=int, default=100)
    ap.add_argument("--every", type=float, default=6.0)
    ap.add_argument("--time-scale", type=float, default=0.5)
    ap.add_argument("--steady", action="store_true", help="No injected change (false-alarm count).")
    ap.add_argument("--report-only", action="store_true", help="Only print the report of an earlier --out.")
    args = ap.parse_args()
    out = Path(args.out)
    global EVERY_S
    EVERY_S = args.every
    if args.report_only:
        report(Store(out / "monitor.duckdb"), float((out / "t_sandbox").read_text()), args.steady)
        return
    out.mkdir(parents=True, exist_ok=True)
    db = out / "monitor.duckdb"
    for p in out.glob("monitor.duckdb*"):
        p.unlink()
    (out / "watch.yaml").write_text(SUITE)
    lead_s = LEAD_S  # the monitor starts about LEAD_S after the sandbox
    (out / "scenario.yaml").write_text("[]\n" if args.steady else scenario_yaml(args.every, lead_s))
    port = free_port()
    orbench = str(Path(sys.executable).parent / "orbench")
    sandbox = subprocess.Popen([orbench, "sandbox", "--scenario", str(out / "scenario.yaml"), "--port", str(port),
                                "--time-scale", str(args.time_scale)], stderr=subprocess.PIPE, text=True)
    t_sandbox = time.time()
    (out / "t_sandbox").write_text(repr(t_sandbox))
    try:
        assert sandbox.stderr is not None
        sandbox.stderr.readline()  # "listening"
        time.sleep(max(0.0, lead_s - (time.time() - t_sandbox)))
        started = time.time()
        log = (out / "monitor.log").open("w")
        rc = subprocess.call([orbench, "monitor", str(out / "watch.yaml"), "--base-url",
                              f"http://127.0.0.1:{port}/api/v1", "--every", f"{args.every}s", "--jitter", "0",
                              "--count", str(args.ticks), "--db", str(db)], stderr=log, env={**os.environ})
        took = time.time() - started
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(10)
    print(f"monitor exit {rc}, {args.ticks} ticks in {took:.0f} s (every {args.every:g} s, "
          f"sandbox time scale {args.time_scale:g})")
    report(Store(db), t_sandbox, args.steady)


def report(store: Store, t_sandbox: float, steady: bool) -> None:
    ticks = store.query("SELECT t.tick, epoch(coalesce(r.started_at, t.started_at)) AS at FROM monitor_ticks t "
                        "LEFT JOIN runs r ON r.run_id = t.run_id WHERE t.monitor = 'watch' ORDER BY tick")
    at = dict(zip(ticks["tick"].to_list(), ticks["at"].to_list(), strict=True))
    incidents = store.incidents("watch").to_dicts()
    used: set[str] = set()
    if not steady:
        print("\n| injected change | active from tick | until tick | incident | opened at tick | delay (ticks) "
              "| recovered at tick |")
        print("|---|---|---|---|---|---|---|")
        for label, kind, provider, first, last, _ in CHANGES:
            first, last = _active_ticks(at, t_sandbox, first, last)
            match = [i for i in incidents if i["kind"] == kind and i["provider"] == provider
                     and first - 1 <= i["opened_tick"] <= last + 3 and i["incident_id"] not in used]
            inc = match[0] if match else None
            if inc:
                used.add(inc["incident_id"])
            print(f"| {label} | {first} | {last} | {kind}{' ' + inc['metric'] if inc else ''} "
                  f"| {inc['opened_tick'] if inc else 'not detected'} "
                  f"| {inc['opened_tick'] - first + 1 if inc else '-'} "
                  f"| {(inc['recovered_tick'] or 'open') if inc else '-'} |")
    others = [i for i in incidents if i["incident_id"] not in used]
    windows = [_active_ticks(at, t_sandbox, first, last) for *_, first, last, _ in CHANGES]
    side = [i for i in others if not steady and any(a - 1 <= i["opened_tick"] <= b + 3 for a, b in windows)]
    false = [i for i in others if i not in side]
    for title, rows in (("side effects of an injected change (not false alarms)", side), ("false alarms", false)):
        print(f"\n{title}: {len(rows)}")
        for i in rows:
            print(f"  {i['kind']} {i['model']} [{i['provider']}] {i['metric']}: opened {i['opened_tick']}, "
                  f"recovered {i['recovered_tick']}, evidence {i['evidence'][:160]}")
    deliveries = store.deliveries("watch")
    print(f"\nticks recorded: {len(at)}; incidents: {len(incidents)}; alert deliveries: {deliveries.height}")


EVERY_S = 2.0
LEAD_S = 3.0


def _active_ticks(at: dict[int, float], t_sandbox: float, first: int, last: int) -> tuple[int, int]:
    """The ticks that actually ran while the change was active (a tick that overran its period
    starts the next one late, so tick numbers drift from the schedule the scenario was timed on)."""
    start = LEAD_S + EVERY_S * (first - 1) - EVERY_S / 2
    until = LEAD_S + EVERY_S * last - EVERY_S / 2
    inside = [t for t, when in at.items() if when is not None and start <= when - t_sandbox < until]
    return (min(inside), max(inside)) if inside else (first, last)


if __name__ == "__main__":
    main()

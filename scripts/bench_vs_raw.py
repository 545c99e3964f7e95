#!/usr/bin/env python3
"""orbench's whole engine against a raw client on the same loopback server (a script that prints
numbers, not a test): how close the engine (journal, DuckDB, money, checks) comes to a client that
only sends and drains.

The raw client is Node's ``http`` module with a keep-alive agent: it POSTs the same streamed chat
body, reads each answer to its end and parses nothing. Both run in turn against one sandbox process
at zero delay (50 tokens per answer), several rounds, so the machine's drift hits both alike.

    .venv/bin/python scripts/bench_vs_raw.py [--concurrency 64] [--requests 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("bench_engine", ROOT / "scripts" / "bench_engine.py")
assert _spec is not None and _spec.loader is not None
be = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(be)

RAW_JS = r"""
const http = require("http");
const [url, conc, total] = [new URL(process.argv[2]), +process.argv[3], +process.argv[4]];
const agent = new http.Agent({keepAlive: true, maxSockets: conc});
const body = JSON.stringify({model: process.argv[5], stream: true, max_tokens: 50,
                             messages: [{role: "user", content: "hello"}]});
let sent = 0, done = 0;
const t0 = process.hrtime.bigint();
function one() {
  if (sent >= total) return;
  sent++;
  const req = http.request({host: url.hostname, port: url.port, path: url.pathname + "/chat/completions",
                            method: "POST", agent,
                            headers: {"content-type": "application/json", "content-length": Buffer.byteLength(body)}},
    res => { res.on("data", () => {}); res.on("end", () => { done++; if (done === total) finish(); else one(); }); });
  req.on("error", e => { console.error(e.message); process.exit(1); });
  req.end(body);
}
function finish() {
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({requests: total, seconds: s}));
  agent.destroy();
}
for (let i = 0; i < conc; i++) one();
"""


def raw(node: str, script: Path, base_url: str, conc: int, total: int) -> float:
    out = subprocess.run([node, str(script), base_url, str(conc), str(total), be.MODEL],
                         capture_output=True, text=True, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return float(res["requests"]) / float(res["seconds"])


def engine(base_url: str, conc: int, total: int, tmp: Path) -> tuple[float, float]:
    from bench.config import Settings
    from bench.run import session
    from bench.run.spec import RunSpec
    from bench.store.store import Store
    from bench.suites.parse import load_suite

    suite = tmp / "s.yaml"
    suite.write_text(f"name: bench\nmodels: [{be.MODEL}]\nrepeats: {total // 2}\ndefaults: {{max_tokens: 50}}\n"
                     "cases:\n  - id: a\n    prompt: hello\n  - id: b\n    prompt: world\n")
    db = tmp / f"db-{time.monotonic_ns()}.duckdb"
    settings = Settings(base_url=base_url, db_path=db)
    store = Store(db)
    store.init()
    spec = RunSpec(suite_path=suite, concurrency=conc, warmup=False)
    cpu = time.process_time()
    t = time.perf_counter()
    result = asyncio.run(session.run_suite(settings, load_suite(suite), spec, store=store, env={}))
    wall = time.perf_counter() - t
    frame = store.requests_frame(result.run_id or "")
    n = frame.filter(frame["outcome"] == "ok").height
    return n / wall, time.process_time() - cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ttft-ms", type=float, default=0.0,
                    help="The server's time to first token (0 with --tps 0: no delay at all, the client's own "
                         "limit; e.g. 50 and --tps 1000: a server that caps near 600 req/s at 64, as a real one does)")
    ap.add_argument("--tps", type=float, default=0.0, help="The server's decode speed (0: no delay)")
    args = ap.parse_args()
    node = shutil.which("node")
    if node is None:
        print("node is not installed: no raw client to compare with")
        return 1
    tmp = Path(tempfile.mkdtemp())
    script = tmp / "raw.js"
    script.write_text(RAW_JS)
    timed = args.ttft_ms > 0 or args.tps > 0
    sb = be.SandboxProcess(be.bench_catalog(ttft_ms=args.ttft_ms, decode_tps=args.tps or 1e9),
                           time_scale=1.0 if timed else 0)
    try:
        raw(node, script, sb.base_url, args.concurrency, 200)  # the server's first requests (imports, JIT)
        raws, engines = [], []
        for i in range(args.rounds):
            r = raw(node, script, sb.base_url, args.concurrency, args.requests)
            e, cpu = engine(sb.base_url, args.concurrency, args.requests, tmp)
            raws.append(r)
            engines.append(e)
            print(f"round {i + 1}: raw Node client {r:.0f} req/s; orbench engine {e:.0f} req/s "
                  f"(client CPU {cpu:.2f} s) = {e / r:.2f} of raw", flush=True)
        raws.sort()
        engines.sort()
        mid = len(raws) // 2
        print(f"median: raw {raws[mid]:.0f} req/s, orbench {engines[mid]:.0f} req/s = {engines[mid] / raws[mid]:.2f} "
              f"at concurrency {args.concurrency}, {args.requests} requests, server TTFT {args.ttft_ms} ms, "
              f"{args.tps or 'no'} tok/s, load {Path('/proc/loadavg').read_text()[:14]}")
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

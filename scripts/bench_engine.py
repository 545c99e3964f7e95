#!/usr/bin/env python3
"""Engine performance figures (a script that prints numbers, not a test).

The sandbox runs in its own process (``orbench sandbox``) so the client's
numbers are not inflated by sharing a GIL with the server. perf_counter_ns is
CLOCK_MONOTONIC on Linux, shared by both processes, so the server's true
first-token stamp (sent in the sandbox's usage chunk as ``x_orbench``) can be
subtracted from the client's own first-token stamp: that is the client overhead.

    .venv/bin/python scripts/bench_engine.py            # all scenarios
    .venv/bin/python scripts/bench_engine.py overhead   # one of: overhead, stream128, tls128, throughput, engine
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api.client import OpenRouterClient, RetryPolicy  # noqa: E402
from bench.api.http import build_http_client  # noqa: E402
from bench.config import Settings  # noqa: E402
from bench.sandbox.catalog import DEFAULT_CATALOG_PATH  # noqa: E402

MODEL = "bench/steady"


def bench_catalog(ttft_ms: float, decode_tps: float) -> Path:
    """A one-model catalog: fixed TTFT, exact decode speed, one token per event."""
    base = json.loads(DEFAULT_CATALOG_PATH.read_text())
    src = next(m for m in base["models"] if m["id"] == "openai/gpt-4o-mini")
    model = dict(src, id=MODEL, canonical_slug=MODEL, name="Bench: steady")
    model["endpoints"] = [{"tag": "openai", "pricing": src["pricing"], "ttft_ms": ttft_ms,
                           "prefill_ms_per_token": 0.0, "decode_tps": decode_tps, "jitter_ms": 0}]
    base["models"] = [model]
    base["routers"] = []
    base["aliases"] = []
    path = Path(tempfile.mkdtemp()) / "catalog.json"
    path.write_text(json.dumps(base))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandboxProcess:
    def __init__(self, catalog: Path, time_scale: float = 1.0, tls: tuple[Path, Path] | None = None) -> None:
        self.port = free_port()
        extra = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "sandbox", "--port", str(self.port), "--catalog",
             str(catalog), "--time-scale", str(time_scale), *extra],
            cwd=ROOT, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.proc.stderr.readline()  # "listening" line
        host = "localhost" if tls else "127.0.0.1"  # the test certificate names both
        self.base_url = f"{'https' if tls else 'http'}://{host}:{self.port}/api/v1"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def fire(base_url: str, n: int, concurrency: int, max_tokens: int,
               prewarm: bool = False, ca_bundle: str | None = None) -> tuple[list, float]:
    """``n`` requests at ``concurrency`` on one new client; ``prewarm`` opens its connections first
    (as the engine does before a measured phase), else the first wave connects cold."""
    settings = Settings(base_url=base_url, api_key=None, ca_bundle=ca_bundle)
    client = OpenRouterClient(build_http_client(settings, concurrency), retry=RetryPolicy())
    if prewarm:
        await client.prewarm(concurrency)
    sem = asyncio.Semaphore(concurrency)
    results = []

    async def one(i: int) -> None:
        async with sem:
            body = {"model": MODEL, "stream": True, "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": f"request {i} [[answer: {' '.join(['w'] * 400)}]]"}]}
            results.append(await client.chat(body))

    t = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await client.aclose()
    return results, time.perf_counter() - t


def ttft_errors(results: list) -> list[float]:
    """Client TTFT minus the server's own TTFT (request bytes in -> first token out): what the
    client adds, connection set-up included."""
    out = []
    for r in results:
        sc = r.sandbox_clock or {}
        first, arrival = sc.get("t_first_token_perf_ns"), sc.get("t_request_perf_ns")
        if first and arrival and r.clocks.t_first_token:
            out.append(((r.clocks.t_first_token - r.clocks.t0) - (first - arrival)) / 1e6)
    return out


def overheads(results: list) -> list[float]:
    out = []
    for r in results:
        truth = (r.sandbox_clock or {}).get("t_first_token_perf_ns")
        if truth and r.clocks.t_first_token:
            out.append((r.clocks.t_first_token - truth) / 1e6)
    return out


def scenario_overhead() -> None:
    sb = SandboxProcess(bench_catalog(ttft_ms=30, decode_tps=200))
    try:
        res, _ = asyncio.run(fire(sb.base_url, 200, 1, 10, prewarm=True))
        ov = overheads(res)
        print(f"[overhead] concurrency 1, n={len(ov)}: TTFT overhead p50 {pct(ov, 50):.3f} ms, "
              f"p90 {pct(ov, 90):.3f} ms, p99 {pct(ov, 99):.3f} ms (target p50 <= 1 ms)")
    finally:
        sb.stop()


def scenario_stream128() -> None:
    sb = SandboxProcess(bench_catalog(ttft_ms=200, decode_tps=50))
    try:
        cold, _ = asyncio.run(fire(sb.base_url, 128, 128, 10))  # a new client, no warm-up: 128 connects
        err_cold = ttft_errors(cold)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res, wall = asyncio.run(fire(sb.base_url, 128, 128, 100, prewarm=True))  # as the engine runs
        ov = overheads(res)
        err = ttft_errors(res)
        reused = sum(1 for r in res if r.conn_reused)
        ov_cold = overheads(cold)
        print(f"[stream128] first wave, all 128 requests: TTFT overhead vs the server's first-token stamp "
              f"cold p99 {pct(ov_cold, 99):.2f} ms, prewarmed p99 {pct(ov, 99):.2f} ms (target p99 <= 3 ms); "
              f"TTFT error vs the server's own TTFT (connect and the server's queueing included): "
              f"cold client p50 {pct(err_cold, 50):.2f} ms, p99 {pct(err_cold, 99):.2f} ms; "
              f"after prewarm(128) p50 {pct(err, 50):.2f} ms, p99 {pct(err, 99):.2f} ms "
              f"(target p99 <= 3 ms), {reused}/128 on a warm connection")
        # decode speed measured by the client vs the simulated one (server stamps)
        devs, server_devs, vs_server = [], [], []
        for r in res:
            c = r.clocks
            sc = r.sandbox_clock or {}
            toks = r.usage.completion_tokens
            client_tps = (toks - 1) / ((c.t_last_token - c.t_first_token) / 1e9)
            server_tps = (toks - 1) / ((sc["t_last_token_perf_ns"] - sc["t_first_token_perf_ns"]) / 1e9)
            devs.append(abs(client_tps - 50.0) / 50.0 * 100)
            server_devs.append(abs(server_tps - 50.0) / 50.0 * 100)
            vs_server.append(abs(client_tps - server_tps) / server_tps * 100)
        events = sum(r.events for r in res)
        print(f"[stream128] 128 streams x 100 tokens at 50 tok/s: wall {wall:.2f} s, "
              f"{events / wall:.0f} events/s; TTFT overhead p50 {pct(ov, 50):.2f} ms, "
              f"p99 {pct(ov, 99):.2f} ms (target p99 <= 5 ms); decode speed deviation from 50 tok/s: "
              f"max {max(devs):.2f} %, p50 {pct(devs, 50):.2f} % (target <= 2 %); "
              f"the server's own emission vs 50 tok/s: max {max(server_devs):.2f} %; "
              f"client vs server-emitted speed: max {max(vs_server):.2f} %; "
              f"client max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
              f"(before: {rss0:.0f} MB)")
    finally:
        sb.stop()


def scenario_tls128() -> None:
    """128 streams over HTTPS (the sandbox serving TLS itself, a CA made with openssl)."""
    from tests._netkit import make_ca

    ca = make_ca(Path(tempfile.mkdtemp()))
    sb = SandboxProcess(bench_catalog(ttft_ms=200, decode_tps=50), tls=(ca.server_cert, ca.server_key))
    try:
        cold, _ = asyncio.run(fire(sb.base_url, 128, 128, 10, ca_bundle=str(ca.cert)))
        res, _ = asyncio.run(fire(sb.base_url, 128, 128, 100, prewarm=True, ca_bundle=str(ca.cert)))
        err_cold, err = ttft_errors(cold), ttft_errors(res)
        ov_cold, ov = overheads(cold), overheads(res)
        connects = sorted(r.connect_ms for r in cold if r.connect_ms is not None)
        print(f"[tls128] 128 streams over TLS: TTFT overhead vs the server's first-token stamp cold p50 "
              f"{pct(ov_cold, 50):.2f} / p99 {pct(ov_cold, 99):.2f} ms, prewarmed p50 {pct(ov, 50):.2f} / "
              f"p99 {pct(ov, 99):.2f} ms; TTFT error vs the server's own TTFT: cold client p50 "
              f"{pct(err_cold, 50):.2f} ms, p99 {pct(err_cold, 99):.2f} ms (connect_ms p50 "
              f"{pct(connects, 50):.1f} ms); after prewarm(128) p50 {pct(err, 50):.2f} ms, "
              f"p99 {pct(err, 99):.2f} ms (target p50 <= 2 ms), "
              f"{sum(1 for r in res if r.conn_reused)}/128 on a warm connection")
    finally:
        sb.stop()


def scenario_throughput() -> None:
    sb = SandboxProcess(bench_catalog(ttft_ms=0, decode_tps=1000), time_scale=0)
    try:
        res, wall = asyncio.run(fire(sb.base_url, 2000, 64, 50, prewarm=True))
        ok = sum(1 for r in res if r.usage and r.usage.completion_tokens == 50)
        print(f"[throughput] zero delay, 50-token streams, concurrency 64: {len(res)} requests in "
              f"{wall:.2f} s = {len(res) / wall:.0f} requests/s ({ok} complete) (target >= 200/s)")
    finally:
        sb.stop()


def scenario_engine(levels: tuple[int, ...] = (64, 128), requests: int = 2000) -> None:
    """The whole engine (plan, runner, journal, DuckDB writer) at zero delay: req/s, client CPU and the
    TTFT overhead against the sandbox's own first-token stamp (``ENGINE_LEVELS=64,128``, ``ENGINE_REQUESTS``)."""
    from bench.run import session
    from bench.run.runner import Runner
    from bench.run.spec import RunSpec
    from bench.store.store import Store
    from bench.suites.parse import load_suite

    levels = tuple(int(x) for x in os.environ.get("ENGINE_LEVELS", ",".join(map(str, levels))).split(","))
    requests = int(os.environ.get("ENGINE_REQUESTS", str(requests)))
    sb = SandboxProcess(bench_catalog(ttft_ms=0, decode_tps=1000), time_scale=0)
    tmp = Path(tempfile.mkdtemp())
    suite = tmp / "s.yaml"
    suite.write_text(f"name: bench\nmodels: [{MODEL}]\nrepeats: {requests // 2}\ndefaults: {{max_tokens: 50}}\n"
                     "cases:\n  - id: a\n    prompt: hello\n  - id: b\n    prompt: world\n")
    try:
        # ORBENCH_TEAM_DB set: the same runs push to that team store as they go (its cost on throughput)
        team_url = os.environ.get("ORBENCH_TEAM_DB") or None
        settings = Settings(base_url=sb.base_url, db_path=tmp / "db.duckdb", team_url=team_url)
        store = Store(settings.db_path)
        store.init()
        if team_url:  # as `orbench run` does before its run: the plan checks the team store (and loads psycopg)
            from bench.store.team.hooks import plan_lines

            print(*plan_lines(settings))
        for conc in levels:
            spec = RunSpec(suite_path=suite, concurrency=conc, warmup=False)
            over: list[float] = []

            def note_overheads(runner: Runner) -> None:
                for client in runner.clients.values():  # each answer's overhead vs the server's stamp
                    chat = client.chat

                    async def timed(*a: Any, _chat: Any = chat, **kw: Any) -> Any:
                        r = await _chat(*a, **kw)
                        over.extend(overheads([r]))
                        return r

                    client.chat = timed  # type: ignore[method-assign]  # a measuring script, not the product

            async def go() -> str:
                result = await session.run_suite(settings, load_suite(suite), spec, store=store, env={},
                                                 hooks=session.SessionHooks(on_runner=note_overheads))
                assert result.run_id is not None
                return result.run_id

            cpu = time.process_time()
            t = time.perf_counter()
            run_id = asyncio.run(go())
            wall = time.perf_counter() - t
            cpu = time.process_time() - cpu
            flush = ""
            if team_url:  # the run's last rows go up after it, from the pusher's thread (the CLI waits)
                from bench.store.team.hooks import wait_pushes

                t = time.perf_counter()
                failures = wait_pushes(settings)
                flush = f"; last push done {time.perf_counter() - t:.2f} s after the run {failures or ''}"
            n = store.requests_frame(run_id).height
            print(f"[engine{' --team' if team_url else ''}] full engine, concurrency {conc}, zero delay, "
                  f"50 tokens: {n} rows in "
                  f"{wall:.2f} s = {n / wall:.0f} requests/s incl. journal + DuckDB, client CPU {cpu:.2f} s; "
                  f"TTFT overhead vs the server's stamp p50 {pct(over, 50):.2f} ms, p99 {pct(over, 99):.2f} ms; "
                  f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (target < 400 MB)"
                  + flush)
    finally:
        sb.stop()


SCENARIOS = {"overhead": scenario_overhead, "stream128": scenario_stream128, "tls128": scenario_tls128,
             "throughput": scenario_throughput, "engine": scenario_engine}

if __name__ == "__main__":
    names = sys.argv[1:] or list(SCENARIOS)
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
    for name in names:
        SCENARIOS[name]()

#!/usr/bin/env python3
"""Client-side vs server-side timings for the local model (Gemma 3 270M, llama-server).

Starts a LocalServer, sends one warm-up request (not counted) and then N streamed
chats one after another, each on a fresh connection, and prints p50 of what the
client measured (METRICS.md: TTFT to the first content event, decode tokens/s from
first to last content event) next to what llama-server's ``timings`` reported for
the same requests (``prompt_ms`` as the server's time to first token,
``predicted_per_second``). The gap between the two is our measuring overhead.

    .venv/bin/python scripts/bench_local.py [-n 10] [--max-tokens 64] [--port N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.local import DEFAULT_CACHE_DIR, LocalServer, ensure_gguf  # noqa: E402
from bench.local_build import local_extra_status  # noqa: E402

TOPICS = ["a CPU cache", "a river delta", "public key cryptography", "a compiler", "photosynthesis",
          "a lighthouse", "the moon's phases", "a hash table", "volcanoes", "jazz", "bread yeast",
          "tides", "a bicycle gear", "glaciers", "a database index", "bees"]


@dataclass
class Sample:
    ttft_ms: float
    decode_tps: float
    e2e_ms: float
    completion_tokens: int
    content_events: int
    timings: dict[str, Any]


def run_one(base_url: str, prompt: str, max_tokens: int) -> Sample:
    body = {
        "model": "gemma3-270m",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    stamps: list[int] = []
    final: dict[str, Any] = {}
    with httpx.Client(timeout=120.0, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        t0 = time.perf_counter_ns()
        with http.stream("POST", f"{base_url}/chat/completions", json=body) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                event = json.loads(line[5:])
                choices = event.get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    stamps.append(time.perf_counter_ns())
                final = event
    tokens = final["usage"]["completion_tokens"]
    return Sample(
        ttft_ms=(stamps[0] - t0) / 1e6,
        decode_tps=(tokens - 1) / ((stamps[-1] - stamps[0]) / 1e9),
        e2e_ms=(stamps[-1] - t0) / 1e6,
        completion_tokens=tokens,
        content_events=len(stamps),
        timings=final["timings"],
    )


def p50(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f}  (min {min(values):.1f}, max {max(values):.1f})"


def report(samples: list[Sample], startup_s: float | None) -> None:
    n = len(samples)
    print(f"llama-server start-up (spawn -> /health 200, own pid listening): {startup_s:.2f} s")
    print(f"n = {n} sequential streamed requests (after 1 warm-up), fresh connection each")
    print(f"{'p50':>38}")
    print(f"TTFT client ms                 {p50([s.ttft_ms for s in samples])}")
    print(f"prompt_ms server               {p50([s.timings['prompt_ms'] for s in samples])}")
    print(f"decode tok/s client            {p50([s.decode_tps for s in samples])}")
    print(f"predicted_per_second server    {p50([s.timings['predicted_per_second'] for s in samples])}")
    print(f"e2e client ms                  {p50([s.e2e_ms for s in samples])}")
    print(f"prompt tokens (cached) p50     {statistics.median(s.timings['prompt_n'] for s in samples):.0f}"
          f" ({statistics.median(s.timings.get('cache_n', 0) for s in samples):.0f})")
    mismatched = sum(s.completion_tokens != s.content_events for s in samples)
    print(f"usage.completion_tokens == content events: {n - mismatched}/{n}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="requests to time (default 10)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per answer (default 64)")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    args = parser.parse_args(argv)
    ok, message = local_extra_status()
    if not ok:
        print(message, file=sys.stderr)
        return 2
    gguf = ensure_gguf(ROOT / DEFAULT_CACHE_DIR)
    with LocalServer(gguf, port=args.port) as server:
        run_one(server.base_url, "Say hello.", args.max_tokens)  # warm-up, not counted
        samples = [run_one(server.base_url, f"Explain {TOPICS[i % len(TOPICS)]} briefly.",
                           args.max_tokens) for i in range(args.n)]
        report(samples, server.startup_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())

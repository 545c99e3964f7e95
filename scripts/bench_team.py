#!/usr/bin/env python3
"""Team store figures (a script that prints numbers, not a test), against a throwaway PostgreSQL 15.

    .venv/bin/python scripts/bench_team.py            # 1M rows (several minutes on 2 cores)
    .venv/bin/python scripts/bench_team.py 200000     # fewer rows
    .venv/bin/python scripts/bench_team.py 1000000 --engine   # also bench_engine.py at c=64 with/without --team

- push rows/s from one writer: a 1M-line journal (one run) pushed by ``orbench team push``'s function;
- pull 1M request rows into an empty local DuckDB (ADBC -> Arrow -> the merge);
- an incremental pull of the newest 10,000 (another run pushed after the big pull);
- with ``--engine``: scripts/bench_engine.py's full-engine scenario without, then with ORBENCH_TEAM_DB.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import polars as pl  # noqa: E402
from _postgres import Cluster  # noqa: E402

from bench.store import journal  # noqa: E402
from bench.store.store import Store  # noqa: E402
from bench.store.team.pull import pull  # noqa: E402
from bench.store.team.push import push  # noqa: E402
from bench.store.team.schema import init_schema  # noqa: E402
from bench.store.team.url import parse_team_url  # noqa: E402


def journal_of(store: Store, run_id: str, n: int) -> None:
    """A run of ``n`` finished rows, journaled exactly as a run journals them (no DuckDB ingest)."""
    store.create_run(run_id, name="bench-team", suite_name="bench", status="finished", origin="bench")
    i = pl.int_range(0, n, eager=True)
    frame = pl.DataFrame({
        "run_id": run_id, "request_idx": i, "model": (i % 4).map_elements(lambda k: f"vendor/model-{k}",
                                                                          return_dtype=pl.String),
        "provider_variant": "default", "endpoint": "openrouter", "case_id": (i % 50).cast(pl.String),
        "repeat": i // 50, "is_warmup": False, "outcome": "ok", "provider": "Sim", "http_status": 200,
        "attempts": 1, "started_at": "2026-12-06T10:00:00.000000Z", "t_start_ms": i.cast(pl.Float64),
        "ttft_ms": 100.0 + (i % 97), "e2e_ms": 400.0 + (i % 113), "prompt_tokens": 12 + i % 5,
        "completion_tokens": 50, "token_source": "usage", "cost_usd": "0.000075198958333333",
        "list_cost_usd": "0.00007445729166", "cost_source": "reported", "session": 0, "rev": 0,
        "output_text": "Hello! How can I help you today?", "finish_reason": "stop",
    })
    frame = pl.concat([journal.empty_frame(), frame], how="diagonal_relaxed").select(list(journal.WIRE_SCHEMA))
    path = journal.journal_path(store.journal_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    # as a run writes them (journal.encode_row): absent fields left out, not written as null
    data = re.sub(rb',?"[a-z_0-9]+":null', b"", frame.write_ndjson().encode()).replace(b"{,", b"{")
    path.write_bytes(data)


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t
    return out, wall


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1_000_000
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}, rows {n:,}")
    cluster = Cluster()
    cluster.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-team-"))
    try:
        cluster.sql("CREATE DATABASE team")
        url = cluster.url("team")
        team = parse_team_url(url)
        init_schema(team)
        writer = Store(tmp / "writer" / "orbench.duckdb")
        writer.init()
        journal_of(writer, "20261206-100000-000000000001", n)
        res, wall = timed("push", lambda: push(writer, team, None, origin="bench"))
        print(f"[push] one writer, {res.new['request']:,} request rows (journal -> COPY -> log) in {wall:.2f} s "
              f"= {res.new['request'] / wall:,.0f} rows/s")
        cache = Store(tmp / "reader" / "orbench.duckdb")
        got, wall = timed("pull", lambda: pull(cache, team))
        print(f"[pull] {got.requests:,} request rows into an empty cache in {wall:.2f} s "
              f"= {got.requests / wall:,.0f} rows/s (ADBC -> Arrow -> merge -> DuckDB)")
        journal_of(writer, "20261206-100500-000000000002", 10_000)
        push(writer, team, None, origin="bench")
        got, wall = timed("pull", lambda: pull(cache, team))
        print(f"[pull] incremental: the newest {got.requests:,} rows ({got.entries:,} log entries) "
              f"in {wall:.2f} s")
        size = cluster.sql("SELECT pg_size_pretty(pg_total_relation_size('orbench_log'))", "team")
        cache_mb = (tmp / "reader" / "orbench.duckdb").stat().st_size / 1e6
        print(f"[size] orbench_log: {size}; local cache: {cache_mb:.0f} MB")
        if "--engine" in sys.argv:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("ORBENCH_", "OPENROUTER_"))}
            cluster.sql("CREATE DATABASE engine")
            init_schema(parse_team_url(cluster.url("engine")))
            for extra in ({}, {"ORBENCH_TEAM_DB": cluster.url("engine")}):
                out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_engine.py"), "engine"],
                                     env={**env, **extra}, capture_output=True, text=True)
                print(out.stdout.strip() or out.stderr[-2000:])
            logged = cluster.sql("SELECT count(*) FROM orbench_log WHERE kind = 'request'", "engine")
            print(f"[engine --team] request entries in the log: {logged}")
    finally:
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

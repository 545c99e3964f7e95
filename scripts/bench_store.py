"""Time the store's write and read paths on a scratch database.

    .venv/bin/python scripts/bench_store.py [--rows 100000] [--dir /tmp/x]

Prints wall-clock times for: writing N RequestRows the way a run does (``journal_line``
per row, ``sync_journal``, ``ingest_journal`` into DuckDB), its parts (rows -> frame, journal append,
frame -> DuckDB in one INSERT ... SELECT), recovery of N journaled rows, a steady-state 20-row batch,
and read-only open latency. Figures depend on the machine's load; run it twice.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.records import RequestRow  # noqa: E402
from bench.results import summary  # noqa: E402
from bench.store import journal  # noqa: E402
from bench.store import merge as store_mod  # noqa: E402
from bench.store.store import Store  # noqa: E402


def make_rows(run_id: str, n: int, start: int = 0) -> list[RequestRow]:
    """Rows shaped like real results: most columns filled, gaps list, money."""
    return [
        RequestRow(
            run_id=run_id, request_idx=i, model=f"acme/model-{i % 4}", provider_variant="default",
            endpoint="openrouter", case_id=f"case-{i % 50}", repeat=i % 5, is_warmup=False,
            outcome="ok" if i % 20 else "rate_limited", served_model="acme/model", provider="Prov",
            http_status=200, attempts=1, started_at="2026-11-30T12:00:00.123456+00:00",
            t_start_ms=i * 1.5, ttfb_ms=80.0 + i % 97, ttft_ms=120.0 + i % 101, ttfa_ms=130.0,
            tpot_ms=11.5, e2e_ms=1500.0 + i % 113, done_ms=1502.0, decode_tps=87.0, e2e_tps=60.0,
            chunk_gaps_ms=[10.0, 11.5, 9.75, 12.0], prompt_tokens=120, completion_tokens=200,
            token_source="usage", cost_usd=Decimal("0.000123456"), list_cost_usd=Decimal("0.00012"),
            cost_source="reported", generation_id=f"gen-{i}", finish_reason="stop",
            output_text="The quick brown fox jumps over the lazy dog. " * 3,
        )  # fmt: skip
        for i in range(start, start + n)
    ]


def write(store: Store, rows: list[RequestRow]) -> int:
    """The runner's path (``bench.store.sink``): journal each row, fsync, ingest the journal into DuckDB."""
    for row in rows:
        store.journal_line(row)
    for run_id in sorted({r.run_id for r in rows}):
        store.sync_journal(run_id)
    return sum(store.ingest_journal(run_id) for run_id in sorted({r.run_id for r in rows}))


T = TypeVar("T")


def timed(label: str, fn: Callable[[], T]) -> T:
    t0 = time.perf_counter()
    result = fn()
    print(f"{label:<52} {time.perf_counter() - t0:8.3f} s")
    return result


def bench_writes(base: Path, n: int) -> Store:
    rows = make_rows("bench-write", n)
    store = Store(base / "a" / "orbench.duckdb")
    store.init()
    write(store, make_rows("warm-up", 10))  # first-call costs (pyarrow, polars) aside
    timed(f"write {n:,} rows: journal + fsync + DuckDB", lambda: write(store, rows))

    parts = Store(base / "b" / "orbench.duckdb")
    parts.init()
    rows_b = make_rows("bench-parts", n)
    frame = timed("  part 1: RequestRows -> polars frame", lambda: journal.rows_frame(rows_b))
    j = journal.Journal(journal.journal_path(parts.journal_dir, "bench-parts"))

    def append() -> None:  # as the runner journals: one encoded line per row, then one fsync
        for r in rows_b:
            j.write_line(journal.encode_row(r))
        j.sync()

    timed("  part 2: journal append (JSON lines + fsync)", append)
    j.close()

    def insert() -> int:
        with parts._writing() as con:  # the frame insert path: open, INSERT ... SELECT, close
            return int(parts._in_transaction(con, lambda: store_mod.merge_rows(con, frame)))

    timed("  part 3: frame -> DuckDB (open, merge, commit, close)", insert)

    recover = Store(base / "c" / "orbench.duckdb")
    crashed = journal.Journal(journal.journal_path(recover.journal_dir, "bench-crash"))
    for r in make_rows("bench-crash", n):
        crashed.write_line(journal.encode_row(r))
    crashed.close()
    timed(f"recovery: init() ingesting {n:,} journaled rows", recover.init)
    return store


def bench_batches(store: Store, batches: int = 30, size: int = 20) -> None:
    times = []
    for b in range(batches):
        rows = make_rows("bench-batches", size, start=b * size)
        t0 = time.perf_counter()
        write(store, rows)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"{'write 20 rows, steady state p50 / p90':<52} "
          f"{times[len(times) // 2] * 1e3:6.1f} / {times[int(len(times) * 0.9)] * 1e3:.1f} ms")  # fmt: skip


def bench_reads(store: Store, n: int, repeats: int = 30) -> None:
    opens = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        store.query("SELECT 1 AS one")
        opens.append(time.perf_counter() - t0)
    print(f"{'read-only open + SELECT 1 + close p50 / p90':<52} "
          f"{statistics.median(opens) * 1e3:6.1f} / {sorted(opens)[int(repeats * 0.9)] * 1e3:.1f} ms")  # fmt: skip
    frame = timed(f"requests_frame({n:,} rows) -> polars", lambda: store.requests_frame("bench-write"))
    assert frame.height == n
    timed("summary in DuckDB (bench.results.summary.run_summary)", lambda: summary.run_summary(store, "bench-write"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.dir or Path(tmp)
        store = bench_writes(base, args.rows)
        bench_batches(store)
        bench_reads(store, args.rows)
        store.close()


if __name__ == "__main__":
    main()

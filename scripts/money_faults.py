#!/usr/bin/env python3
"""The money reproductions as figures (a script that prints numbers, not a test).

Each scenario runs the real CLI in a subprocess against a loopback server that
keeps its own books (tests/money_server.py), injects the fault, resumes, and
prints what the server streamed and billed next to what orbench recorded.

    .venv/bin/python scripts/money_faults.py            # all scenarios
    .venv/bin/python scripts/money_faults.py lookup     # one of: lookup, resumes, retries, dense, disk, truncated
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.store.store import Store  # noqa: E402
from tests.money_server import MoneyServer, start_money_server  # noqa: E402


def suite(tmp: Path, repeats: int, cases: int = 2, max_tokens: int = 8,
          prompt: str = "Question {i}: say something.") -> Path:
    lines = ["name: money", "models: [acme/dense]", f"repeats: {repeats}", "warmup: false",
             "defaults:", f"  max_tokens: {max_tokens}", "cases:"]
    for i in range(cases):
        lines += [f"  - id: c{i}", f"    prompt: {prompt.format(i=i)!r}"]
    path = tmp / "money.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def orbench(db: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    env.update(ORBENCH_DB=str(db), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "bench", "run", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def wait_for(what: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not what() and time.monotonic() < deadline:
        time.sleep(0.01)


def books(server: MoneyServer, db: Path) -> str:
    store = Store(db)
    run_id = store.resolve_run("latest")
    rows = store.requests_frame(run_id)
    ok = rows.filter(rows["outcome"] == "ok").height
    return (f"server streamed {server.books.answers} answers, billed ${server.books.billed}; "
            f"orbench: {rows.height} rows ({ok} ok), {store.superseded_frame(run_id).height} superseded "
            f"sends, booked ${store.run_spend(run_id).normalize()}")


def kill_then_resume(server: MoneyServer, db: Path, args: list[str], when: Callable[[], bool]) -> int:
    proc = orbench(db, *args)
    wait_for(when)
    in_flight = server.books.stream_requests - server.books.answers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return in_flight


def scenario_lookup(tmp: Path) -> None:
    server = start_money_server(generation_delay_s=3.0)
    db = tmp / "lookup.duckdb"
    args = [str(suite(tmp, 6)), "--base-url", server.base_url, "--concurrency", "2", "--lookup-generation"]
    in_flight = kill_then_resume(server, db, args, lambda: server.books.answers >= 4)
    server.books.generation_delay_s = 0
    code, _ = finish(orbench(db, "--resume", "latest", "--base-url", server.base_url, "--lookup-generation"))
    print(f"[1 lookup] 12 planned, kill -9 after 4 answers ({in_flight} in flight), resume rc={code}: "
          f"{books(server, db)} (promise: answers <= 12 + {in_flight})")


def scenario_resumes(tmp: Path) -> None:
    server = start_money_server(ttft_s=0.15)
    db = tmp / "resumes.duckdb"
    args = [str(suite(tmp, 8)), "--base-url", server.base_url, "--concurrency", "2"]
    in_flight = kill_then_resume(server, db, args, lambda: server.books.answers >= 2)
    run_id = Store(db).resolve_run("latest")
    a = orbench(db, "--resume", run_id, "--base-url", server.base_url)
    b = orbench(db, "--resume", run_id, "--base-url", server.base_url)
    (ca, ea), (cb, eb) = finish(a), finish(b)
    loser = (ea if ca else eb).strip().splitlines()[-1]
    print(f"[2 resumes] 16 planned, kill -9 after 2 ({in_flight} in flight), two resumes at once: rc {ca} and "
          f"{cb}; the second said: {loser!r}; {books(server, db)} (promise: answers <= 16 + {in_flight})")


def scenario_retries(tmp: Path) -> None:
    server = start_money_server(bill="start", stall_after_headers=True, bytes_per_token=1.0)
    db = tmp / "retries.duckdb"
    code, _ = finish(orbench(db, str(suite(tmp, 2, cases=1)), "--base-url", server.base_url,
                             "--concurrency", "1", "--timeout", "1", "--budget", "0.0004", "--allow-partial"))
    print(f"[3 retries] a server that bills each attempt at stream start, then stalls; budget $0.0004: "
          f"{server.books.attempts} attempts, {books(server, db)}")


def scenario_dense(tmp: Path) -> None:
    server = start_money_server(bytes_per_token=1.5, tokens=16)
    db = tmp / "dense.duckdb"
    s = suite(tmp, 3, max_tokens=16, prompt="Summarise: " + "lorem ipsum dolor sit amet " * 110 + " {i}")
    code, err = finish(orbench(db, str(s), "--base-url", server.base_url, "--budget", "0.02"))
    refused = err.strip().splitlines()[-1]
    code2, _ = finish(orbench(db, str(s), "--base-url", server.base_url, "--budget", "0.02",
                              "--allow-partial", "--concurrency", "1"))
    print(f"[4 dense] one token per 1.5 bytes, 6 requests of ~3 kB, budget $0.02: without --allow-partial "
          f"rc={code} ({refused!r}); with it: {books(server, db)}")


def scenario_disk(tmp: Path) -> None:
    if os.geteuid() != 0:
        print("[5 disk] skipped: mounting a tmpfs needs root")
        return
    server = start_money_server(ttft_s=0.0, token_gap_s=0.0)
    db = tmp / "disk.duckdb"
    where = tmp / "journal" / "disk"
    where.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(where)], check=True)
    try:
        code, err = finish(orbench(db, str(suite(tmp, 50)), "--base-url", server.base_url, "--concurrency", "4"))
        last = err.strip().splitlines()[-1]
        before = server.books.answers
        subprocess.run(["mount", "-o", "remount,size=16m", str(where)], check=True)
        code2, _ = finish(orbench(db, "--resume", "latest", "--base-url", server.base_url))
        print(f"[5 disk] 100 planned, a 24 KB journal disk: rc={code}, traceback: {'Traceback' in err}, "
              f"last line {last!r}; {before} answered before; resume rc={code2}: {books(server, db)}")
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def scenario_truncated(tmp: Path) -> None:
    server = start_money_server(truncate_after=3)
    db = tmp / "truncated.duckdb"
    finish(orbench(db, str(suite(tmp, 1)), "--base-url", server.base_url))
    store = Store(db)
    rows = store.requests_frame(store.resolve_run("latest"))
    print(f"[6 truncated] streams that end after 3 tokens with no [DONE]/finish_reason/usage: outcomes "
          f"{rows['outcome'].to_list()}, completion_tokens {rows['completion_tokens'].to_list()} "
          f"({rows['token_source'].to_list()[0]})")


SCENARIOS = {"lookup": scenario_lookup, "resumes": scenario_resumes, "retries": scenario_retries,
             "dense": scenario_dense, "disk": scenario_disk, "truncated": scenario_truncated}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(SCENARIOS):
        with tempfile.TemporaryDirectory() as d:
            SCENARIOS[name](Path(d))


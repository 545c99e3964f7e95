#!/usr/bin/env python3
"""The team store's must-show scenarios at full size, against a throwaway PostgreSQL 15 (prints evidence).

    .venv/bin/python scripts/team_scenarios.py            # all: two, crash, writers
    .venv/bin/python scripts/team_scenarios.py crash      # one of them

- two: two data folders with different --origin run the smoke suite at the same time into one Postgres;
  a third, empty folder pulls; show and decide there equal each machine's own (n, ok, tokens, exact costs,
  TTFT p50).
- crash: a 501-request run; `pg_ctl stop -m immediate` 2 s after its first pushed request, started again
  10 s later; the run finishes
  and the log then holds exactly the local rows.
- writers: 8 `orbench team push` processes at once, then all 8 again: rows in Postgres = rows in the 8
  local databases, 0 duplicates.
The tests (tests/test_team.py) run the same scenarios smaller.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _postgres import Cluster  # noqa: E402

from bench.sandbox import start_sandbox  # noqa: E402
from bench.store.store import Store  # noqa: E402

SMOKE = ROOT / "bench" / "examples" / "suites" / "smoke.yaml"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ORBENCH_", "OPENROUTER_", "PG"))}
FIELDS = ("n", "ok", "prompt_tokens", "completion_tokens", "cost_usd", "list_cost_usd", "ttft_p50_ms")


def orbench(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    db.parent.mkdir(parents=True, exist_ok=True)
    extra = [] if args[:2] == ("team", "init") else ["--db", str(db)]
    return subprocess.run([sys.executable, "-m", "bench", *args, *extra], capture_output=True, text=True,
                          env=ENV, cwd=db.parent, check=True)


def spawn(*args: str, db: Path) -> subprocess.Popen[str]:
    db.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "bench", *args, "--db", str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=db.parent)


def rows(db: Path) -> list[tuple[object, ...]]:
    return [tuple(r) for r in Store(db).query(
        "SELECT run_id, request_idx, session, outcome, prompt_tokens, completion_tokens, CAST(cost_usd AS VARCHAR), "
        "ttft_ms FROM requests ORDER BY run_id, request_idx").iter_rows()]


def run_id_in(text: str) -> str:
    import re

    found = re.search(r"run (\d{8}-\d{6}-[0-9a-f]+)", text)
    assert found, text[-800:]
    return found.group(1)


def two(cluster: Cluster, tmp: Path, sandbox: str) -> None:
    cluster.sql("CREATE DATABASE two")
    url = cluster.url("two")
    a, b, c = (tmp / "two" / m / "orbench.duckdb" for m in ("a", "b", "c"))
    orbench("team", "init", url, db=a)
    procs = [spawn("run", str(SMOKE), "--base-url", sandbox, "--origin", o, "--team", url, db=d)
             for o, d in (("ci-eu-west", a), ("laptop-ana", b))]
    ids = [run_id_in("".join(p.communicate())) for p in procs]
    print("[two] " + orbench("team", "pull", "--team", url, db=c).stdout.strip())
    for run_id, local in zip(ids, (a, b)):
        mine = json.loads(orbench("show", run_id, "--json", db=local).stdout)
        theirs = json.loads(orbench("show", run_id, "--json", db=c).stdout)
        for m, t in zip(mine, theirs):
            same = {f: m.get(f) for f in FIELDS} == {f: t.get(f) for f in FIELDS}
            print(f"[two] {run_id} {m.get('group', m.get('model'))}: "
                  + ", ".join(f"{f}={t.get(f)}" for f in FIELDS) + f"  same as local: {same}")
        d_local = json.loads(orbench("decide", run_id, "--json", db=local).stdout)["ranking"]
        d_pulled = json.loads(orbench("decide", run_id, "--json", db=c).stdout)["ranking"]
        print(f"[two] decide {run_id}: ranking identical in the third folder: {d_local == d_pulled}")


def crash(cluster: Cluster, tmp: Path, sandbox: str) -> None:
    cluster.sql("CREATE DATABASE crash")
    url = cluster.url("crash")
    a, c = tmp / "crash" / "a" / "orbench.duckdb", tmp / "crash" / "c" / "orbench.duckdb"
    orbench("team", "init", url, db=a)
    t0 = time.monotonic()
    proc = spawn("run", str(SMOKE), "--base-url", sandbox, "--repeat", "83", "--concurrency", "4",
                 "--origin", "crash", "--team", url, db=a)
    while cluster.sql("SELECT count(*) FROM orbench_log WHERE kind = 'request'", "crash") == "0":
        time.sleep(0.1)  # requests are flowing (and being pushed): now crash
    time.sleep(2.0)
    before = cluster.sql("SELECT count(*) FROM orbench_log WHERE kind = 'request'", "crash")
    cluster.stop("immediate")
    print(f"[crash] pg_ctl stop -m immediate at {time.monotonic() - t0:.1f} s ({before} request entries pushed)")
    time.sleep(10.0)
    cluster.start()
    print(f"[crash] started again at {time.monotonic() - t0:.1f} s")
    out, err = proc.communicate()
    print(f"[crash] run exited {proc.returncode} at {time.monotonic() - t0:.1f} s")
    orbench("team", "pull", "--team", url, db=c)
    local, pulled = rows(a), rows(c)
    print(f"[crash] local rows {len(local)}, rows from Postgres {len(pulled)}, identical: {local == pulled}")
    print("[crash] " + orbench("team", "status", "--team", url, db=a).stdout.strip().replace("\n", " | "))


def writers(cluster: Cluster, tmp: Path, sandbox: str) -> None:
    cluster.sql("CREATE DATABASE writers")
    url = cluster.url("writers")
    dbs = [tmp / "writers" / f"w{i}" / "orbench.duckdb" for i in range(8)]
    orbench("team", "init", url, db=dbs[0])
    for i, db in enumerate(dbs):  # 8 machines, each with its own run (not pushed: no --team)
        orbench("run", str(SMOKE), "--base-url", sandbox, "--repeat", "10", "--origin", f"w{i}", db=db)
    for round_ in (1, 2):
        t = time.monotonic()
        procs = [spawn("team", "push", "--json", "--team", url, db=db) for db in dbs]
        new = [sum(json.loads(p.communicate()[0])["new"].values()) for p in procs]
        print(f"[writers] round {round_}: 8 pushes at once in {time.monotonic() - t:.1f} s, new entries {new}")
    dup = cluster.sql("SELECT count(*) - count(DISTINCT entry_key) FROM orbench_log", "writers")
    c = tmp / "writers" / "reader" / "orbench.duckdb"
    orbench("team", "pull", "--team", url, db=c)
    local = sorted(r for db in dbs for r in rows(db))
    print(f"[writers] duplicate keys {dup}; local rows {len(local)}, pulled {len(rows(c))}, "
          f"identical: {local == rows(c)}")


SCENARIOS = {"two": two, "crash": crash, "writers": writers}

if __name__ == "__main__":
    names = sys.argv[1:] or list(SCENARIOS)
    cluster = Cluster()
    cluster.start()
    tmp = Path(tempfile.mkdtemp(prefix="team-scenarios-"))
    try:
        with start_sandbox(time_scale=0.2) as sb:
            for name in names:
                SCENARIOS[name](cluster, tmp, sb.base_url)
    finally:
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)

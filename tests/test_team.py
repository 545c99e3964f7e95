"""The team store against a real PostgreSQL 15 (tests/_postgres.py): push, pull, crashes, roles, secrets.

Machines are separate data folders and separate ``orbench`` processes; the sandbox runs in this
process at a fast time scale. Every check reads real rows: the server's log, and a third,
empty folder that pulled it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.errors import ConfigError
from bench.sandbox import start_sandbox
from bench.store.store import Store
from bench.store.team.url import parse_team_url, redact
from conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "bench" / "examples" / "suites" / "smoke.yaml"
FIELDS = ("n", "ok", "prompt_tokens", "completion_tokens", "cost_usd", "list_cost_usd", "ttft_p50_ms")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with start_sandbox(time_scale=0.05) as sb:
        yield sb.base_url


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORBENCH_", "OPENROUTER_", "PG"))}
    return {**env, **extra}


def cli(*args: str, db: Path, check: bool = True) -> tuple[int, str, str]:
    """``orbench ARGS --db DB`` in this process (fast: reads and pulls)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    code, out, err = invoke(*args, "--db", str(db))
    if check and code != 0:
        raise AssertionError(f"orbench {' '.join(args)} exited {code}: {err[-2000:]}")
    return code, out, err


def orbench(*args: str, db: Path, env: dict[str, str] | None = None, check: bool = True,
            ) -> subprocess.CompletedProcess[str]:
    """``orbench ARGS`` as its own process (a machine)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    db_args = [] if args[:2] == ("team", "init") else ["--db", str(db)]
    res = subprocess.run([sys.executable, "-m", "bench", *args, *db_args],
                         capture_output=True, text=True, env=env or _env(), cwd=db.parent, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"orbench {' '.join(args)} exited {res.returncode}: {res.stderr[-2000:]}")
    return res


def spawn(*args: str, db: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    db.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "bench", *args, "--db", str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or _env(), cwd=db.parent)


def show(db: Path, run_id: str) -> dict[str, dict[str, Any]]:
    rows = json.loads(cli("show", run_id, "--json", db=db)[1])
    return {r["group"] if "group" in r else f"{r['model']} {r.get('provider_variant')}": {f: r.get(f) for f in FIELDS}
            for r in rows}


def server_rows(db_name: str, cluster: Any, sql: str) -> str:
    return cluster.sql(sql, db_name)


def pulled_requests(db: Path, run_id: str) -> list[tuple[Any, ...]]:
    frame = Store(db).query("SELECT request_idx, session, outcome, prompt_tokens, completion_tokens, "
                            "CAST(cost_usd AS VARCHAR), CAST(list_cost_usd AS VARCHAR), ttft_ms FROM requests "
                            "WHERE run_id = ? ORDER BY request_idx", [run_id])
    return [tuple(r) for r in frame.iter_rows()]


def run_id_of(res: subprocess.CompletedProcess[str] | str) -> str:
    text = res if isinstance(res, str) else res.stdout + res.stderr
    found = re.search(r"run (\d{8}-\d{6}-[0-9a-f]+)", text)
    assert found, text[-1500:]
    return found.group(1)


def test_team_two_origins_at_once_and_a_third_folder_pulls_the_same_numbers(
        team_db: tuple[Any, str], sandbox: str, tmp_path: Path) -> None:
    """Two machines run into one Postgres at the same time; an empty folder pulls and shows the same n, ok,
    tokens, exact costs and TTFT p50 as each machine's own show."""
    cluster, name = team_db
    url = cluster.url(name)
    a, b, c = (tmp_path / m / "orbench.duckdb" for m in ("a", "b", "c"))
    orbench("team", "init", url, db=a)
    procs = [spawn("run", str(SMOKE), "--base-url", sandbox, "--origin", origin, "--team", url, db=db)
             for origin, db in (("ci-eu-west", a), ("laptop-ana", b))]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ids = [run_id_of(out[0] + out[1]) for out in outs]
    assert "2 runs" in cli("team", "pull", "--team", url, db=c)[1]
    runs = {r["run_id"]: r for r in json.loads(cli("runs", "--json", db=c)[1])}
    assert {runs[i]["origin"] for i in ids} == {"ci-eu-west", "laptop-ana"}
    for run_id, local in zip(ids, (a, b)):
        assert show(c, run_id) == show(local, run_id)
        assert pulled_requests(c, run_id) == pulled_requests(local, run_id)
        assert json.loads(cli("decide", run_id, "--json", db=c, check=False)[1])["ranking"] == \
            json.loads(cli("decide", run_id, "--json", db=local, check=False)[1])["ranking"]
    # incremental: nothing new crosses the wire the second time
    assert '"entries": 0' in cli("team", "pull", "--json", "--team", url, db=c)[1]
    # a pull on a measuring machine never overwrites its own run
    cli("team", "pull", "--team", url, db=a)
    assert show(a, ids[0]) == show(c, ids[0])

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
from conftest import invoke

from bench.errors import ConfigError
from bench.sandbox import start_sandbox
from bench.store.store import Store
from bench.store.team.url import parse_team_url, redact

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
    # --origin keeps one machine's runs: latest of laptop-ana is b's run, whichever finished last
    assert json.loads(cli("show", "latest", "--origin", "laptop-ana", "--json", db=c)[1])[0]["run_id"] == ids[1]
    code, _, err = cli("show", ids[0], "--origin", "laptop-ana", db=c, check=False)
    assert code == 1 and "from origin laptop-ana" in err
    # the pull built the pulled runs' aggregates (m011), as their engines did at the end: same rows
    builds = "SELECT run_id, rows FROM run_aggregate_builds WHERE run_id = $id"
    for run_id, machine in zip(ids, (a, b), strict=True):
        theirs = Store(machine).query(builds, {"id": run_id}).rows()
        assert theirs and Store(c).query(builds, {"id": run_id}).rows() == theirs
    # incremental: nothing new crosses the wire the second time
    assert '"entries": 0' in cli("team", "pull", "--json", "--team", url, db=c)[1]
    # a pull on a measuring machine never overwrites its own run
    cli("team", "pull", "--team", url, db=a)
    assert show(a, ids[0]) == show(c, ids[0])


def _seed(db: Path, run_id: str, n: int, origin: str) -> None:
    """A finished run of ``n`` rows written the way a run writes them (journal, then ingest)."""
    from _rows import write_rows

    from bench.records import RequestRow

    store = Store(db)
    store.init()
    store.create_run(run_id, name="seeded", suite_name="seeded", status="finished", origin=origin)
    write_rows(store, [RequestRow(run_id=run_id, request_idx=i, model=f"m/{i % 3}", provider_variant="default",
                                  endpoint="openrouter", case_id=f"c{i % 5}", repeat=i // 5, is_warmup=False,
                                  outcome="ok", prompt_tokens=10 + i, completion_tokens=20 + i % 7,
                                  cost_usd=__import__("decimal").Decimal(f"0.0000{i % 9 + 1}3"),
                                  ttft_ms=100.0 + i, e2e_ms=300.0 + i, started_at="2026-12-06T10:00:00Z")
                       for i in range(n)])


def test_team_eight_writers_push_twice_without_duplicates(team_db: tuple[Any, str], tmp_path: Path) -> None:
    """8 machines push at once, then push everything again: the log holds each row once, a pull equals them."""
    import threading

    from bench.store.team.push import push
    from bench.store.team.schema import init_schema

    cluster, name = team_db
    team = parse_team_url(cluster.url(name))
    init_schema(team)
    dbs = [tmp_path / f"w{i}" / "orbench.duckdb" for i in range(8)]
    for i, db in enumerate(dbs):
        _seed(db, f"20261206-100000-{i:012x}", 250, f"writer-{i}")
    import duckdb

    with duckdb.connect(str(dbs[0])) as con:  # writer 0's run is from before origins (m016): it has none
        con.execute("UPDATE runs SET origin = NULL")
    results: dict[str, list[int]] = {}

    def writer(db: Path) -> None:
        res = push(Store(db), team, None, origin="x" if db == dbs[0] else "y")
        results.setdefault(str(db), []).append(res.new.get("request", 0))

    for _ in range(2):  # push, then push everything again: every writer at once each time
        threads = [threading.Thread(target=writer, args=(db,)) for db in dbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(counts == [250, 0] for counts in results.values()), results
    assert cluster.sql("SELECT count(*), count(DISTINCT (run_id, payload)) FROM orbench_log WHERE kind = 'request'",
                       name) == "2000|2000"
    c = tmp_path / "reader" / "orbench.duckdb"
    cli("team", "pull", "--team", cluster.url(name), db=c)
    for db in dbs:
        run_id = Store(db).latest_run_id()
        assert run_id is not None and pulled_requests(c, run_id) == pulled_requests(db, run_id)
    assert Store(c).query("SELECT count(*) AS n FROM requests")["n"][0] == 2000
    origins = dict(Store(c).query("SELECT run_id, origin FROM runs").iter_rows())
    assert origins["20261206-100000-000000000000"] == "x"  # no origin of its own: where it was pushed from
    assert origins["20261206-100000-000000000001"] == "writer-1"


def test_team_postgres_crash_mid_run_then_catch_up(team_db: tuple[Any, str], tmp_path: Path) -> None:
    """pg_ctl stop -m immediate during a run, start again: the run finishes and the log holds exactly its rows."""
    cluster, name = team_db
    url = cluster.url(name)
    a, c = tmp_path / "a" / "orbench.duckdb", tmp_path / "c" / "orbench.duckdb"
    orbench("team", "init", url, db=a)
    with start_sandbox(time_scale=0.25) as slow:  # a run that outlasts the outage
        proc = spawn("run", str(SMOKE), "--base-url", slow.base_url, "--repeat", "16", "--concurrency", "4",
                     "--origin", "crash", "--team", url, db=a)
        _crash_during(proc, cluster, name, a)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    run_id = run_id_of(out + err)
    cli("team", "pull", "--team", url, db=c)
    local = pulled_requests(a, run_id)
    assert len(local) == 3 * 2 * 16 + 3
    assert pulled_requests(c, run_id) == local
    assert cli("team", "status", "--json", "--team", url, db=a)[1].count('"unpushed_rows": 0') == 1


def _crash_during(proc: subprocess.Popen[str], cluster: Any, name: str, a: Path) -> None:
    journal = a.parent / "journal" / "orbench"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.stat().st_size for p in journal.glob("*.jsonl")):
        time.sleep(0.05)
    first_local = time.monotonic()  # the first finished request is journaled: on the server within 5 s
    while time.monotonic() - first_local < 10 and cluster.sql(
            "SELECT count(*) FROM orbench_log WHERE kind = 'request'", name) == "0":
        time.sleep(0.1)
    assert time.monotonic() - first_local <= 5.0
    assert cluster.sql("SELECT count(*) FROM orbench_log WHERE kind = 'run' AND payload LIKE '%\"running\"%'",
                       name) == "1"  # the running run's row too
    time.sleep(1.0)
    assert proc.poll() is None, "the run ended before the crash"
    cluster.stop("immediate")
    time.sleep(2.0)
    cluster.start()
    assert proc.poll() is None, "the run ended while Postgres was down (this test wants it to outlast the outage)"


def test_team_kill9_mid_run_and_unreachable_at_start_catch_up(team_db: tuple[Any, str], sandbox: str,
                                                               tmp_path: Path) -> None:
    """Postgres down at start: the plan says so, the run runs; kill -9 mid-run; the resume (server back)
    completes the log: nothing lost, nothing twice."""
    cluster, name = team_db
    url = cluster.url(name)
    a, c = tmp_path / "a" / "orbench.duckdb", tmp_path / "c" / "orbench.duckdb"
    orbench("team", "init", url, db=a)
    cluster.stop("fast")
    try:
        proc = spawn("run", str(SMOKE), "--base-url", sandbox, "--repeat", "30", "--concurrency", "4",
                     "--team", url, db=a)
        deadline = time.time() + 60
        journal = a.parent / "journal" / "orbench"
        while time.time() < deadline and sum(p.stat().st_size for p in journal.glob("*.jsonl")) < 20_000:
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert "team store unreachable: results will be pushed later" in err
    finally:
        cluster.start()
    status = json.loads(cli("team", "status", "--json", "--team", url, db=a)[1])
    assert status["unpushed_rows"] > 0 and status["server_entries"] == 0
    resumed = orbench("run", "--resume", "latest", "--base-url", sandbox, "--team", url, db=a)
    run_id = run_id_of(resumed)
    cli("team", "pull", "--team", url, db=c)
    assert pulled_requests(c, run_id) == pulled_requests(a, run_id)
    assert Store(c).query("SELECT count(*) AS n FROM superseded_requests")["n"][0] == \
        Store(a).query("SELECT count(*) AS n FROM superseded_requests")["n"][0]
    again = json.loads(cli("team", "push", "--json", "--team", url, db=a)[1])
    assert sum(again["new"].values()) == 0


def _roles_sql(db_name: str, writer_pw: str, reader_pw: str) -> str:
    text = (ROOT / "docs" / "team.md").read_text()
    block = text.split("<!-- roles-sql", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    return (block.replace("DATABASE orbench", f"DATABASE {db_name}")
            .replace("change-me-writer", writer_pw).replace("change-me-reader", reader_pw))


def test_team_roles_and_a_canary_password(team_db: tuple[Any, str], sandbox: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/team.md's roles: the writer cannot update or delete, the reader cannot insert, orbench works
    with both; the writer's password (a canary) is in no file orbench wrote and in none of its output."""
    cluster, name = team_db
    canary, reader_pw = "Canary-7f3a9e51-pw", "reader-pw-2b8c"
    orbench("team", "init", cluster.url(name), db=tmp_path / "owner" / "x.duckdb")
    for user in ("orbench_writer", "orbench_reader"):
        cluster.sql(f"DROP ROLE IF EXISTS {user}")
    cluster.sql(_roles_sql(name, canary, reader_pw), name)
    writer_url = cluster.url(name, "orbench_writer", canary)
    a, c = tmp_path / "a" / "orbench.duckdb", tmp_path / "c" / "orbench.duckdb"
    outputs: list[Any] = [orbench("run", str(SMOKE), "--base-url", sandbox, "--team", writer_url, "--origin", "w",
                                  db=a)]
    monkeypatch.setenv("PGPASSWORD", canary)  # the password from libpq's environment, not the URL
    outputs.append(cli("team", "status", "--team", cluster.url(name, "orbench_writer"), db=a))
    monkeypatch.delenv("PGPASSWORD")
    outputs.append(cli("team", "push", "--team", writer_url, db=a))
    with psycopg.connect(writer_url, autocommit=True) as con:
        for sql in ("UPDATE orbench_log SET origin = 'x'", "DELETE FROM orbench_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                con.execute(sql)
    reader_url = cluster.url(name, "orbench_reader", reader_pw)
    with psycopg.connect(reader_url, autocommit=True) as con:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            con.execute("INSERT INTO orbench_log (entry_key, kind, origin, payload) VALUES ('k', 'run', 'o', '{}')")
    cli("team", "pull", "--team", reader_url, db=c)
    run_id = Store(a).latest_run_id()
    assert run_id is not None and pulled_requests(c, run_id) == pulled_requests(a, run_id)
    code, out, err = cli("show", "--team", writer_url, db=c)
    assert code == 0 and "***" in err and canary not in out + err
    for res in outputs:
        text = res.stdout + res.stderr if isinstance(res, subprocess.CompletedProcess) else res[1] + res[2]
        assert canary not in text
    assert cluster.sql("SELECT count(*) FROM orbench_log WHERE payload LIKE '%Canary-7f3a9e51%'", name) == "0"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not [p for p in written if canary.encode() in p.read_bytes()]


def test_team_malformed_foreign_entries_are_skipped_with_one_line(team_db: tuple[Any, str], tmp_path: Path) -> None:
    cluster, name = team_db
    a, c = tmp_path / "a" / "orbench.duckdb", tmp_path / "c" / "orbench.duckdb"
    _seed(a, "20261206-100000-aaaaaaaaaaaa", 20, "good")
    invoke("team", "init", cluster.url(name))
    cli("team", "push", "--team", cluster.url(name), db=a)
    bad = [("k1", "request", "evil-origin", "run-x", '{"run_id": "run-x", "request_idx": "abc"}'),
           ("k2", "request", "evil-origin", "run-x", "not json at all"),
           ("k3", "request", "huge-origin", "run-y", None),
           ("k4", "run", "evil-origin", "run-z", '{"run_id": "run-z", "status": "<b>boom</b>"}'),
           ("k5", "request", "evil-origin", "run-x", '{"run_id": "run-x", "request_idx": 1, "model": "m", '
            '"provider_variant": "d", "endpoint": "e", "case_id": "c", "repeat": 0, "is_warmup": false, '
            '"session": 0, "cost_usd": "1e999999"}')]
    for key, kind, origin, run_id, payload in bad:
        value = "repeat('x', 5000000)" if payload is None else "'" + payload.replace("'", "''") + "'"
        cluster.sql(f"INSERT INTO orbench_log (entry_key, kind, origin, run_id, payload) "
                    f"VALUES ('{key}', '{kind}', '{origin}', '{run_id}', {value})", name)
    code, out, err = cli("team", "pull", "--team", cluster.url(name), db=c)
    assert code == 0
    assert "skipped 3 malformed entries from origin 'evil-origin', run 'run-x'" in err
    assert "from origin 'huge-origin', run 'run-y'" in err and "from origin 'evil-origin', run 'run-z'" in err
    assert pulled_requests(c, "20261206-100000-aaaaaaaaaaaa") == pulled_requests(a, "20261206-100000-aaaaaaaaaaaa")


def test_team_schema_newer_than_the_code_refuses_writes(team_db: tuple[Any, str], tmp_path: Path) -> None:
    cluster, name = team_db
    a = tmp_path / "a" / "orbench.duckdb"
    _seed(a, "20261206-100000-bbbbbbbbbbbb", 3, "o")
    invoke("team", "init", cluster.url(name))
    cluster.sql("INSERT INTO orbench_migrations VALUES ('p999_future', now())", name)
    code, _, err = cli("team", "push", "--team", cluster.url(name), db=a, check=False)
    assert code == 1 and "newer orbench (migration p999_future)" in err and len(err.strip().splitlines()) == 1
    assert cluster.sql("SELECT count(*) FROM orbench_log", name) == "0"


def test_team_url_is_redacted_and_weak_tls_to_a_remote_host_is_refused(cli_db: Path) -> None:
    url = "postgresql://bench:s3cret-pw@db.example.com:5432/orbench"
    assert redact(url) == "postgresql://bench:***@db.example.com:5432/orbench"
    with pytest.raises(ConfigError, match="sslmode=prefer to db.example.com") as exc:
        parse_team_url(url)
    assert "s3cret" not in str(exc.value)
    assert parse_team_url(url + "?sslmode=verify-full").key == "db.example.com:5432/orbench"
    assert parse_team_url(url, insecure=True).label == "db.example.com/orbench"
    assert parse_team_url("postgresql://u:p@127.0.0.1/x").dbname == "x"  # loopback: no TLS needed
    code, out, err = invoke("runs", "--team", url)
    assert code == 1 and "s3cret" not in out + err and "--team-insecure" in err
    assert len(err.strip().splitlines()) == 1


def test_team_kill9_mid_push_the_next_push_completes(team_db: tuple[Any, str], tmp_path: Path) -> None:
    """``kill -9`` of ``orbench team push`` part way: the next push sends the rest, nothing twice."""
    cluster, name = team_db
    url = cluster.url(name)
    a, c = tmp_path / "a" / "orbench.duckdb", tmp_path / "c" / "orbench.duckdb"
    run_id = "20261206-100000-dddddddddddd"
    _seed(a, run_id, 6000, "k9")
    invoke("team", "init", url)
    proc = spawn("team", "push", "--team", url, db=a)
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None and cluster.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orbench' AND state <> 'idle'",
            name) == "0":
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    before = int(cluster.sql("SELECT count(*) FROM orbench_log WHERE kind = 'request'", name))
    pushed = json.loads(cli("team", "push", "--json", "--team", url, db=a)[1])
    assert before + pushed["new"].get("request", 0) == 6000
    assert cluster.sql("SELECT count(*) FROM orbench_log WHERE kind = 'request'", name) == "6000"
    cli("team", "pull", "--team", url, db=c)
    assert pulled_requests(c, run_id) == pulled_requests(a, run_id)


def test_team_foreign_names_are_escaped_before_markdown() -> None:
    """A run name from another machine cannot become a link, an image (a request off the machine) or HTML."""
    from dashboard.ui import md_escape

    shown = md_escape("![x](http://evil.example/i.png) **b** <img src=x> [l](http://e)")
    assert "](" not in shown.replace("\\](", "") and "<img" not in shown.replace("\\<img", "")
    assert shown.replace("\\", "") == "![x](http://evil.example/i.png) **b** <img src=x> [l](http://e)"


def test_team_monitor_ticks_reach_the_team_store_with_their_monitor_tag(
        team_db: tuple[Any, str], sandbox: str, tmp_path: Path) -> None:
    """``orbench monitor tick --team`` pushes each tick's run like any run; a reader pulls it, tagged."""
    cluster, name = team_db
    url = cluster.url(name)
    a, c = (tmp_path / m / "orbench.duckdb" for m in ("a", "c"))
    orbench("team", "init", url, db=a)
    for _ in range(2):
        orbench("monitor", "tick", str(SMOKE), "--name", "watch", "--base-url", sandbox, "--origin", "ci-eu-west",
                "--team", url, db=a)
    cli("team", "pull", "--team", url, db=c)
    pulled = Store(c).query("SELECT run_id, origin, monitor, monitor_tick FROM runs ORDER BY monitor_tick")
    local = Store(a).query("SELECT run_id, origin, monitor, monitor_tick FROM runs ORDER BY monitor_tick")
    assert pulled.rows() == local.rows()
    assert pulled["monitor"].to_list() == ["watch", "watch"] and pulled["monitor_tick"].to_list() == [1, 2]
    for run_id in local["run_id"].to_list():
        assert pulled_requests(c, run_id) == pulled_requests(a, run_id)
    # trends --team: the monitor's own machine reports it; a reader is told where it runs, in one line
    code, out, _ = cli("trends", "--team", url, "--json", db=a)
    assert json.loads(out)["monitor"] == "watch"
    code, _, err = cli("trends", "--team", url, "--monitor", "watch", db=c, check=False)
    assert code == 1 and "runs on another machine (origin ci-eu-west)" in err and len(err.strip().splitlines()) == 2


def test_team_a_silent_server_never_holds_up_the_run(tmp_path: Path) -> None:
    """A team store that accepts the connection and never answers: the run ends while its pusher is
    still waiting on it; waiting afterwards gives one redacted line, and every row is in the local file."""
    import asyncio
    import socket
    import threading

    from bench.config import Settings
    from bench.run import session
    from bench.run.spec import RunSpec
    from bench.store.team.hooks import wait_pushes
    from bench.suites.parse import load_suite

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
    url = f"postgresql://bench:hunter2@127.0.0.1:{silent.getsockname()[1]}/orbench"
    try:
        with start_sandbox(time_scale=0.0) as sb:
            settings = Settings(base_url=sb.base_url, db_path=tmp_path / "orbench.duckdb", team_url=url)
            store = Store(settings.db_path)
            store.init()
            spec = RunSpec(suite_path=SMOKE, concurrency=4, warmup=False)
            result = asyncio.run(session.run_suite(settings, load_suite(SMOKE), spec, store=store, env={}))

            pushing = [t for t in threading.enumerate() if t.name == "orbench-team-push"]
            assert pushing, "the run waited for its pusher"
            failures = wait_pushes(settings)
    finally:
        silent.close()
    assert len(failures) == 1 and "hunter2" not in failures[0], failures
    assert result.run_id is not None
    run = store.get_run(result.run_id)
    assert run is not None and run.status == "finished"
    assert store.requests_frame(result.run_id).height == len(result.prep.plan) == 12


def test_team_monitor_incidents_reach_a_reader_and_never_steer_its_own_monitors(
        team_db: tuple[Any, str], tmp_path: Path) -> None:
    """A monitor's incident goes up with a full push (a tick pushes its own), opened then recovered; a
    reader pulls its newest state with the origin that recorded it, and shows it with pulled=True, while
    its own monitors' view (what their ticks decide on) stays without it."""
    from datetime import UTC, datetime

    from bench.store.team.pull import pull
    from bench.store.team.push import push
    from bench.store.team.schema import init_schema

    cluster, name = team_db
    team = parse_team_url(cluster.url(name))
    init_schema(team)
    a, c = Store(tmp_path / "a" / "orbench.duckdb"), Store(tmp_path / "c" / "orbench.duckdb")
    a.init()
    a.open_incident("inc-0123456789ab", "watch", kind="latency", model="m/x", provider="groq", metric="ttft_ms",
                    tick=5, at=datetime(2026, 12, 6, 10, tzinfo=UTC), evidence={"change": 0.6})
    assert push(a, team, None, origin="ci-eu-west").new.get("incident") == 1
    pull(c, team)
    got = c.incidents("watch", pulled=True)
    assert got.select("incident_id", "origin", "opened_tick", "recovered_tick").rows() == [
        ("inc-0123456789ab", "ci-eu-west", 5, None)]
    assert c.incidents("watch").is_empty()  # the reader's own monitors never see it as theirs
    a.recover_incident("inc-0123456789ab", tick=7, at=datetime(2026, 12, 6, 11, tzinfo=UTC), evidence={"back": 1})
    assert push(a, team, None, origin="ci-eu-west").new.get("incident") == 1  # the new state, once
    assert push(a, team, None, origin="ci-eu-west").new.get("incident", 0) == 0
    pull(c, team)
    got = c.incidents("watch", pulled=True)
    assert got.select("incident_id", "origin", "recovered_tick").rows() == [("inc-0123456789ab", "ci-eu-west", 7)]
    assert json.loads(got["evidence"][0]) == {"change": 0.6}

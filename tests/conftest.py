"""Shared fixtures: a clean environment with a database in tmp_path, and the CLI runner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.cli import cli


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No OPENROUTER_*/ORBENCH_* from the machine leaks in; ORBENCH_DB points into tmp_path."""
    for k in list(os.environ):
        if k.startswith(("OPENROUTER_", "ORBENCH_")):
            monkeypatch.delenv(k)
    db = tmp_path / "orbench.duckdb"
    monkeypatch.setenv("ORBENCH_DB", str(db))
    return db


def invoke(*args: str) -> tuple[int, str, str]:
    """Run ``orbench ARGS`` in-process: (exit code, stdout, stderr)."""
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


VERIFY_MODEL = "meta-llama/llama-3.3-70b-instruct"
VERIFY_PROVIDERS = "sim-quantized,sim-toolbreak,sim-tokenpad,sim-ignoremax,groq"


@pytest.fixture(scope="session")
def verified(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One sandbox verify (the four misbehaving providers and groq against sim-faithful, with --json
    and --junit) plus a plain run of sim-quantized and groq, on a sandbox that lives for the session:
    shared by tests/test_verify.py and the Providers page's AppTest and browser tests."""
    import json

    from bench.sandbox import start_sandbox

    tmp = tmp_path_factory.mktemp("verify")
    db = tmp / "orbench.duckdb"
    suite = tmp / "two.yaml"
    suite.write_text(f"name: two\nmodels: [{VERIFY_MODEL}]\nproviders:\n  quant: {{only: [sim-quantized]}}\n"
                     "  groq: {only: [groq]}\ncases:\n  - id: q\n    prompt: What is 2 plus 2?\n"
                     "    max_tokens: 8\n    checks: [{numeric: 4}]\n")
    with start_sandbox(seed=5, time_scale=0.01) as sb, pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("OPENROUTER_", "ORBENCH_")):
                mp.delenv(k)
        code, _, err = invoke("run", str(suite), "--base-url", sb.base_url, "--db", str(db), "--repeat", "3")
        assert code == 0, err
        code, out, err = invoke("verify", VERIFY_MODEL, "--base-url", sb.base_url, "--db", str(db),
                                "--providers", VERIFY_PROVIDERS, "--reference", "sim-faithful", "--json",
                                "--junit", str(tmp / "v.xml"), "-c", "32")
        from bench.store.store import Store

        runs = Store(db).list_runs()
        run_id = str(runs.filter(runs["suite_name"] == f"verify:{VERIFY_MODEL}")["run_id"][0])
        yield {"code": code, "json": json.loads(out), "err": err, "junit": (tmp / "v.xml").read_text(),
               "db": db, "run_id": run_id, "sandbox": sb,
               "plain": [r for r in runs["run_id"].to_list() if r != run_id]}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A throwaway PostgreSQL 15 cluster on 127.0.0.1 for the whole session (tests/_postgres.py)."""
    from _postgres import Cluster

    cluster = Cluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def team_db(pg_cluster: Any, request: pytest.FixtureRequest) -> tuple[Any, str]:
    """A fresh database in the session's cluster: (cluster, database name)."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    pg_cluster.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg_cluster.sql(f"CREATE DATABASE {name}")
    return pg_cluster, name

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

"""Shared fixtures: a clean environment with a database in tmp_path, and the CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

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

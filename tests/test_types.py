"""bench/ and dashboard/ type-check under mypy with the pyproject config (strict but for the edges).

The cache is the project's .mypy_cache (ignored by git), so a warm run takes seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNTYPED = "def double(x):\n    return x * 2\n"


def _mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd, capture_output=True, text=True)


def test_mypy_finds_nothing() -> None:
    res = _mypy()
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_config_is_strict_on_pipeline_packages_only(tmp_path: Path) -> None:
    """An untyped def fails in bench.run (the new package names match), passes in the sandbox and dashboard."""
    for package in ("bench", "bench/run", "bench/store", "bench/sandbox", "dashboard"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for module in ("bench/run/engine.py", "bench/store/__init__.py", "bench/sandbox/sim.py", "dashboard/charts.py"):
        (tmp_path / module).write_text(UNTYPED)
    res = _mypy("--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"),
                "bench", "dashboard", cwd=tmp_path)
    flagged = {line.split(":")[0] for line in res.stdout.splitlines() if "[no-untyped-def]" in line}
    assert flagged == {"bench/run/engine.py", "bench/store/__init__.py"}, res.stdout + res.stderr

#!/usr/bin/env python3
"""The README's two commands: ``python3 dev.py dashboard`` and ``python3 dev.py test``.

Needs only python3 (>= 3.11) and pip. Creates ``.venv`` beside this file (once),
installs orbench into it, then starts the dashboard on the embedded default (a
DuckDB file under data/, the simulated sandbox when no OPENROUTER_API_KEY is set)
or runs the whole test suite. The browser tests need Debian's chromium; when it
is missing and we are root on Debian, it is installed with apt-get; so is Debian's
postgresql for the team store's tests (a throwaway cluster in a temporary folder).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"


def sh(*cmd: str | Path, **kw: Any) -> None:
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def ensure_venv(extra: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit("orbench needs Python 3.11 or newer")
    if not PY.exists():
        sh(sys.executable, "-m", "venv", VENV)
        sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    marker = VENV / f".installed-{extra or 'base'}"
    stamp = str((ROOT / "pyproject.toml").stat().st_mtime)
    if not marker.exists() or marker.read_text() != stamp:
        spec = f"{ROOT}[{extra}]" if extra else str(ROOT)
        sh(PY, "-m", "pip", "install", "--quiet", "-e", spec)
        marker.write_text(stamp)


def ensure_chromium() -> None:
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        sh("apt-get", "update", "-qq")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh("apt-get", "install", "-y", "-qq", "chromium", env=env)
    else:
        print("note: the browser tests need Debian's chromium: sudo apt-get install chromium",
              file=sys.stderr)


def ensure_postgres() -> None:
    """The team store's tests start a throwaway cluster from Debian's postgresql (tests/_postgres.py)."""
    if list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        sh("apt-get", "update", "-qq")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh("apt-get", "install", "-y", "-qq", "postgresql", env=env)
    else:
        print("note: the team store tests need Debian's postgresql: sudo apt-get install postgresql",
              file=sys.stderr)


def main(argv: list[str]) -> int:
    what = argv[0] if argv else ""
    rest = argv[1:]
    if what == "dashboard":
        ensure_venv("")
        return subprocess.call([str(VENV / "bin" / "orbench"), "dashboard", *rest], cwd=ROOT)
    if what == "test":
        ensure_venv("test")
        ensure_chromium()
        ensure_postgres()
        return subprocess.call([str(PY), "-m", "pytest", "-q", *rest], cwd=ROOT)
    print("usage: python3 dev.py dashboard|test [args...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A throwaway PostgreSQL cluster on 127.0.0.1 for the team store's tests (no mocks).

Debian's ``postgresql`` package (``python3 dev.py test`` installs it when missing): ``initdb``
and ``pg_ctl`` into a temporary folder. ``initdb`` refuses root and CI runs as root, so under
root the cluster runs as the package's ``postgres`` user through ``runuser`` and its folder is
owned by it (../shared/stack-notes.md). The superuser ``postgres`` is trusted on loopback; every
other role must give its password (scram), so a test can prove a password is checked.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def pg_bin(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    other = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if other:
        return str(other[-1])
    return shutil.which(name) or name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """``start()``, ``stop(mode)``, ``sql(text, db)``, ``url(db, user, password)``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="orbench-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "pg.log"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
            os.chmod(self.root, 0o700)
        self._run(pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        hba = self.data / "pg_hba.conf"
        self._write(hba, "local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
                         "host all all 127.0.0.1/32 scram-sha-256\n")

    def _write(self, path: Path, text: str) -> None:
        if self._as_root:
            subprocess.run(["runuser", "-u", "postgres", "--", "tee", str(path)], input=text.encode(),
                           stdout=subprocess.DEVNULL, check=True)
        else:
            path.write_text(text)

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        full = ["runuser", "-u", "postgres", "--", *cmd] if self._as_root else list(cmd)
        return subprocess.run(full, check=check, capture_output=True, cwd="/")

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=60 -c shared_buffers=32MB")
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def sql(self, text: str, db: str = "postgres") -> str:
        out = self._run(pg_bin("psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", str(self.root),
                        "-p", str(self.port), "-U", "postgres", "-d", db, "-c", text)
        return out.stdout.decode().strip()

    def url(self, db: str, user: str = "postgres", password: str | None = None) -> str:
        auth = user + (f":{password}" if password else "")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

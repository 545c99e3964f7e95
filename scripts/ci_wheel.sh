#!/usr/bin/env bash
# orbench installed like any library: build the wheel, install it into a fresh venv, and
# from an empty folder (no checkout, no data/ beside it) run what a new user would:
# list and copy the example suites, a sandbox run, show + export, and the dashboard
# answering /_stcore/health on 127.0.0.1. Called by .ci/run after the main tests.
#
# Deterministic and bounded: the sandbox is seeded, every step runs under `timeout`, the
# dashboard gets a free port and is stopped by its pid (it execs Streamlit, so that pid
# is the server), and the scratch folder is removed on exit. Network: pip only (its
# index, mirror and wheel cache), for the wheel's dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# The interpreter that builds the wheel and creates the venv: the project venv if there is one.
PY=${ORBENCH_CI_PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/orbench-wheel.XXXXXX")
DASH_PID=""
cleanup() {
  if [ -n "$DASH_PID" ] && kill -0 "$DASH_PID" 2>/dev/null; then
    kill "$DASH_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DASH_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$DASH_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

start=$(date +%s)
step() { echo "ci_wheel: $* ($(( $(date +%s) - start )) s)" >&2; }
# quiet LOG SECONDS CMD...: run CMD under a time limit, its stderr in LOG, shown only if it fails.
quiet() {
  local log=$1 limit=$2
  shift 2
  timeout "$limit" "$@" 2>"$log" || { local rc=$?; echo "ci_wheel: FAILED (exit $rc): $*" >&2; cat "$log" >&2; exit 1; }
}

# Build from a copy of the files git knows (tracked, or new and not ignored): a stale build/
# or egg-info in the checkout, or a stray untracked file, can never end up in the wheel.
step "building the wheel"
SRC="$ROOT"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  SRC="$WORK/src"
  mkdir "$SRC"
  git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
    | tar -C "$ROOT" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$SRC" -xf -
fi
timeout 300 "$PY" -m pip wheel --quiet --no-deps -w "$WORK/dist" "$SRC"
WHEEL=$(ls "$WORK"/dist/orbench-*.whl)

step "installing $(basename "$WHEEL") into a fresh venv"
timeout 120 "$PY" -m venv "$WORK/venv"
timeout 900 "$WORK/venv/bin/python" -m pip install --quiet "$WHEEL"
ORB="$WORK/venv/bin/orbench"

# An empty folder and a clean environment: nothing from the checkout or the machine leaks in.
mkdir "$WORK/empty"
cd "$WORK/empty"
for var in $(env | sed -n 's/^\(OPENROUTER_[A-Za-z0-9_]*\|ORBENCH_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$var"; done
export PYTHONPATH="" PYTHONNOUSERSITE=1

step "orbench from $PWD"
"$ORB" --version
"$WORK/venv/bin/python" - <<'EOF'
import bench, dashboard, pathlib
for mod in (bench, dashboard):  # the installed copy, not a checkout on some path
    assert "site-packages" in mod.__file__, mod.__file__
EOF
quiet examples.log 60 "$ORB" suite examples >/dev/null
quiet copy.log 60 "$ORB" suite examples --copy data >/dev/null
quiet models.log 60 "$ORB" models --sandbox --json > models.json
step "orbench run data/suites/smoke.yaml --sandbox"
quiet run.log 180 "$ORB" run data/suites/smoke.yaml --sandbox --json > run.json
quiet vision.log 180 "$ORB" run data/suites/vision.yaml --sandbox --no-warmup > /dev/null
quiet show.log 60 "$ORB" show latest > show.txt
quiet export.log 60 "$ORB" export latest --format parquet -o rows.parquet
"$WORK/venv/bin/python" - <<'EOF'
import json, pathlib
import polars as pl
models = json.loads(pathlib.Path("models.json").read_text())
run = json.loads(pathlib.Path("run.json").read_text())
rows = pl.read_parquet("rows.parquet")
meta = json.loads(pl.read_parquet_metadata("rows.parquet")["orbench.run"])
assert len(models) > 10, "the sandbox catalog is missing"
assert pathlib.Path("data/orbench.duckdb").exists(), "the database is not in ./data"
assert "SIMULATED" in pathlib.Path("show.txt").read_text()
assert rows.height > 0 and meta["suite_name"] == "vision" and meta["simulated"] is True
print(f"ci_wheel: run {run['run_id']} ok; {len(models)} sandbox models; vision export {rows.height} rows")
EOF

PORT=$("$WORK/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "orbench dashboard on 127.0.0.1:$PORT"
"$ORB" dashboard --port "$PORT" > dashboard.log 2>&1 &
DASH_PID=$!
if ! "$WORK/venv/bin/python" - "$PORT" "$DASH_PID" <<'EOF'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
        if body.strip() == b"ok":
            print(f"ci_wheel: /_stcore/health -> {body.decode().strip()}")
            sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("ci_wheel: the dashboard exited before answering")
    time.sleep(0.25)
sys.exit("ci_wheel: no answer from /_stcore/health in 60 s")
EOF
then
  cat dashboard.log >&2
  exit 1
fi
if grep -q "does not exist" dashboard.log; then cat dashboard.log >&2; exit 1; fi

step "passed"

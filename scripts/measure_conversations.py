"""Run one conversation suite with each cache mode and print TTFT and cached tokens by turn.

    .venv/bin/python scripts/measure_conversations.py [--modes auto,off] [SUITE] [-- RUN FLAGS...]

Default SUITE: an 8-turn synthetic conversation on a 2,000-token system prompt (100-token user
turns, 100-token answers: it fits the local model's 4,096-token context); the flags default to
``--local --model local/gemma3-270m --concurrency 1`` (the real model under llama.cpp, which takes
``cache_prompt``: ``cache: off`` sends ``cache_prompt: false``). Each mode is its own run (and its
own llama-server) in a temporary database. Prints, per mode, target and turn: prompt tokens, the
cached tokens the server reported, TTFT, and the server's own prompt-processing time.

``--stall-s N`` runs the local model in this process with a stall timeout of N seconds instead of
the CLI's 60 (an uncached 3,500-token prefill on a busy 2-core box takes longer than that, and a
turn that times out stops its conversation).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.store.store import Store  # noqa: E402

SUITE = """\
name: conversation-cache
models: [openai/gpt-4o-mini]   # replaced by --model (the local model by default)
warmup: false
cache: {mode}
synthetic_conversations:
  - {{id: long-chat, system_tokens: 2000, turns: 8, user_tokens: 100, output_tokens: 100, count: 1}}
"""
DEFAULT_FLAGS = ["--local", "--model", "local/gemma3-270m", "--concurrency", "1"]


def run_in_process(path: Path, db: Path, stall_s: float) -> str:
    """The local model through ``session.run_suite``, with a longer stall timeout than the CLI's."""
    import asyncio

    from bench.config import Settings
    from bench.run.session import run_suite
    from bench.run.spec import RunSpec
    from bench.suites.parse import load_suite

    settings = Settings.from_env(db_path=str(db))
    spec = RunSpec(suite_path=path, models=["local/gemma3-270m"], concurrency=1, timeout_s=stall_s,
                   stall_timeout_s=stall_s)
    result = asyncio.run(run_suite(settings, load_suite(path), spec, store=Store(db), env=dict(os.environ),
                                   with_local=True))
    assert result.run_id is not None
    return result.run_id


def run_mode(mode: str, suite: str | None, flags: list[str], tmp: Path,
             stall_s: float | None = None) -> list[dict[str, object]]:
    path = Path(suite) if suite else tmp / f"conv-{mode}.yaml"
    text = path.read_text(encoding="utf-8") if suite else SUITE.format(mode=mode)
    if suite:  # the same suite with this cache mode
        text = "\n".join(line for line in text.splitlines() if not line.startswith("cache:")) + f"\ncache: {mode}\n"
        path = tmp / f"conv-{mode}.yaml"
    path.write_text(text, encoding="utf-8")
    db = tmp / f"{mode}.duckdb"
    if stall_s is not None:
        run_id = run_in_process(path, db, stall_s)
        rows = Store(db).requests_frame(run_id).to_dicts()
        return sorted((r for r in rows if r["turn"] is not None), key=lambda r: (r["conversation_id"], r["turn"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORBENCH_")}
    proc = subprocess.run([sys.executable, "-m", "bench", "run", str(path), "--db", str(db), "--json", *flags],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        raise SystemExit(f"cache: {mode}: orbench run exited {proc.returncode}")
    run_id = json.loads(proc.stdout)["run_id"]
    rows = Store(db).requests_frame(run_id).to_dicts()
    return sorted((r for r in rows if r["turn"] is not None), key=lambda r: (r["conversation_id"], r["turn"]))


def main() -> int:
    argv = sys.argv[1:]
    ours, flags = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="auto,off")
    parser.add_argument("--stall-s", type=float, default=None)
    parser.add_argument("suite", nargs="?", default=None)
    args = parser.parse_args(ours)
    flags = flags or DEFAULT_FLAGS
    with tempfile.TemporaryDirectory(prefix="orbench-conv-") as tmp:
        for mode in args.modes.split(","):
            rows = run_mode(mode, args.suite, flags, Path(tmp), args.stall_s)
            print(f"cache: {mode}")
            print(f"  {'target':<28} {'turn':>4} {'prompt':>7} {'cached':>7} {'TTFT ms':>8} {'server prompt ms':>16}"
                  f"  outcome  served by")
            for r in rows:
                ttft = "" if r["ttft_ms"] is None else f"{r['ttft_ms']:.0f}"
                server = "" if r["server_latency_ms"] is None else f"{r['server_latency_ms']:.0f}"
                target = f"{r['model']} [{r['provider_variant']}]"
                print(f"  {target:<28} {r['turn']:>4} {r['prompt_tokens'] or '':>7} {r['cached_tokens'] or 0:>7} "
                      f"{ttft:>8} {server:>16}  {r['outcome']:<7}  {r['provider'] or ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

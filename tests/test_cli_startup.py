"""Start-up: listing commands and one command's help import no data stack.

``orbench --help`` and ``orbench models --help`` run in a fresh interpreter and must not
import polars, duckdb, altair or streamlit: commands are registered by import path
(bench.cli.COMMANDS) and their modules imported only when needed. The help sentences
declared for the listing must stay the commands' own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bench.cli import COMMANDS, LazyCommands, cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("polars", "duckdb", "altair", "streamlit")
WRAPPER = """
import sys
from bench.cli import main
sys.argv = ["orbench", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
print("IMPORTED:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["COLUMNS"] = "80"
    return env


def _orbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WRAPPER.format(heavy=HEAVY), *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [("--help",), ("models", "--help")], ids=" ".join)
def test_help_imports_no_data_stack(args: tuple[str, ...]) -> None:
    res = _orbench(*args)
    assert res.returncode == 0 and "Usage:" in res.stdout, res.stderr
    imported = res.stderr.rsplit("IMPORTED:", 1)[1].strip()
    assert imported == "", f"`orbench {' '.join(args)}` imported {imported}"


def test_a_command_still_runs_after_a_lazy_lookup() -> None:
    res = _orbench("suite", "validate", str(ROOT / "data" / "suites" / "smoke.yaml"))
    assert res.returncode == 0 and ": ok (" in res.stdout, res.stderr


def test_declared_help_sentences_are_the_commands_own() -> None:
    for name, (path, sentence) in COMMANDS.items():
        cmd = cli.commands[name]
        assert cmd.name == name, path
        assert cmd.get_short_help_str(10**6) == sentence, f"update COMMANDS[{name!r}] in bench/cli/__init__.py"


def test_the_lazy_listing_is_what_click_prints_with_every_command_loaded() -> None:
    def help_text(*code: str) -> str:
        script = "\n".join(["import sys", "from bench.cli import cli, main", *code,
                             "sys.argv = ['orbench', '--help']", "main()"])
        res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_env(), capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, res.stderr
        return res.stdout

    loaded = help_text("for name in list(cli.commands):", "    cli.commands[name]")
    assert help_text() == loaded and "  models     List the model catalog" in loaded


def test_lazy_commands_import_only_on_lookup() -> None:
    commands = LazyCommands({"ghost": ("tests.no_such_module:cmd", "Does nothing.")})
    assert list(commands) == ["ghost"] and "ghost" in commands and len(commands) == 1
    assert commands.peek("ghost").get_short_help_str(80) == "Does nothing."
    with pytest.raises(ModuleNotFoundError):
        commands["ghost"]
    commands["real"] = click.Command("real", help="Is real.")
    assert sorted(commands) == ["ghost", "real"] and commands["real"].name == "real"

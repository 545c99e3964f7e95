"""The ``orbench`` command line: one click group, verbs as commands.

Data goes to stdout, progress and notes to stderr. Expected failures (BenchError)
are one line on stderr and exit 1; a run whose CI gates fail exits 3. Set
``ORBENCH_RAISE_ERRORS=1`` to see tracebacks instead.

Commands live in one module per family (catalog, run, results, report, decide, sweep,
suite, local, imports) and are registered here by import path: a command's module (and
polars, DuckDB or Altair behind it) is imported only when that command is run or asked
for its help, so ``orbench --help`` and ``orbench models --help`` start fast. Shared
options and helpers: ``bench.cli.common``.

May import: all of bench (never dashboard or streamlit). Nothing in bench imports this package.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import click

from bench import __version__
from bench.errors import BenchError

__all__ = ["COMMANDS", "LazyCommands", "OrbenchGroup", "cli", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("bench.cli.results:check_cmd",
              "Re-score RUN with SUITE's current checks; sends nothing to the benchmarked models."),
    "compare": ("bench.cli.results:compare_cmd",
                "Change per metric from RUN_A to RUN_B per model x provider, and whether it beats the noise."),
    "credits": ("bench.cli.catalog:credits_cmd",
                "Key usage, limit and remaining; account credits where the key allows it."),
    "dashboard": ("bench.cli.results:dashboard_cmd", "Start the Streamlit dashboard on 127.0.0.1."),
    "demo": ("bench.cli.demo:demo_cmd",
             "Run the demo suite on the simulated sandbox (no key, no network, ~30 s), then decide."),
    "decide": ("bench.cli.decide:decide_cmd",
               "Rank every model x provider of RUN(s) against --min/--max limits and recommend one."),
    "endpoints": ("bench.cli.catalog:endpoints_cmd",
                  "The providers serving MODEL, with prices, quantization, uptime and advertised latency."),
    "export": ("bench.cli.results:export_cmd",
               "Write RUN's per-request rows (or --summary) as CSV, Parquet, JSON or Markdown, with its metadata."),
    "import": ("bench.cli.imports:import_group", "Convert another tool's test config into an orbench suite."),
    "local": ("bench.cli.local:local_group",
              "Serve a real small LLM on this machine (needs the orbench[local] extra)."),
    "models": ("bench.cli.catalog:models_cmd",
               "List the model catalog with per-token prices (public, no key needed)."),
    "monitor": ("bench.cli.monitor:monitor_group",
                "Probe SUITE on a schedule: orbench monitor SUITE --every 30m, or orbench monitor tick SUITE|NAME."),
    "report": ("bench.cli.report:report_cmd", "Write RUN... as one self-contained HTML report that opens offline."),
    "run": ("bench.cli.run:run_cmd",
            "Run SUITE across models x providers x cases x repeats and store every request."),
    "runs": ("bench.cli.results:runs_cmd", "List stored runs, newest first."),
    "sandbox": ("bench.cli.catalog:sandbox_cmd",
                "Serve the simulated OpenRouter-compatible API on 127.0.0.1 until Ctrl-C."),
    "show": ("bench.cli.results:show_cmd",
             "Per model x provider: n, errors, TTFT percentiles with 95% CI, TPOT, tokens, cost."),
    "team": ("bench.cli.team:team_group",
             "The team store on PostgreSQL: many machines push, any machine pulls (see docs/team.md)."),
    "suite": ("bench.cli.suite:suite_group",
              "Suite files: check one offline, print the JSON Schema, list or copy the bundled examples."),
    "sweep": ("bench.cli.sweep:sweep_cmd",
              "Run SUITE at each load level (one run per step); report throughput, latency, goodput and the knee."),
    "trends": ("bench.cli.monitor:trends_cmd",
               "Latest window vs baseline per model x provider x metric, beyond the noise or not, and the incidents."),
}
"""name -> ("module:attribute", the command's first help sentence, shown by ``orbench --help``).

The sentence is the command's own (tests/test_cli_startup.py fails when they drift), kept
here so listing the commands imports none of them."""


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's ``commands``: every name is known at once, a command object only on first use.

    Looking a command up imports its module; listing names, ``in`` and ``len`` do not.
    ``add_command`` (``group.commands[name] = cmd``) registers an already-built command.
    """

    def __init__(self, table: Mapping[str, tuple[str, str]]) -> None:
        self.table = dict(table)
        self.loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self.loaded:
            if name not in self.table:
                raise KeyError(name)
            module, _, attr = self.table[name][0].partition(":")
            self.loaded[name] = getattr(importlib.import_module(module), attr)
        return self.loaded[name]

    def __setitem__(self, name: str, cmd: click.Command) -> None:
        self.loaded[name] = cmd

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self.loaded.pop(name, None)
        self.table.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self.loaded or name in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self.table, *self.loaded]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self.table, *self.loaded]))

    def peek(self, name: str) -> click.Command:
        """The command if it is loaded, else a stand-in that carries only its help sentence."""
        if name in self.loaded:
            return self.loaded[name]
        return click.Command(name, help=self.table[name][1])


class OrbenchGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            if os.environ.get("ORBENCH_RAISE_ERRORS"):
                raise
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing, from the declared help sentences: no command module is imported."""
        peek = getattr(self.commands, "peek", None)
        if peek is None:
            super().format_commands(ctx, formatter)
            return
        commands = [(name, peek(name)) for name in self.list_commands(ctx)]
        commands = [(name, cmd) for name, cmd in commands if not cmd.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in commands])


# --------------------------------------------------------------------- group
@click.group(cls=OrbenchGroup, commands=LazyCommands(COMMANDS),
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orbench")
def cli() -> None:
    """Benchmark LLMs and providers on your own prompts: latency, tokens, cost, quality."""


def main() -> None:
    try:
        cli(prog_name="orbench")
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run records it and exits 130 itself)
        click.echo("interrupted", err=True)
        raise SystemExit(130) from None

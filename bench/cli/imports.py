"""``orbench import``: bring tests from other tools over as orbench suites (offline)."""

from __future__ import annotations

from pathlib import Path

import click

from bench.cli.common import note


@click.group("import")
def import_group() -> None:
    """Convert another tool's test config into an orbench suite."""


@import_group.command("promptfoo")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the suite YAML here (default: stdout).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def import_promptfoo(config: str, out: str | None, force: bool) -> None:
    """Convert promptfooconfig.yaml CONFIG into an orbench suite.

    prompts x tests become cases (vars, defaultTest and tests: file://x.csv|.jsonl carry
    over), openrouter:MODEL providers become models, asserts become checks. What cannot
    carry over (other providers, javascript/python asserts, unknown asserts) is one line
    each on stderr and a comment at the top of the suite."""
    from bench.suites.promptfoo import convert_config

    if out is not None and Path(out).exists() and not force:
        raise click.ClickException(f"{out}: exists; pass --force to overwrite it")
    conv = convert_config(config)
    for line in conv.notes:
        note(f"{config}: {line}")
    text = conv.to_yaml(Path(config).name)
    n_cases, n_models = len(conv.suite["cases"]), len(conv.suite["models"])
    summary = f"{n_cases} cases x {n_models} models, {conv.refused} asserts not carried over"
    if out is None:
        click.echo(text, nl=False)
        note(f"imported {config}: {summary}")
        return
    Path(out).write_text(text, encoding="utf-8")
    note(f"imported {config} into {out}: {summary}")

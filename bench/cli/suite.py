"""``orbench suite``: tools for suite files (offline: no key, no catalog, no network)."""

from __future__ import annotations

import click

from bench.cli.examples import examples_cmd
from bench.errors import BenchError


@click.group("suite")
def suite_group() -> None:
    """Suite files: check one offline, print the JSON Schema, list or copy the bundled examples."""


@suite_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def suite_validate(files: tuple[str, ...]) -> None:
    """Check suite FILES offline (no key, no catalog): one line per file, "ok" or its
    error; exit 1 if any fails. Model ids are checked for shape, not against a catalog."""
    from bench.suites.parse import load_suite

    failed = 0
    for path in files:
        try:
            suite = load_suite(path)
        except BenchError as exc:
            failed += 1
            click.echo(str(exc).splitlines()[0] if str(exc) else f"{path}: {type(exc).__name__}")
            continue
        n_models, n_cases = len(suite.models), len(suite.cases)
        synthetic = "".join(f", synthetic {s.id!r}: {s.count} prompts of {s.prompt_tokens} tokens "
                            f"(sized at run time), max_tokens {s.output_tokens}" for s in suite.synthetic)
        click.echo(f"{path}: ok ({n_models} models, {n_cases} cases{synthetic})")
    if failed:
        raise click.ClickException(f"{failed} of {len(files)} suite files failed")


@suite_group.command("schema")
def suite_schema() -> None:
    """Print the JSON Schema (draft 2020-12) of suite files, for editors; the same
    as docs/suite.schema.json. `suite validate` is the full check."""
    from bench.suites.schema import schema_json

    click.echo(schema_json(), nl=False)


suite_group.add_command(examples_cmd)

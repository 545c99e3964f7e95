"""``orbench suite examples``: list the bundled example suites, or copy them out of the package."""

from __future__ import annotations

from dataclasses import asdict

import click

from bench.cli.common import emit_table, note


@click.command("examples")
@click.option("--copy", "copy_to", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Copy the suites to DIR/suites and their images to DIR/images (never overwrites a "
                   "changed file). `--copy data` gives the README's data/suites/... paths.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def examples_cmd(copy_to: str | None, as_json: bool) -> None:
    """List the example suites bundled with orbench, or copy them to DIR (works from any folder)."""
    from bench import examples

    if copy_to is not None:
        written = examples.copy_examples(copy_to)
        for path in written:
            click.echo(str(path))
        note(f"copied {len(written)} file(s) to {copy_to} (run one: orbench run {copy_to}/suites/smoke.yaml "
             "--sandbox)")
        return
    rows = [{**asdict(e), "path": str(e.path)} for e in examples.list_examples()]
    emit_table(rows, ["file", "name", "description", "path"], "json" if as_json else "table")

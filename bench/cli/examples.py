"""``orbench suite examples``: list the bundled example suites, or copy them out of the package."""

from __future__ import annotations

from dataclasses import asdict

import click

from bench.cli.common import note, output_options
from bench.results.render import Output, emit


@click.command("examples")
@click.option("--copy", "copy_to", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Copy the suites to DIR/suites and their images to DIR/images (never overwrites a "
                   "changed file). `--copy data` gives the README's data/suites/... paths.")
@output_options
def examples_cmd(copy_to: str | None, output: Output) -> None:
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
    emit(rows, ["file", "name", "description", "path"], output, fields=["file", "name", "description", "path"])

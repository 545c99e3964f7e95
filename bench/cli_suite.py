"""``orbench suite``: tools for suite files (offline: no key, no catalog, no network)."""

from __future__ import annotations

from bench.cli import cli


@cli.group("suite")
def suite_group() -> None:
    """Suite files: check one offline, print the JSON Schema, list or copy the bundled examples."""

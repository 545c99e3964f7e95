"""The README's examples and every command's help are real (a doc that lies is a bug)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.suites.parse import parse_suite

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


def test_readme_suites_parse() -> None:
    suites = [b for b in yaml_blocks() if b.startswith("name:")]
    assert len(suites) >= 2
    for text in suites:
        # resolve the example's relative image path as if it lived in data/suites/
        suite = parse_suite(text, ROOT / "data" / "suites" / "readme-example.yaml")
        assert suite.cases


def all_commands() -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, cmd in group.commands.items():
            out.append(prefix + (name,))
            if isinstance(cmd, click.Group):
                walk(cmd, prefix + (name,))

    walk(cli, ())
    return out


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p))
def test_every_command_has_help_and_is_in_the_readme(path: tuple[str, ...]) -> None:
    res = CliRunner().invoke(cli, [*path, "--help"])
    assert res.exit_code == 0 and "Usage:" in res.output
    if len(path) == 1 or path[0] != "local":
        assert f"orbench {' '.join(path)}" in README, f"README does not document `orbench {' '.join(path)}`"

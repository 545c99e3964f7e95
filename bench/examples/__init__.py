"""The bundled example suites (package data), for ``orbench suite examples`` and the dashboard.

The suites live here, inside the package, so a wheel or a non-editable ``pip install .``
ships them; in a checkout ``data/suites`` and ``data/images`` are symlinks to these
folders, so the README's paths (``data/suites/smoke.yaml``) keep working and there is
one copy only. ``images/`` sits beside ``suites/`` because suites name their images
relative to themselves (``../images/red-square.png``); a copy keeps that layout.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.errors import ConfigError

__all__ = ["EXAMPLES_DIR", "IMAGES_DIR", "SUITES_DIR", "Example", "copy_examples", "list_examples"]

EXAMPLES_DIR = Path(__file__).resolve().parent
SUITES_DIR = EXAMPLES_DIR / "suites"
IMAGES_DIR = EXAMPLES_DIR / "images"
DEMO_SUITE = "demo.yaml"
"""The demo (dashboard button, ``orbench demo``): 3 models x 40 checked requests, ~30 s on the sandbox."""
DEMO_CONCURRENCY = 6
DEMO_MIN_PASS_RATE = "0.8"
"""The constraint the demo's Decide opens with, so a new user sees verdicts, not "no constraints given"."""


@dataclass(frozen=True)
class Example:
    """One bundled suite: its file, its ``name:`` and its ``description:``."""

    file: str
    name: str
    description: str
    path: Path


def list_examples() -> list[Example]:
    """The bundled suites, by file name (read as YAML only: no validation, no catalog)."""
    out = []
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out.append(Example(path.name, str(doc.get("name", path.stem)), str(doc.get("description") or ""), path))
    return out


def copy_examples(dest: Path | str) -> list[Path]:
    """Copy the suites to DEST/suites and their images to DEST/images; return the files written.

    An identical file already there is left alone; a different one is never overwritten
    (ConfigError naming it), so a second copy into the same folder is harmless.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest}: not a directory")
    data = (".yaml", ".csv", ".jsonl", ".parquet")  # a suite's datasets: files sit beside it
    pairs = [(p, dest / "suites" / p.name) for p in sorted(SUITES_DIR.iterdir()) if p.suffix in data]
    pairs += [(p, dest / "images" / p.name) for p in sorted(IMAGES_DIR.iterdir()) if p.is_file()]
    for src, target in pairs:
        if target.exists() and not filecmp.cmp(src, target, shallow=False):
            raise ConfigError(f"{target} exists and differs from the bundled example; remove it or pick another DIR")
    written = []
    for src, target in pairs:
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        written.append(target)
    return written

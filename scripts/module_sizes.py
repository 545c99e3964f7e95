#!/usr/bin/env python3
"""Line counts of every module in bench/ and dashboard/, largest first, with the ~500 line mark.

    python scripts/module_sizes.py            # every module
    python scripts/module_sizes.py --over 400 # only the ones above 400 lines
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 500  # STYLE.md: modules under ~500 lines


def sizes(folders: tuple[str, ...] = ("bench", "dashboard")) -> list[tuple[int, str]]:
    """(lines, path relative to the checkout) for every .py file, largest first."""
    found = [(len(p.read_text(encoding="utf-8").splitlines()), p.relative_to(ROOT).as_posix())
             for folder in folders for p in (ROOT / folder).rglob("*.py")]
    return sorted(found, key=lambda item: (-item[0], item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--over", type=int, default=0, help="show only modules with more lines than this")
    args = parser.parse_args()
    rows = sizes()
    for lines, path in rows:
        if lines > args.over:
            print(f"{lines:6d}  {path}{'  (over ~' + str(LIMIT) + ')' if lines > LIMIT else ''}")
    total = sum(lines for lines, _ in rows)
    print(f"{total:6d}  total, {len(rows)} modules, {sum(lines > LIMIT for lines, _ in rows)} over {LIMIT}")


if __name__ == "__main__":
    main()

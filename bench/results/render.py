"""How listings leave the CLI: a table fitted to the terminal, or exact JSON, CSV or JSON lines.

Every listing takes the same options through :func:`output_options` (after
sqlite-utils' ``output_options``): ``--json``, ``--csv``, ``--nl`` and ``--wide``.
Machine formats carry every field with exact values (money as decimal strings);
the table is for people: money rounded with its unit, rates as percentages,
and the least important columns dropped until it fits the terminal. Kept free
of heavy imports: ``orbench --help`` loads this module.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import click

FORMATS = ("table", "json", "csv", "nl")
DEFAULT_WIDTH = 120  # off a terminal (a pipe, a CI log) with no COLUMNS set
GAP = "  "
KEY_PRIORITY = 5  # columns up to this priority shorten long names to stay; the rest need room


@dataclass(frozen=True)
class Output:
    """The chosen output: ``fmt`` is one of FORMATS; ``wide`` keeps every table column."""

    fmt: str = "table"
    wide: bool = False


@dataclass(frozen=True)
class Column:
    """One table column: the row key, its header, how a value reads, and how much it matters.

    ``priority``: lower is more important; the narrowest terminals keep priority 0 only.
    ``min_width`` > 0 lets a text column be shortened (middle ellipsis) down to it.
    """

    key: str
    label: str | None = None
    fmt: Callable[[Any], str] | None = None
    priority: int = 50
    min_width: int = 0
    align: str = "auto"  # "left", "right" or auto (numbers right)

    @property
    def header(self) -> str:
        return self.label if self.label is not None else self.key


# ------------------------------------------------------------------ emitting
def emit(rows: Sequence[dict[str, Any]], columns: Sequence[Column | str], output: Output,
         fields: Sequence[str] | None = None, table_rows: Sequence[dict[str, Any]] | None = None) -> None:
    """Print ``rows`` as ``output`` says. Machine formats carry ``fields`` (default: every key of
    the rows) with exact values; the table shows ``columns`` of ``table_rows`` (default ``rows``)."""
    if output.fmt == "table":
        text, hidden = fit_table(table_rows if table_rows is not None else rows, columns,
                                 None if output.wide else terminal_width())
        click.echo(text)
        if hidden:
            click.echo(hidden_note(hidden, terminal_width()), err=True)
        return
    keys = list(fields) if fields is not None else _all_keys(rows)
    click.echo(render_machine(rows, keys, output.fmt), nl=False)


def render_machine(rows: Sequence[dict[str, Any]], keys: Sequence[str], fmt: str) -> str:
    """JSON array, CSV or JSON lines of ``keys``; Decimals as exact strings, floats unrounded."""
    picked = [{k: r.get(k) for k in keys} for r in rows]
    if fmt == "json":
        return json.dumps(picked, indent=2, default=json_default) + "\n"
    if fmt == "nl":
        return "".join(json.dumps(r, default=json_default) + "\n" for r in picked)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(keys)
        for r in picked:
            w.writerow([exact_cell(r[k]) for k in keys])
        return buf.getvalue()
    raise ValueError(f"unknown output format {fmt!r}")


def _all_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    return list(keys)


def hidden_note(hidden: Sequence[str], width: int | None = None) -> str:
    """'note: 3 columns hidden to fit the terminal (a, b, c); --wide shows them', names if they fit."""
    n = f"{len(hidden)} column{'s' if len(hidden) != 1 else ''}"
    named = f"note: {n} hidden to fit the terminal ({', '.join(hidden)}); --wide shows them"
    if width is None or len(named) <= width:
        return named
    return f"note: {n} hidden to fit the terminal; --wide shows them"


def terminal_width() -> int:
    """COLUMNS if set, else the terminal's width, else DEFAULT_WIDTH (a pipe or a log)."""
    raw = os.environ.get("COLUMNS", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    try:
        if sys.stdout.isatty():
            return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError, AttributeError):
        pass
    return DEFAULT_WIDTH


# -------------------------------------------------------------------- tables
def fit_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column | str],
              width: int | None) -> tuple[str, list[str]]:
    """The table text and the headers of the columns left out to fit ``width`` (None: all fit).

    Columns are taken in priority order while they fit (text columns counted at their
    ``min_width``); the room left widens the shortened text columns again. Shown
    columns keep their given order."""
    cols = [c if isinstance(c, Column) else Column(c, priority=i) for i, c in enumerate(columns)]
    cells = [[_display(c, r.get(c.key)) for c in cols] for r in rows]
    natural = [max([len(c.header)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    floor = [min(n, max(c.min_width, len(c.header))) if c.min_width else n for c, n in zip(cols, natural)]
    keep = set(range(len(cols)))
    widths = natural
    if width is not None:
        keep, widths = _choose(cols, natural, floor, width)
    shown = sorted(keep)
    hidden = [cols[i].header for i in range(len(cols)) if i not in keep]
    right = {i: _right_aligned(cols[i], [row[i] for row in cells]) for i in shown}

    def line(values: list[str]) -> str:
        parts = [shorten(values[i], widths[i]) for i in shown]
        return GAP.join(v.rjust(widths[i]) if right[i] else v.ljust(widths[i])
                        for v, i in zip(parts, shown)).rstrip()

    lines = [line([c.header for c in cols]), GAP.join("-" * widths[i] for i in shown)]
    lines += [line(row) for row in cells]
    return "\n".join(lines), hidden


def _choose(cols: list[Column], natural: list[int], floor: list[int], width: int) -> tuple[set[int], list[int]]:
    """Columns by priority while they fit. Key columns (priority <= KEY_PRIORITY) may shorten
    text columns down to their ``min_width``; the others show only where text fits whole."""
    keep: set[int] = set()
    for i in sorted(range(len(cols)), key=lambda i: (cols[i].priority, i)):
        trial = keep | {i}
        sizes = floor if cols[i].priority <= KEY_PRIORITY else natural
        if not keep or _total(trial, sizes) <= width:  # the first column always shows
            keep = trial
    widths = list(floor)
    room = width - _total(keep, floor)
    for i in sorted(keep):  # give the room left back to shortened columns, in reading order
        grow = min(natural[i] - floor[i], max(room, 0))
        widths[i] += grow
        room -= grow
    return keep, widths


def _total(keep: set[int], sizes: list[int]) -> int:
    return sum(sizes[i] for i in keep) + len(GAP) * (len(keep) - 1)


def _right_aligned(col: Column, values: list[str]) -> bool:
    if col.align != "auto":
        return col.align == "right"
    filled = [v for v in values if v]
    return bool(filled) and all(_NUMERIC.match(v) for v in filled)


_NUMERIC = re.compile(r"^[-+]?\$?[0-9][0-9,]*(\.[0-9]+)?( %)?( \(.*\))?$")


def shorten(text_: str, width: int) -> str:
    """``text_`` cut to ``width`` with an ellipsis in the middle (both ends of a model id matter)."""
    if len(text_) <= width:
        return text_
    cut = text_.rfind(" [")
    if cut > 0 and text_.endswith("]") and width - (len(text_) - cut) >= 8:  # keep "[provider]" whole
        return shorten(text_[:cut], width - (len(text_) - cut)) + text_[cut:]
    if width <= 1:
        return text_[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return text_[:head] + "…" + (text_[-tail:] if tail else "")


def _display(col: Column, value: Any) -> str:
    if isinstance(value, str) and col.fmt is None:
        return value
    return (col.fmt or auto)(value)


# --------------------------------------------------------- value formatters
def auto(v: Any) -> str:
    """A readable cell for a value of any type (the default column format)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    if isinstance(v, float):
        return num(v)
    if isinstance(v, datetime):
        return when(v)
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def text(v: Any) -> str:
    return "" if v is None else str(v)


def num(v: Any) -> str:
    """A measured number at a precision a person reads: 1,234 / 123 / 12.3 / 1.23 / 0.0123."""
    if v is None:
        return ""
    f = float(v)
    if f != f:  # NaN
        return "n/a"
    a = abs(f)
    if a >= 100:
        return f"{f:,.0f}"
    if a >= 10:
        return f"{f:.1f}"
    if a >= 0.01 or a == 0:
        return f"{f:.2f}"
    return f"{f:.2g}"


def integer(v: Any) -> str:
    return "" if v is None else f"{int(v):,}"


def rate(v: Any) -> str:
    """A fraction as a percentage: 0.02 -> '2.0 %'."""
    return "" if v is None else f"{100 * float(v):.1f} %"


def pct(v: Any) -> str:
    """A value already in percent, signed: 12.34 -> '+12.3 %'."""
    return "" if v is None else f"{float(v):+.1f} %"


def usd(v: Any) -> str:
    """Money with its unit: '$1.23' from a dollar up, two significant digits below ('$0.000075')."""
    if v is None:
        return ""
    d = v if isinstance(v, Decimal) else Decimal(str(v))
    if d == 0:
        return "$0"
    sign = "-" if d < 0 else ""
    d = abs(d)
    if d >= 1:
        return f"{sign}${d:,.2f}"
    exp = d.adjusted()  # 0.000075 -> -5
    places = max(2, 1 - exp)
    return f"{sign}${d:.{places}f}"


def when(v: object) -> str:
    """A timestamp in UTC to the second: '2026-12-02 16:01:26Z'."""
    if v is None:
        return ""
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = v.astimezone(timezone.utc)
        return v.strftime("%Y-%m-%d %H:%M:%SZ")
    return str(v)


def exact_cell(v: Any) -> str:
    """A CSV cell that loses nothing: Decimals positional and exact, floats as repr."""
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, default=json_default)
    return str(v)


def json_default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Every column, unfitted (Markdown-like contexts and callers that fit on their own)."""
    return fit_table(rows, columns, None)[0]


def cell_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.0f}"
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)

"""YAML with lines: compose a suite file once and read it through a cursor that knows where it is.

``Source`` is the file (name, line map, referenced files); ``At`` is a cursor (value +
path) whose readers raise ``SuiteError`` at that place, so every problem is one line that
names the file, the place and the YAML line. Aliases that expand far beyond what was
written, duplicate keys and non-string keys are refused before anything is constructed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bench.errors import SuiteError
from bench.suites.checks import describe_value, did_you_mean

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_STR_TAG = "tag:yaml.org,2002:str"
# Aliases may repeat what was written at most this much (shared defaults are far below it).
ALIAS_EXPANSION_FACTOR = 10
ALIAS_EXPANSION_FLOOR = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NO_HINTS: Mapping[str, str] = {}

YPath = tuple[str | int, ...]
T = TypeVar("T")


# ----------------------------------------------------------------- YAML with lines
@dataclass
class Source:
    """The file being parsed: its name, line map, and what parsing collected."""

    name: str
    base_dir: Path
    root_place: str = "top level"
    lines: dict[YPath, tuple[int, int]] = field(default_factory=dict)  # path -> (key line, value line)
    files: dict[str, str] = field(default_factory=dict)
    judge_models: dict[str, str] = field(default_factory=dict)

    def place(self, path: YPath, *, key_line: bool = False) -> str:
        """``cases[2].prompt (line 14)``; the nearest enclosing line when unknown."""
        place = _format_path(path) or self.root_place
        for depth in range(len(path), -1, -1):
            if path[:depth] in self.lines:
                lines = self.lines[path[:depth]]
                return f"{place} (line {lines[0] if key_line and depth == len(path) else lines[1]})"
        return place

    def error(
        self, path: YPath, problem: str, *, key_line: bool = False, line: int | None = None
    ) -> SuiteError:
        """One line; ``line`` overrides the map (used before the map exists)."""
        place = self.place(path, key_line=key_line)
        if line is not None:
            place = f"{_format_path(path) or self.root_place} (line {line})"
        text = f"{self.name}: {place}: {problem}" if place else f"{self.name}: {problem}"
        return SuiteError(" ".join(text.split("\n")))

    def read_bytes(self, ref: str) -> bytes:
        """A file referenced by the suite (relative to it); remembered for the hash."""
        data = (self.base_dir / ref).read_bytes()
        self.files[ref] = hashlib.sha256(data).hexdigest()
        return data


def _format_path(path: YPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def compose(text: str, src: Source) -> Any:
    """Parse once: the data, and (into ``src.lines``) the line of every value."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, src)
        _check_keys(node, (), src, ())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise SuiteError(f"{src.name}: invalid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SuiteError(" ".join(f"{src.name}: invalid YAML: {exc}".split())) from None
    finally:
        loader.dispose()
    _map_lines(node, (), src.lines)
    return data


def _check_expansion(root: yaml.Node, src: Source) -> None:
    """Refuse aliases that expand far beyond what was written (the "billion laughs" bomb).

    An alias is the same node object met again, so counting each node once gives what
    was written, and summing children gives what every later walk (key checks, line map,
    hashing, the engine's copies) would visit. Both counts are linear in distinct nodes.
    """
    expanded: dict[int, int] = {}
    written = 0

    def size(node: yaml.Node) -> int:
        nonlocal written
        known = expanded.get(id(node))
        if known is not None:
            return known
        expanded[id(node)] = 1  # in progress: a recursive alias counts once (reported later)
        written += 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1 + sum(size(child) for child in children)
        expanded[id(node)] = total
        return total

    total = size(root)
    limit = max(ALIAS_EXPANSION_FLOOR, ALIAS_EXPANSION_FACTOR * written)
    if total > limit:
        raise src.error((), f"YAML aliases expand {written} written nodes to {total} "
                            f"(more than {limit}): refusing it (an alias bomb?); write the values out")


def _check_keys(node: yaml.Node, path: YPath, src: Source, stack: tuple[yaml.Node, ...]) -> None:
    """Before construction (which keeps the last of duplicate keys silently)."""
    if any(node is seen for seen in stack):
        raise src.error(path, "recursive YAML alias", line=node.start_mark.line + 1)
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_keys(item, path + (i,), src, stack + (node,))
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key, value in node.value:
        line = key.start_mark.line + 1
        if key.tag == _MERGE_TAG:
            _check_keys(value, path, src, stack + (node,))
            continue
        if not isinstance(key, yaml.ScalarNode) or key.tag != _STR_TAG:
            shown = key.value if isinstance(key, yaml.ScalarNode) else "a collection"
            raise src.error(path, f"keys must be strings, got {shown}", line=line)
        if key.value in seen:
            problem = f"duplicate key {key.value!r} (first on line {seen[key.value]})"
            raise src.error(path + (key.value,), problem, line=line)
        seen[key.value] = line
        _check_keys(value, path + (key.value,), src, stack + (node,))


def _map_lines(node: yaml.Node, path: YPath, lines: dict[YPath, tuple[int, int]]) -> None:
    """After construction, so merge keys (<<) are already flattened into the node."""
    if not path:
        lines[()] = (node.start_mark.line + 1,) * 2
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[path + (key.value,)] = (key.start_mark.line + 1, value.start_mark.line + 1)
            _map_lines(value, path + (key.value,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = (item.start_mark.line + 1,) * 2
            _map_lines(item, path + (i,), lines)


@dataclass(frozen=True)
class At:
    """A value and where it sits; its readers validate and raise SuiteError there."""

    src: Source
    path: YPath
    value: Any

    def fail(self, problem: str, *, key_line: bool = False) -> SuiteError:
        return self.src.error(self.path, problem, key_line=key_line)

    def expected(self, wanted: str) -> SuiteError:
        return self.fail(f"expected {wanted}, got {describe_value(self.value)}")

    def at(self, *keys: str | int) -> At:
        value = self.value
        for key in keys:
            value = value[key]
        return At(self.src, self.path + keys, value)

    def place(self) -> str:
        return self.src.place(self.path)

    def fields(
        self,
        allowed: Sequence[str],
        required: Sequence[str] = (),
        *,
        what: str = "a mapping",
        hints: Mapping[str, str] = _NO_HINTS,
    ) -> dict[str, At]:
        """The mapping's entries; unknown keys (with a suggestion) and missing ones fail.
        ``hints`` maps a known mistake to its fix when difflib would guess wrong."""
        if not isinstance(self.value, dict):
            raise self.expected(f"{what}")
        for key in self.value:
            if key not in allowed:
                hint = f" (did you mean {hints[key]!r}?)" if key in hints else did_you_mean(key, allowed)
                raise self.at(key).fail(f"unknown key {key!r}{hint}", key_line=True)
        for key in required:
            if key not in self.value:
                raise self.fail(f"missing required key {key!r}")
        return {key: self.at(key) for key in self.value}

    @staticmethod
    def fields_of(allowed: Sequence[str]) -> Callable[[At], dict[str, At]]:
        return lambda at: at.fields(allowed)

    def entries(self, rule: str, pattern: re.Pattern[str] = _NAME) -> list[tuple[str, At]]:
        """A mapping of user-chosen names (variants, endpoints, vars)."""
        if not isinstance(self.value, dict):
            raise self.expected("a mapping")
        for key in self.value:
            if not pattern.fullmatch(key):
                raise self.at(key).fail(f"invalid name {key!r}: {rule}", key_line=True)
        return [(key, self.at(key)) for key in self.value]

    def items(self, what: str, *, allow_empty: bool = False) -> list[At]:
        if not isinstance(self.value, list):
            raise self.expected(f"a list of {what}s")
        if not self.value and not allow_empty:
            raise self.fail(f"expected at least one {what}")
        return [self.at(i) for i in range(len(self.value))]

    def text(self) -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            raise self.expected("a non-empty string")
        return self.value

    def strings(self) -> list[str]:
        return [item.text() for item in self.items("string", allow_empty=True)]

    def integer(self, minimum: int = 1) -> int:
        value = self.value
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise self.expected(wanted)

    def number(self, low: float, high: float | None = None) -> float:
        value = self.value
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and low <= value and (high is None or value <= high):
            return float(value)
        wanted = f"a number >= {low:g}" if high is None else f"a number between {low:g} and {high:g}"
        raise self.expected(wanted)

    def money(self) -> Decimal:
        """A non-negative amount in USD, as a number or a numeric string."""
        value = self.value
        try:
            numeric = isinstance(value, int | float | str) and not isinstance(value, bool)
            amount = Decimal(str(value)) if numeric else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount < 0:
            raise self.expected("a non-negative number")
        return amount

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.expected("true or false")
        return self.value

    def choice(self, options: Sequence[str]) -> str:
        if self.value not in options:
            hint = did_you_mean(self.value, options) if isinstance(self.value, str) else ""
            raise self.fail(f"expected one of {', '.join(options)}, got {describe_value(self.value)}{hint}")
        return str(self.value)


def opt(fields: Mapping[str, At], key: str, read: Callable[[At], T], default: T) -> T:
    return read(fields[key]) if key in fields else default

"""A suite's ``datasets:`` list: CSV, JSONL or Parquet rows expanded into cases.

Each item names a file (relative to the suite) and templates over its columns::

    datasets:
      - path: trivia.csv                 # .csv, .jsonl (.ndjson) or .parquet
        id: "q{row}"                     # default "<file stem>-{row}"; {row} is the 0-based row number
        prompt: "{question}"             # or  messages: "{chat}"  (a column holding a chat list)
        system: "Answer briefly."
        checks: [{icontains: "{answer}"}]
        sample: 50                       # rows drawn without replacement, seeded by the suite's seed:
        tags: ["{category}"]             # and the other case keys: max_tokens, temperature, ...

Templates use the suite's placeholder rule (``bench.suites._substituted``): ``{name}`` is a
column (or a suite var, or ``row``), an unknown name is an error at the YAML line, ``{{`` and
``}}`` are literal braces. Templates are compiled once per item and checked against the
file's schema before any row is read, so a typo costs no I/O.

Rows are read lazily with polars: only the columns the templates name, the sample drawn
(by row number, with Python's ``random`` so a seed means the same rows on every polars
version) before anything is collected, and the collected frame walked in slices, so a
100,000-row file never exists as 100,000 Python row dicts at once. CSV columns are read as
text (no type guessing: a column that looks numeric for 100 rows and then is not would
otherwise fail halfway). A bad value is one line naming the file, the row and the column.

This module sits beside ``bench.suites.parse`` and borrows the cursor (``At``) and the
case parsing of ``bench.suites.cases``; ``parse_suite`` imports it at call time (it imports
polars, which a suite without datasets never needs).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from bench.suites.cases import (
    PLACEHOLDER,
    ROLES,
    Shared,
    parse_case_checks,
    parse_response_format,
    parse_tool_choice,
    parse_tools,
    read_temperature,
    read_threshold,
    resolve_judge,
)
from bench.suites.checks import Check, CheckSpecError, describe_value, parse_checks
from bench.suites.cursor import At, opt
from bench.suites.model import Case, JudgeSettings

_KINDS = {".csv": "CSV", ".jsonl": "JSONL", ".ndjson": "JSONL", ".parquet": "Parquet"}
_KEYS = ("path", "id", "prompt", "messages", "system", "checks", "sample", "description",
         "max_tokens", "temperature", "tags", "pass_threshold", "tools", "tool_choice",
         "response_format")  # fmt: skip
ROW = "row"  # the placeholder of the 0-based row number; it shadows a column of that name
_INDEX = "__orbench_row"
_SLICE_ROWS = 5_000  # rows turned into Python values at a time
_MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")
_WHOLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


# ----------------------------------------------------------------- templates
@dataclass(frozen=True)
class _Template:
    """A text field compiled once: literal, name, literal, name, ..., literal."""

    at: At
    parts: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.parts[1::2]

    def render(self, values: Mapping[str, str]) -> str:
        if len(self.parts) == 1:
            return self.parts[0]
        out = list(self.parts)
        for i in range(1, len(out), 2):
            out[i] = values[out[i]]
        return "".join(out)


def _compile(at: At, known: Mapping[str, str | None], file: str) -> _Template:
    """``known`` maps a column (or ``row``) to None and a suite var to its value (inlined)."""
    text, parts, literal, pos = at.text(), [], "", 0
    for match in PLACEHOLDER.finditer(text):
        literal += text[pos : match.start()]
        pos = match.end()
        token, doubled, name = match.group(0), match.group("doubled"), match.group("name")
        if doubled is not None:
            if doubled in known:
                raise at.fail(f"{token} is literal braces, not a placeholder: write {{{doubled}}} "
                              f"to substitute {doubled!r}")
            literal += "{" + token[2:-2] + "}"
        elif name is None:
            literal += token[0]
        elif name not in known:
            columns = ", ".join(k for k, v in known.items() if v is None and k != ROW)
            raise at.fail(f"unknown placeholder {token}: {file} has no column {name!r} "
                          f"(columns: {columns or 'none'}; also {{row}} and the suite's vars; "
                          "write {{ and }} for literal braces)")
        elif known[name] is not None:
            literal += str(known[name])
        else:
            parts += [literal, name]
            literal = ""
    parts.append(literal + text[pos:])
    return _Template(at, tuple(parts))


def _compile_tree(at: At, known: Mapping[str, str | None], file: str) -> Any:
    """Every string in a checks value becomes a template; the shape is kept."""
    if isinstance(at.value, str):
        return _compile(at, known, file) if at.value.strip() else at.value
    if isinstance(at.value, list):
        return [_compile_tree(at.at(i), known, file) for i in range(len(at.value))]
    if isinstance(at.value, dict):
        return {k: _compile_tree(at.at(k), known, file) for k in at.value}
    return at.value


def _render_tree(tree: Any, values: Mapping[str, str]) -> Any:
    if isinstance(tree, _Template):
        return tree.render(values)
    if isinstance(tree, list):
        return [_render_tree(item, values) for item in tree]
    if isinstance(tree, dict):
        return {k: _render_tree(v, values) for k, v in tree.items()}
    return tree


class _RowChecks:
    """A checks template parsed per distinct combination of the columns it reads
    (a label column repeats; a 100,000-row file then parses a handful of times)."""

    def __init__(self, tree: Any) -> None:
        self.render = _renderer(tree)
        self.names = tuple(sorted(_tree_names(tree)))
        self.parsed: dict[tuple[str, ...], tuple[Check, ...]] = {}


def _renderer(tree: Any) -> Callable[[Mapping[str, str]], Any]:
    """``_render_tree`` as closures built once (the per-row walk was most of the cost)."""
    if isinstance(tree, _Template):
        return tree.render
    if isinstance(tree, list):
        items = [_renderer(item) for item in tree]
        return lambda values: [render(values) for render in items]
    if isinstance(tree, dict):
        pairs = [(key, _renderer(value)) for key, value in tree.items()]
        return lambda values: {key: render(values) for key, render in pairs}
    return lambda _: tree


def _tree_names(tree: Any) -> set[str]:
    if isinstance(tree, _Template):
        return set(tree.names)
    if isinstance(tree, list):
        return set().union(*map(_tree_names, tree)) if tree else set()
    if isinstance(tree, dict):
        return _tree_names(list(tree.values()))
    return set()


# ----------------------------------------------------------------- one item
@dataclass(frozen=True)
class _Item:
    """One ``datasets:`` entry with its templates compiled and its static fields read."""

    at: At
    file: str  # as written in the suite (relative to it)
    id: _Template
    prompt: _Template | None
    messages: str | None  # the column holding a chat list
    system: _Template | None
    description: _Template | None
    tags: tuple[_Template, ...]
    checks: tuple[Check, ...] | _RowChecks  # parsed once when no template names a column
    judge: JudgeSettings  # fills a judge check's unset model and rubric
    fixed: Mapping[str, Any]  # max_tokens, temperature, tools, ... (the same for every row)

    def columns(self) -> list[str]:
        """The file's columns the templates read (``row`` is not one)."""
        names: set[str] = set(self.id.names) | _tree_names(list(self.tags))
        names |= set(self.checks.names) if isinstance(self.checks, _RowChecks) else set()
        for template in (self.prompt, self.system, self.description):
            names |= set(template.names) if template else set()
        names |= {self.messages} if self.messages else set()
        return sorted(names - {ROW})


def parse_datasets(at: At, shared: Shared, seed: int, taken: dict[str, str]) -> list[Case]:
    """Every item's rows as cases; ``taken`` (case id -> where) catches duplicate ids."""
    cases: list[Case] = []
    for item in at.items("dataset"):
        for file, row, case in _expand(item, shared, seed):
            if case.id in taken:
                key = "id" if "id" in item.value else "path"
                raise item.at(key).fail(f"{file} row {row}: duplicate case id {case.id!r} (also {taken[case.id]})")
            taken[case.id] = f"{file} row {row}"
            cases.append(case)
    return cases


def _expand(at: At, shared: Shared, seed: int) -> Iterator[tuple[str, int, Case]]:
    f = at.fields(_KEYS, ("path",), what="a mapping with path and prompt (or messages)")
    file, path = _data_path(f["path"])
    frame = _scan(path)
    schema = _schema(f["path"], frame, file)
    item = _parse_item(at, f, file, schema, shared)
    if item.messages is not None and item.messages not in schema:  # templates were checked as compiled
        raise f["messages"].fail(f"{file} has no column {item.messages!r} (columns: {', '.join(schema)})")
    sample = opt(f, "sample", lambda s: s.integer(), None)
    for row, values in _rows(f["path"], frame, file, item.columns(), sample, seed):
        yield file, row, _case(item, row, values, shared)
    at.src.files[file] = _digest(path)


def _data_path(at: At) -> tuple[str, Path]:
    file = at.text()
    path = at.src.base_dir / file
    if path.suffix.lower() not in _KINDS:
        raise at.fail(f"{file!r}: expected a .csv, .jsonl or .parquet file")
    if not path.is_file():
        raise at.fail(f"cannot read {file!r} ({path}): no such file")
    return file, path


def _parse_item(at: At, f: Mapping[str, At], file: str, schema: Sequence[str], shared: Shared) -> _Item:
    known: dict[str, str | None] = {**shared.vars, **dict.fromkeys(schema), ROW: None}
    if ("prompt" in f) == ("messages" in f):
        raise at.fail("give 'prompt' or 'messages' (a column holding a chat list), one of them")
    id_at = f.get("id") or At(at.src, at.path + ("path",), Path(file).stem.replace("{", "{{").replace("}", "}}")
                               + "-{row}")  # fmt: skip
    tools = opt(f, "tools", parse_tools, None)
    tree: Any = opt(f, "checks", lambda c: _compile_tree(c, known, file), [])
    checks: tuple[Check, ...] | _RowChecks = _RowChecks(tree)
    if not _tree_names(tree):
        checks = parse_case_checks(At(at.src, at.path + ("checks",), _render_tree(tree, {})), shared.judge)
    fixed = {
        "tools": tools,
        "tool_choice": opt(f, "tool_choice", lambda c: parse_tool_choice(c, tools), None),
        "response_format": opt(f, "response_format", parse_response_format, None),
        "max_tokens": opt(f, "max_tokens", At.integer, shared.max_tokens),
        "temperature": opt(f, "temperature", read_temperature, shared.temperature),
        "pass_threshold": opt(f, "pass_threshold", read_threshold, shared.pass_threshold),
    }
    compile_opt: Callable[[str], _Template | None]  # a lambda alone is untyped to mypy
    compile_opt = lambda key: _compile(f[key], known, file) if key in f else None  # noqa: E731
    return _Item(
        at=at, file=file, id=_compile(id_at, known, file), prompt=compile_opt("prompt"),
        messages=_whole_column(f["messages"]) if "messages" in f else None,
        system=compile_opt("system"), description=compile_opt("description"),
        tags=tuple(_compile(t, known, file) for t in f["tags"].items("tag", allow_empty=True)) if "tags" in f else (),
        checks=checks, judge=shared.judge, fixed=fixed,
    )  # fmt: skip


def _whole_column(at: At) -> str:
    match = _WHOLE.fullmatch(at.text().strip())
    if match is None:
        raise at.expected('one column placeholder like "{messages}" (a column holding a chat list)')
    return match.group(1)


# ----------------------------------------------------------------- reading
def _scan(path: Path) -> pl.LazyFrame:
    kind = _KINDS[path.suffix.lower()]
    if kind == "CSV":  # every column as text (no guessing that breaks at row 101); a blank cell is ""
        return pl.scan_csv(path, infer_schema=False, empty_string_is_null=False)
    if kind == "JSONL":
        return pl.scan_ndjson(path, infer_schema_length=None)
    return pl.scan_parquet(path)


def _schema(at: At, frame: pl.LazyFrame, file: str) -> list[str]:
    try:
        return list(frame.collect_schema().names())
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise at.fail(_unreadable(file, exc)) from None


def _unreadable(file: str, exc: BaseException) -> str:
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return f"cannot read {file!r} as {_KINDS[Path(file).suffix.lower()]}: {first}"


def _rows(
    at: At, frame: pl.LazyFrame, file: str, columns: list[str], sample: int | None, seed: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, {column: value}) for the sampled rows, a slice of Python values at a time."""
    indexed = frame.with_row_index(_INDEX).select(_INDEX, *columns)
    try:
        n_rows = int(frame.select(pl.len()).collect().item())
        if n_rows == 0:
            raise at.fail(f"{file!r} has no rows")
        if sample is not None:
            if sample > n_rows:
                raise at.fail(f"sample {sample} is more than the {n_rows} rows of {file!r}")
            picked = sorted(random.Random(seed).sample(range(n_rows), sample))
            indexed = indexed.filter(pl.col(_INDEX).is_in(picked))
        collected = indexed.collect()
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise at.fail(_unreadable(file, exc)) from None
    for part in collected.iter_slices(_SLICE_ROWS):
        for values in part.iter_rows(named=True):
            yield int(values.pop(_INDEX)), values


def _digest(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# ----------------------------------------------------------------- one row
def _case(item: _Item, row: int, raw: dict[str, Any], shared: Shared) -> Case:
    values = {ROW: str(row)}
    for column, value in raw.items():
        if column != item.messages:
            values[column] = _text(item, row, column, value)
    case_id = _nonempty(item, item.id, row, values, "id")
    if item.messages is not None:
        messages = _messages(item, row, item.messages, raw[item.messages])
    else:
        assert item.prompt is not None
        messages = [{"role": "user", "content": _nonempty(item, item.prompt, row, values, "prompt")}]
    if item.system is not None:
        if any(m["role"] == "system" for m in messages):
            raise _row_error(item, row, item.messages, "the chat already has a system message; drop 'system'")
        messages.insert(0, {"role": "system", "content": _nonempty(item, item.system, row, values, "system")})
    return Case(
        id=case_id, messages=messages, **item.fixed,
        tags=tuple(_nonempty(item, t, row, values, "tags") for t in item.tags),
        checks=shared.checks + _row_checks(item, row, values),
        description=item.description.render(values) if item.description else None,
    )  # fmt: skip


def _row_error(item: _Item, row: int, column: str | None, problem: str, key: str | None = None) -> Exception:
    where = f"{item.file} row {row}" + (f", column {column!r}" if column else "")
    at = item.at.at(key) if key and key in item.at.value else item.at
    return at.fail(f"{where}: {problem}")


def _text(item: _Item, row: int, column: str, value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        raise _row_error(item, row, column, "the value is empty (null)")
    raise _row_error(item, row, column, f"expected text or a number, got {describe_value(value)}")


def _nonempty(item: _Item, template: _Template, row: int, values: Mapping[str, str], key: str) -> str:
    text = template.render(values)
    if not text.strip():
        columns = ", ".join(repr(n) for n in template.names if n != ROW) or "none"
        raise _row_error(item, row, None, f"{key} is empty (from column {columns})", key)
    return text


def _row_checks(item: _Item, row: int, values: Mapping[str, str]) -> tuple[Check, ...]:
    spec = item.checks
    if isinstance(spec, tuple):  # no column in them: parsed once
        return spec
    key = tuple(values[n] for n in spec.names)
    found = spec.parsed.get(key)
    if found is not None:
        return found
    rendered = spec.render(values)
    try:
        checks = parse_checks(rendered, read_bytes=item.at.src.read_bytes)
    except CheckSpecError as exc:
        columns = ", ".join(repr(n) for n in spec.names if n != ROW)
        where = f"{item.file} row {row}, column {columns}"
        raise item.at.src.error(item.at.path + ("checks", *exc.where), f"{where}: {exc.problem}") from None
    if any(c.kind == "judge" for c in checks):
        at = At(item.at.src, item.at.path + ("checks",), rendered)
        checks = tuple(resolve_judge(at.at(i), c, item.judge) if c.kind == "judge" else c
                       for i, c in enumerate(checks))  # fmt: skip
    found = checks
    if ROW not in spec.names:  # keyed by the row number, a cache would only grow
        spec.parsed[key] = found
    return found


def _messages(item: _Item, row: int, column: str, value: Any) -> list[dict[str, Any]]:
    """A chat list from a column: JSON text, or a list of structs (JSONL, Parquet)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _row_error(item, row, column, f"not a JSON chat list ({exc.msg})") from None
    if not isinstance(value, list) or not value:
        raise _row_error(item, row, column, f"expected a non-empty list of messages, got {describe_value(value)}")
    return [_message(item, row, column, i, m) for i, m in enumerate(value)]


def _message(item: _Item, row: int, column: str, i: int, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _row_error(item, row, column, f"message {i}: expected a mapping {{role, content}}, "
                                            f"got {describe_value(raw)}")
    message = {k: v for k, v in raw.items() if v is not None}  # a struct's absent fields are None
    unknown = sorted(set(message) - set(_MESSAGE_KEYS))
    if unknown:
        raise _row_error(item, row, column, f"message {i}: unknown key {unknown[0]!r}")
    if message.get("role") not in ROLES:
        raise _row_error(item, row, column, f"message {i}: role must be one of {', '.join(ROLES)}, "
                                            f"got {describe_value(message.get('role'))}")
    content = message.get("content")
    if not (isinstance(content, str) and content.strip()) and not isinstance(content, list) \
            and "tool_calls" not in message:
        raise _row_error(item, row, column, f"message {i}: content is empty or not text")
    return message

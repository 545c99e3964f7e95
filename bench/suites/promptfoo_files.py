"""Helpers of ``bench.suites.promptfoo``: reading its files (YAML/JSON, CSV test rows), the asserts
beyond the issue's table that orbench's checks express exactly, and the text rules
(``{{ var }}`` rendering, brace escaping, readable ids).

Kept apart so the converter reads as the mapping it is; nothing here knows suites.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from bench.errors import ConfigError

VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")  # Nunjucks {{ var }}


def extra_checks(kind: str, value: Any) -> list[dict[str, Any]] | None:
    """Asserts beyond the issue's table that orbench's checks express exactly."""
    values = value if isinstance(value, list) else [value]
    if kind in ("contains-any", "icontains-any") and all(isinstance(v, str) for v in values):
        flags = "(?i)" if kind.startswith("i") else ""
        return [{"regex": flags + "|".join(re.escape(v) for v in values)}]
    if kind in ("contains-all", "icontains-all") and all(isinstance(v, str) for v in values):
        return [{kind.split("-")[0]: v} for v in values]
    if kind == "starts-with" and isinstance(value, str):
        return [{"regex": r"^\s*" + re.escape(value)}]
    return None


def csv_test(row: Mapping[str, str]) -> dict[str, Any]:
    """A promptfoo CSV row: columns are vars; ``__expected*`` are asserts written as
    ``type: value`` (plain text means equals); ``__description``, ``__threshold``."""
    test: dict[str, Any] = {"vars": {}, "assert": []}
    for column, cell in row.items():
        cell = cell or ""
        if column.startswith("__expected") and cell.strip():
            test["assert"].append(csv_assert(cell))
        elif column == "__description" and cell.strip():
            test["description"] = cell
        elif column == "__threshold" and cell.strip():
            test["threshold"] = float(cell)
        elif not column.startswith("__"):
            test["vars"][column] = cell
    return test


def csv_assert(cell: str) -> dict[str, Any]:
    kind, sep, rest = cell.partition(":")
    kind = kind.strip()
    if sep and re.fullmatch(r"[a-z][a-z-]*", kind):
        kind = {"grade": "llm-rubric", "fn": "javascript", "eval": "javascript"}.get(kind, kind)
        if kind in ("latency", "cost"):
            return {"type": kind, "threshold": float(rest)}
        return {"type": kind, "value": rest.strip()}
    if cell.strip() in ("is-json", "contains-json"):
        return {"type": cell.strip()}
    return {"type": "equals", "value": cell}


def read_text(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def read_structured(path: Path, where: str) -> Any:
    text = read_text(path, where)
    try:
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = " ".join(str(exc).split())
        raise ConfigError(f"{where}: {path.name} is not valid {path.suffix.lstrip('.').upper()}: {first}") from None


def render(value: Any, variables: Mapping[str, str]) -> Any:
    """Assert values are templates in promptfoo too: rendered now, with the test's vars."""
    if not isinstance(value, str):
        return value
    return VAR.sub(lambda m: variables.get(m.group(1), ""), value)


def escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def var_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def slug(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].strip("-")


def unique(keys: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
        out.append(key if seen[key] == 1 else f"{key}-{seen[key]}")
    return out

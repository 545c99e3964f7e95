"""docs/schema.md documents every table, view and column of a freshly migrated database."""

from __future__ import annotations

import re
from pathlib import Path

from bench.store.store import Store

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "schema.md"
HEADING = re.compile(r"^### `([a-z_][a-z0-9_]*)`\s*$")
INHERIT = re.compile(r"^Columns: every column of `([a-z_][a-z0-9_]*)`")
ROW = re.compile(r"^\| `([a-z_][a-z0-9_]*)` \| ([^|]+) \|")


def documented() -> dict[str, dict[str, str]]:
    """{table or view: {column: documented type}}, with 'every column of `X`' expanded."""
    sections: dict[str, dict[str, str]] = {}
    inherits: dict[str, str] = {}
    current = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if m := HEADING.match(line):
            current = m.group(1)
            sections[current] = {}
        elif current and (m := INHERIT.match(line)):
            inherits[current] = m.group(1)
        elif current and (m := ROW.match(line)):
            sections[current][m.group(1)] = m.group(2).strip()
    for name, parent in inherits.items():
        sections[name] = {**sections[parent], **sections[name]}
    return sections


def schema(tmp_path: Path) -> dict[str, dict[str, str]]:
    store = Store(tmp_path / "fresh.duckdb")
    store.init()
    rows = store.query("SELECT table_name, column_name, data_type FROM information_schema.columns "
                       "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").rows()
    out: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        out.setdefault(table, {})[column] = kind
    return out


def _same_type(doc: str, db: str) -> bool:
    return doc.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE") == db


def test_every_table_view_and_column_is_documented(tmp_path: Path) -> None:
    docs, db = documented(), schema(tmp_path)
    missing_tables = sorted(set(db) - set(docs))
    assert not missing_tables, f"docs/schema.md has no section for {missing_tables}"
    missing = [f"{t}.{c}" for t, cols in db.items() for c in cols if c not in docs[t]]
    assert not missing, f"docs/schema.md does not document {missing}"


def test_documented_columns_exist_with_their_types(tmp_path: Path) -> None:
    """Docs that outlive a column, or name the wrong type, fail too."""
    docs, db = documented(), schema(tmp_path)
    stale = sorted(set(docs) - set(db))
    assert not stale, f"docs/schema.md documents tables that do not exist: {stale}"
    wrong = [f"{t}.{c}: documented {k}, is {db[t].get(c)}" for t, cols in docs.items()
             for c, k in cols.items() if c not in db[t] or not _same_type(k, db[t][c])]
    assert not wrong, wrong


def test_the_docs_name_both_views_and_a_unit_for_every_measure(tmp_path: Path) -> None:
    docs = documented()
    assert {"requests_current", "runs_summary"} <= set(docs)
    text = DOC.read_text(encoding="utf-8")
    for line in text.splitlines():
        m = ROW.match(line)
        if m and m.group(1).endswith(("_ms", "_usd", "_tokens", "_tps")):
            unit = line.split("|")[3].strip()
            assert unit, f"no unit for {m.group(1)}: {line}"

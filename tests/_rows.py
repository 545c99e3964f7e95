"""Rows into a real Store the way a run writes them (``bench.store.sink``): journal, fsync, ingest.

Tests seed databases through this path, not a test-only writer, so what they check is what
production does: each row is journaled (``Store.journal_line``), the journal fsynced
(``sync_journal``) and moved into DuckDB by ``ingest_journal``, which merges per request.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.records import RequestRow
from bench.store.store import Store


def journal_rows(store: Store, rows: Sequence[RequestRow]) -> list[str]:
    """Journal and fsync the rows (durable, not yet in DuckDB); returns their runs."""
    for row in rows:
        store.journal_line(row)
    runs = sorted({r.run_id for r in rows})
    for run_id in runs:
        store.sync_journal(run_id)
    return runs


def write_rows(store: Store, rows: Sequence[RequestRow]) -> int:
    """Journal the rows, then ingest their runs' journals; returns the rows written to DuckDB."""
    return sum(store.ingest_journal(run_id) for run_id in journal_rows(store, rows))

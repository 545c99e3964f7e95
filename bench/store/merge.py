"""The idempotent merge of request rows (the store's design point 3): ``merge_rows``.

The one way request rows enter a DuckDB file: the journal ingest (``Store``) and the team
store's pull (``bench.store.team.pull``) both call it.

Per (run_id, request_idx) the row that ranks highest wins, among the batch and the stored
row; a row of another session that loses, and had been sent, moves to
``superseded_requests`` so the money paid for it stays on the run. Runs inside the
caller's write transaction; ``_orbench_journal`` records how much of each journal is in.
"""

from __future__ import annotations

import duckdb
import polars as pl

from bench.records import FINISHED_OUTCOMES, REQUEST_COLUMNS
from bench.store.connection import _quoted
from bench.store.runs import _drop_aggregates

_COLS = _quoted(REQUEST_COLUMNS)
_C_COLS = ", ".join(f'c."{c}"' for c in REQUEST_COLUMNS)
# The merge (design point 3). Per (run_id, request_idx) the row that ranks highest
# wins, among the batch and the stored row: settled first (answered, maybe paid:
# never replaced; among settled rows the first session's), then the newest session,
# then the newest revision
# (journal first, enrich later: checks, the judge and lookups add revisions). A
# row of another session that loses, and had been sent, may have been paid for: it
# moves to superseded_requests (one row per request and session, its newest
# revision), so the run's money keeps it.
_SETTLED_SQL = "(outcome IN ({finished}) OR (outcome = 'cancelled' AND token_source = 'usage'))".format(
    finished=", ".join(f"'{o}'" for o in sorted(FINISHED_OUTCOMES)))
_RANK_COLUMNS = ["run_id", "request_idx", "session", "rev", "outcome", "token_source", "t_start_ms"]
_STORED_RANKS = f"""
SELECT {_quoted(_RANK_COLUMNS)} FROM requests AS r
SEMI JOIN _orbench_keys AS k ON r.run_id = k.run_id AND r.request_idx = k.request_idx
"""
_MERGE_DELETE_REPLACED = """
DELETE FROM requests AS r USING _orbench_replace AS k
WHERE r.run_id = k.run_id AND r.request_idx = k.request_idx
"""
_MERGE_INSERT = f"INSERT INTO requests ({_COLS}) SELECT {_C_COLS} FROM _orbench_batch AS c"
_SUPERSEDE_CLEAR = """
DELETE FROM superseded_requests AS s USING _orbench_sup AS k
WHERE s.run_id = k.run_id AND s.request_idx = k.request_idx AND s.session = k.session AND s.rev <= k.rev
"""
_SUPERSEDE_STORED = f"""
INSERT INTO superseded_requests ({_COLS}, superseded_at)
SELECT {", ".join(f'r."{c}"' for c in REQUEST_COLUMNS)}, now() FROM requests AS r
SEMI JOIN _orbench_sup AS k ON r.run_id = k.run_id AND r.request_idx = k.request_idx
    AND r.session = k.session AND r.rev = k.rev AND k.stored
ANTI JOIN superseded_requests AS s ON s.run_id = r.run_id AND s.request_idx = r.request_idx
    AND s.session = r.session
"""
_SUPERSEDE_BATCH = f"""
INSERT INTO superseded_requests ({_COLS}, superseded_at)
SELECT {_C_COLS}, now() FROM _orbench_sup_rows AS c
ANTI JOIN superseded_requests AS s ON s.run_id = c.run_id AND s.request_idx = c.request_idx
    AND s.session = c.session
"""


def _settled_expr() -> pl.Expr:
    outcome = pl.col("outcome")
    return outcome.is_not_null() & (
        outcome.is_in(sorted(FINISHED_OUTCOMES))
        | ((outcome == "cancelled") & (pl.col("token_source") == "usage")).fill_null(False)
    )


def _ranked(frame: pl.DataFrame, newer_wins: bool = False) -> pl.DataFrame:
    """Best first per key: settled, newest session, newest revision, stored before batch
    (batch before stored with ``newer_wins``), last written."""
    settled = _settled_expr().fill_null(False)
    return frame.with_columns(
        _settled=settled,
        # A settled row is never replaced: among settled rows the first session's wins;
        # among unsettled ones the newest session's (a resume's re-send lands).
        _sess=pl.when(settled).then(-pl.col("session")).otherwise(pl.col("session")),
        _tie=pl.col("_stored") != newer_wins,
    ).sort(["_settled", "_sess", "rev", "_tie", "_seq"], descending=True, nulls_last=True).drop("_tie")


def _one_per_key(frame: pl.DataFrame) -> pl.DataFrame:
    """Per (run_id, request_idx): the row that ranks highest (see the merge)."""
    if frame.select(pl.struct("run_id", "request_idx").n_unique()).item() == frame.height:
        return frame  # the usual batch: nothing to choose
    return (
        _ranked(frame.with_row_index("_seq").with_columns(_stored=pl.lit(False)))
        .unique(["run_id", "request_idx"], keep="first", maintain_order=True)
        .drop("_seq", "_stored", "_settled", "_sess")
    )


def merge_rows(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, *, newer_wins: bool = False) -> int:
    """Design point 3: the highest-ranking row per key wins; losers of other sessions are kept.

    ``frame`` is a wire frame (``bench.store.journal.WIRE_SCHEMA``), oldest row first; call it
    inside the caller's write transaction. ``newer_wins``: a batch row that ties a stored row
    on (settled, session, rev) replaces it; the team pull's entries come in log order, and a
    re-score (``orbench check``) changes a row without a new revision. Returns rows written
    (new keys plus replacements).
    """
    if frame.is_empty():
        return 0
    _drop_aggregates(con, frame["run_id"].unique().to_list())
    batch = frame.with_columns(pl.col("rev").fill_null(0)).with_row_index("_seq").with_columns(
        pl.col("_seq").cast(pl.Int64))
    keys = batch.select("run_id", "request_idx").unique()
    con.register("_orbench_keys", keys)
    try:
        stored = con.sql(_STORED_RANKS).pl()
    finally:
        con.unregister("_orbench_keys")
    ranks = batch.select(_RANK_COLUMNS + ["_seq"]).with_columns(_stored=pl.lit(False))
    if stored.height:
        stored = stored.select(
            [pl.col(c).cast(ranks.schema[c]) for c in _RANK_COLUMNS]
        ).with_columns(pl.col("rev").fill_null(0), _seq=pl.lit(-1, pl.Int64), _stored=pl.lit(True))
        ranks = pl.concat([ranks, stored.select(ranks.columns)])
    ranked = _ranked(ranks, newer_wins).with_columns(
        _first=pl.int_range(pl.len()).over(["run_id", "request_idx"]) == 0,
        _win_session=pl.col("session").first().over(["run_id", "request_idx"]),
    )
    winners = ranked.filter(pl.col("_first") & ~pl.col("_stored"))
    losers = ranked.filter(
        ~pl.col("_first") & (pl.col("session") != pl.col("_win_session"))
        & (pl.col("t_start_ms").is_not_null() | (pl.col("outcome") == "started"))
    ).unique(["run_id", "request_idx", "session"], keep="first", maintain_order=True)
    if losers.height:
        _supersede(con, batch, losers)
    if winners.is_empty():
        return 0
    replace = winners.join(stored.select("run_id", "request_idx"), on=["run_id", "request_idx"],
                           how="semi") if stored.height else winners.head(0)
    rows = batch.join(winners.select("_seq"), on="_seq", how="semi").drop("_seq")
    if replace.height:
        con.register("_orbench_replace", replace.select("run_id", "request_idx"))
        try:
            con.execute(_MERGE_DELETE_REPLACED)
        finally:
            con.unregister("_orbench_replace")
    con.register("_orbench_batch", rows)
    try:
        con.execute(_MERGE_INSERT)
    finally:
        con.unregister("_orbench_batch")
    return rows.height


def _supersede(con: duckdb.DuckDBPyConnection, batch: pl.DataFrame, losers: pl.DataFrame) -> None:
    """Keep rows of earlier (or other) sessions that lost the merge: they may have been paid for."""
    sup = losers.select("run_id", "request_idx", "session", "rev", pl.col("_stored").alias("stored"))
    from_batch = batch.join(losers.filter(~pl.col("_stored")).select("_seq"), on="_seq", how="semi")
    con.register("_orbench_sup", sup)
    con.register("_orbench_sup_rows", from_batch.drop("_seq"))
    try:
        con.execute(_SUPERSEDE_CLEAR)
        con.execute(_SUPERSEDE_STORED)
        con.execute(_SUPERSEDE_BATCH)
    finally:
        con.unregister("_orbench_sup")
        con.unregister("_orbench_sup_rows")


def ingested_bytes(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """How many bytes of a run's journal are in the file."""
    rows = con.execute(
        "SELECT ingested_bytes FROM _orbench_journal WHERE run_id = ?", [run_id]
    ).fetchall()
    return int(rows[0][0]) if rows else 0


def set_ingested(con: duckdb.DuckDBPyConnection, run_id: str, offset: int) -> None:
    """Record (in the merge's transaction) that a run's journal is in up to ``offset``."""
    updated = con.execute(
        "UPDATE _orbench_journal SET ingested_bytes = ?, updated_at = now() WHERE run_id = ?",
        [offset, run_id],
    ).fetchall()
    if updated[0][0] == 0:
        con.execute(
            "INSERT INTO _orbench_journal (run_id, ingested_bytes, updated_at) VALUES (?, ?, now())",
            [run_id, offset],
        ).fetchall()

"""Log entries: what a machine sends to the team store, each with its stable key.

An entry is (entry_key, kind, origin, run_id, payload). The key is the identity that makes
pushing idempotent: the same fact always gets the same key, whichever path sends it.

- ``request``: one revision of one request row, the payload a journal line (the journal is
  the source as a run goes, the DuckDB row for changes made in place: a re-score, a booked
  in-flight cost). Key: run, request, session, revision, outcome, and a digest of the fields
  a change in place touches, so a re-scored row is a new entry and an unchanged one is not.
- ``run``: the run's row (every status change is a new entry; the newest ``seq`` wins).
- ``sweep``, ``catalog`` (a snapshot's header) + ``prices`` (its prices, keyed by content, so
  an unchanged catalog is not sent again), ``credit``;
- ``incident``: a monitor's incident, each state (opened, recovered) a new entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from bench.records import REQUEST_COLUMNS
from bench.store import journal

ENTRY_SCHEMA = {"entry_key": pl.String, "kind": pl.String, "origin": pl.String, "run_id": pl.String,
                "payload": pl.String}
_FINGERPRINT = ("passed", "score", "check_detail", "cost_source", "token_source")
"""Fields a row can change without a new revision (``orbench check``; a booked in-flight cost sets
cost_source). Money itself is left out: DuckDB keeps 18 decimals of a journal's longer text."""
RUN_EXCLUDED = ("heartbeat_at", "heartbeat_pid", "heartbeat_host", "team_seq")
"""Run columns that stay local: liveness of this machine's process, and the pull's bookkeeping."""


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=ENTRY_SCHEMA)


def request_keys(frame: pl.DataFrame) -> list[str]:
    """The entry key of each wire-frame row: ``req:RUN:IDX:SESSION:REV:OUTCOME:DIGEST``.

    The digest (the first 20 hex digits of the md5 of the fingerprint fields, as DuckDB's ``md5``
    gives them, so keys already on a server stay the same) is a name, not a secret. hashlib, not a
    DuckDB connection per call: a run's pusher computes these while the run goes."""
    parts = [pl.col(c).cast(pl.String).fill_null("~") for c in _FINGERPRINT]
    src = frame.select(
        head=pl.concat_str([pl.lit("req"), pl.col("run_id"), pl.col("request_idx").cast(pl.String),
                            pl.col("session").cast(pl.String), pl.col("rev").fill_null(0).cast(pl.String),
                            pl.col("outcome").fill_null("~")], separator=":"),
        fp=pl.concat_str(parts, separator="|"),
    )
    md5 = hashlib.md5
    return [f"{head}:{md5(fp.encode(), usedforsecurity=False).hexdigest()[:20]}"
            for head, fp in zip(src["head"].to_list(), src["fp"].to_list(), strict=True)]


def _decode_lines(lines: list[bytes]) -> tuple[pl.DataFrame, list[bytes]]:
    """Journal lines -> (wire frame, the lines kept), one row per kept line."""
    if not lines:
        return journal.empty_frame(), []
    frame, bad = journal.decode(b"\n".join(lines) + b"\n")
    if bad == 0 and frame.height == len(lines):
        return frame, lines
    kept, frames = [], []
    for line in lines:  # slow path: a damaged line; keep every line that parses
        one, bad = journal.decode(line + b"\n")
        if not bad and one.height == 1:
            kept.append(line)
            frames.append(one)
    return (pl.concat(frames) if frames else journal.empty_frame()), kept


def journal_entries(path: Path, offset: int, origin: str, *, max_bytes: int = 64 << 20
                    ) -> tuple[pl.DataFrame, int]:
    """Request entries of a run's journal from ``offset``: (entries, offset of the next unread line)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(max_bytes)
    except FileNotFoundError:
        return empty(), offset
    cut = data.rfind(b"\n") + 1
    lines = [ln for ln in data[:cut].split(b"\n") if ln.strip()]
    frame, kept = _decode_lines(lines)
    if frame.is_empty():
        return empty(), offset + cut
    entries = pl.DataFrame({
        "entry_key": request_keys(frame), "kind": "request", "origin": origin, "run_id": frame["run_id"],
        "payload": pl.Series(kept, dtype=pl.Binary).cast(pl.String, strict=False),
    }, schema=ENTRY_SCHEMA)
    return entries, offset + cut


def row_entries(frame: pl.DataFrame, origin: str) -> pl.DataFrame:
    """Request entries of stored rows (a wire frame read from DuckDB)."""
    if frame.is_empty():
        return empty()
    lines = frame.select(REQUEST_COLUMNS).write_ndjson().splitlines()  # the journal's wire shape
    return pl.DataFrame({"entry_key": request_keys(frame), "kind": "request", "origin": origin,
                         "run_id": frame["run_id"], "payload": lines}, schema=ENTRY_SCHEMA)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def _payload(row: dict[str, Any]) -> str:
    return json.dumps({k: _jsonable(v) for k, v in row.items()}, sort_keys=True, separators=(",", ":"))


def run_entries(runs: pl.DataFrame, default_origin: str) -> pl.DataFrame:
    """One entry per run row (the row's state: a status change makes a new key)."""
    out = []
    for row in runs.drop([c for c in RUN_EXCLUDED if c in runs.columns]).iter_rows(named=True):
        payload = _payload(row)
        out.append({"entry_key": f"run:{row['run_id']}:{digest(payload)}", "kind": "run",
                    "origin": row.get("origin") or default_origin, "run_id": row["run_id"], "payload": payload})
    return pl.DataFrame(out, schema=ENTRY_SCHEMA) if out else empty()


def sweep_entries(sweeps: pl.DataFrame, origin: str) -> pl.DataFrame:
    out = []
    for row in sweeps.iter_rows(named=True):
        payload = _payload(row)
        out.append({"entry_key": f"sweep:{row['sweep_id']}:{digest(payload)}", "kind": "sweep",
                    "origin": origin, "run_id": None, "payload": payload})
    return pl.DataFrame(out, schema=ENTRY_SCHEMA) if out else empty()


def incident_entries(incidents: pl.DataFrame, origin: str) -> pl.DataFrame:
    """A monitor's incidents (``orbench monitor --team``): each state of one (opened, recovered) is an
    entry; the newest ``seq`` wins. ``origin``: the machine whose monitor recorded it."""
    out = []
    for row in incidents.iter_rows(named=True):
        payload = _payload({**row, "origin": row.get("origin") or origin})
        out.append({"entry_key": f"incident:{row['incident_id']}:{digest(payload)}", "kind": "incident",
                    "origin": row.get("origin") or origin, "run_id": None, "payload": payload})
    return pl.DataFrame(out, schema=ENTRY_SCHEMA) if out else empty()


def catalog_entries(header: dict[str, Any], prices: pl.DataFrame, origin: str) -> pl.DataFrame:
    """A snapshot: its prices keyed by content (an unchanged catalog is sent once), then its header."""
    rows = [_jsonable_row(r) for r in prices.drop("snapshot_id").iter_rows(named=True)]
    prices_payload = json.dumps(rows, sort_keys=True, separators=(",", ":"))
    prices_key = f"prices:{digest(prices_payload)}"
    head = _payload({**header, "prices_key": prices_key})
    return pl.DataFrame([
        {"entry_key": prices_key, "kind": "prices", "origin": origin, "run_id": None, "payload": prices_payload},
        {"entry_key": catalog_key(str(header["snapshot_id"])), "kind": "catalog", "origin": origin,
         "run_id": None, "payload": head},
    ], schema=ENTRY_SCHEMA)


def catalog_key(snapshot_id: str) -> str:
    return f"catalog:{snapshot_id}"


def _jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in row.items()}


def credit_key(row: dict[str, Any]) -> str:
    """A credit snapshot's identity: when, from where, for which run (stable across a round trip)."""
    taken = row.get("taken_at")
    if isinstance(taken, str):
        try:
            taken = datetime.fromisoformat(taken)
        except ValueError:
            pass
    stamp = taken.timestamp() if isinstance(taken, datetime) else taken
    return f"credit:{digest(json.dumps([stamp, row.get('source'), row.get('label'), row.get('run_id')]))}"


def credit_entries(credits: pl.DataFrame, origin: str, skip: Sequence[str] = ()) -> pl.DataFrame:
    out, skipped = [], set(skip)
    for row in credits.iter_rows(named=True):
        key = credit_key(row)
        if key not in skipped:
            out.append({"entry_key": key, "kind": "credit", "origin": origin, "run_id": row.get("run_id"),
                        "payload": _payload(row)})
    return pl.DataFrame(out, schema=ENTRY_SCHEMA) if out else empty()

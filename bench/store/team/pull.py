"""Pulling: the team's log into the local DuckDB, incrementally, through the one merge.

Entries after the last pulled sequence cross the wire through ADBC (Postgres -> Arrow; 1M rows
in ~0.45 s on this kind of machine) in slices; each slice is checked, then merged in one DuckDB
transaction together with the new last sequence, so an interrupted pull resumes where it
stopped. Request rows go through ``bench.store.merge.merge_rows`` (the journal ingest's merge,
with the log's order breaking ties); run, sweep, catalog and credit entries become rows.

Runs measured on this machine are never overwritten by a pull (their local rows are the
source of what was pushed). Entries from other machines are data: one that is malformed
(wrong types, absurd sizes) is skipped with one line naming its origin and run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from bench.errors import ConfigError, StoreBusy
from bench.store import journal
from bench.store.merge import merge_rows
from bench.store.runs import RUN_STATUSES, TERMINAL_STATUSES
from bench.store.store import Store
from bench.store.team import entries
from bench.store.team.schema import LOG_TABLE, TeamUnreachable
from bench.store.team.url import TeamDB

SLICE = 250_000
"""Log entries per fetch and per local transaction."""
MAX_PAYLOAD_BYTES = 4 << 20
"""An entry larger than this is absurd for one request row (a long answer is ~100 KB)."""
_NOT_NULL = ("run_id", "request_idx", "model", "provider_variant", "endpoint", "case_id", "repeat", "is_warmup",
             "session")
_INT_LIMITS = {"request_idx": (-1, 10**9), "session": (0, 10**6), "rev": (0, 10**6), "repeat": (-1, 10**7),
               "attempts": (0, 10**6), "http_status": (0, 999), "retries_429": (0, 10**6),
               **{c: (0, 10**10) for c in ("prompt_tokens", "completion_tokens", "reasoning_tokens",
                                           "cached_tokens", "cache_write_tokens", "judge_calls",
                                           "judge_prompt_tokens", "judge_completion_tokens")}}
_MONEY_TEXT = r"^-?\d{1,20}(\.\d{0,40})?$"
_TIME_TEXT = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d(:?\d\d)?)?$"
_SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


@dataclass
class PullResult:
    entries: int = 0
    requests: int = 0
    runs: int = 0
    last_seq: int = 0
    skipped: dict[tuple[str, str], int] = field(default_factory=dict)
    """(origin, run) -> malformed entries skipped."""
    touched: set[str] = field(default_factory=set)
    """Runs whose rows or state this pull changed."""


def last_pulled(store: Store, team: TeamDB) -> tuple[int, Any]:
    frame = store.query("SELECT max(last_seq) AS s, max(pulled_at) AS t FROM _orbench_team_pulled WHERE team = ?",
                        [team.key])
    if frame.is_empty() or frame["s"][0] is None:
        return 0, None
    return int(frame["s"][0]), frame["t"][0]


def _adbc(team: TeamDB) -> Any:
    try:
        import adbc_driver_postgresql.dbapi as adbc
    except ImportError:
        raise ConfigError("the team store needs the orbench[team] extra: pip install 'orbench[team]'") from None
    try:
        return adbc.connect(team.url)
    except Exception as exc:  # noqa: BLE001 - the driver's own error types; the text is scrubbed
        text = (str(exc).strip().splitlines() or ["unreachable"])[0].replace(team.url, team.redacted)
        raise TeamUnreachable(f"team store {team.redacted}: {text}") from None


def fetch(con: Any, after: int, limit: int = SLICE, where: str = "seq > $1", param: Any = None) -> pl.DataFrame:
    """Log entries after a sequence, oldest first, as a polars frame (Arrow underneath)."""
    with con.cursor() as cur:
        cur.execute(f"SELECT seq, entry_key, kind, origin, run_id, payload FROM {LOG_TABLE} WHERE {where} "
                    f"ORDER BY seq LIMIT {int(limit)}", parameters=(after if param is None else param,))
        table = cur.fetch_arrow_table()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def pull(store: Store, team: TeamDB, *, on_skip: Callable[[str], None] | None = None) -> PullResult:
    """Merge every log entry after the last pulled sequence into the local DuckDB."""
    store.init()
    result = PullResult()
    last, _ = last_pulled(store, team)
    result.last_seq = last
    con = _adbc(team)
    try:
        while True:
            try:
                frame = fetch(con, last)
            except Exception as exc:  # noqa: BLE001 - no schema yet, or the server went away
                text = (str(exc).strip().splitlines() or ["failed"])[0].replace(team.url, team.redacted)
                raise TeamUnreachable(f"team store {team.redacted}: {text}") from None
            if frame.is_empty():
                break
            last = _apply(store, team, con, frame, result)
            result.last_seq = last
            result.entries += frame.height
            if frame.height < SLICE:
                break
    finally:
        con.close()
    _aggregate(store, result.touched)
    for (origin, run_id), n in sorted(result.skipped.items()):
        if on_skip is not None:
            on_skip(f"team pull: skipped {n} malformed entr{'y' if n == 1 else 'ies'} from origin {origin!r}, "
                    f"run {run_id!r}")
    return result


def _aggregate(store: Store, run_ids: set[str]) -> None:
    """The per-run aggregates (m011) of the pulled runs that have ended, as their engine built them at
    the end: the dashboard's big reads then find them (without, its first read of 10M pulled rows
    built them lazily: 28 s)."""
    if not run_ids:
        return
    ended = store.query("SELECT run_id FROM runs WHERE list_contains($ids, run_id) AND list_contains($end, status) "
                        "ORDER BY run_id", {"ids": sorted(run_ids), "end": list(TERMINAL_STATUSES)})
    try:
        store.build_aggregates(ended["run_id"].to_list(), timeout_s=30.0)
    except StoreBusy:  # a run is writing now: the dashboard builds what is missing on its first read
        pass


def _apply(store: Store, team: TeamDB, con: Any, frame: pl.DataFrame, result: PullResult) -> int:
    """Check and merge one slice of entries in one local transaction; returns its last sequence."""
    last = int(frame["seq"].cast(pl.Int64).max() or 0)  # type: ignore[arg-type]  # polars types max() loosely
    local = set(store.query("SELECT run_id FROM runs WHERE team_seq IS NULL")["run_id"].to_list())
    frame = frame.filter(pl.col("run_id").is_null() | ~pl.col("run_id").is_in(list(local)))
    frame = _drop_bad(frame, frame["payload"].str.len_bytes() > MAX_PAYLOAD_BYTES, result)
    requests = _requests(frame.filter(pl.col("kind") == "request"), result)
    runs = _runs(frame.filter(pl.col("kind") == "run"), result)
    sweeps = _json_rows(frame.filter(pl.col("kind") == "sweep"), "sweep_id", result)
    credits = _json_rows(frame.filter(pl.col("kind") == "credit"), None, result)
    incidents = _json_rows(frame.filter(pl.col("kind") == "incident"), "incident_id", result)
    catalogs = _catalogs(con, frame, result)
    result.touched.update(r for r in frame["run_id"].unique().to_list() if r is not None)
    with store.transaction() as db:
        result.requests += merge_rows(db, requests, newer_wins=True)
        result.runs += _upsert_runs(db, runs)
        _upsert_sweeps(db, sweeps)
        _upsert_incidents(db, incidents)
        _insert_catalogs(db, catalogs)
        _insert_credits(db, team, credits)
        db.execute("DELETE FROM _orbench_team_pulled WHERE team = ?", [team.key])
        db.execute("INSERT INTO _orbench_team_pulled VALUES (?, ?, now())", [team.key, last])
    return last


def _drop_bad(frame: pl.DataFrame, bad: pl.Series, result: PullResult) -> pl.DataFrame:
    for origin, run_id in frame.filter(bad).select("origin", "run_id").iter_rows():
        key = (str(origin), str(run_id or "-"))
        result.skipped[key] = result.skipped.get(key, 0) + 1
    return frame.filter(~bad)


# -- request entries ------------------------------------------------------------------------


def _decode(payloads: pl.Series) -> tuple[pl.DataFrame, list[bool]]:
    """Payloads -> (wire frame of the good ones, good flag per payload)."""
    if payloads.is_empty():
        return journal.empty_frame(), []
    if not payloads.str.contains("\n", literal=True).any():
        data = payloads.str.join("\n").item().encode() + b"\n"
        frame, bad = journal.decode(data)
        if bad == 0 and frame.height == payloads.len():
            return frame, [True] * payloads.len()
    frames, good = [], []
    for p in payloads.to_list():  # slow path: some entry does not parse; find which
        one, bad = (journal.empty_frame(), 1) if "\n" in p else journal.decode((p + "\n").encode())
        ok = not bad and one.height == 1
        good.append(ok)
        if ok:
            frames.append(one)
    return (pl.concat(frames) if frames else journal.empty_frame()), good


def _valid_rows(rows: pl.DataFrame, entry_runs: pl.Series) -> pl.Series:
    checks = [pl.col("run_id") == pl.Series(entry_runs), pl.col("run_id").str.contains(_SAFE_ID)]
    checks += [pl.col(c).is_not_null() for c in _NOT_NULL]
    checks += [pl.col(c).is_null() | pl.col(c).is_between(lo, hi) for c, (lo, hi) in _INT_LIMITS.items()]
    checks += [pl.col(c).is_null() | pl.col(c).str.contains(_MONEY_TEXT) for c in journal.MONEY_COLUMNS]
    checks += [pl.col("started_at").is_null() | pl.col("started_at").str.contains(_TIME_TEXT),
               pl.col("chunk_gaps_ms").is_null() | (pl.col("chunk_gaps_ms").list.len() <= 1_000_000)]
    return rows.select(pl.all_horizontal([c.fill_null(False) for c in checks])).to_series()


def _requests(frame: pl.DataFrame, result: PullResult) -> pl.DataFrame:
    rows, good = _decode(frame["payload"])
    frame = _drop_bad(frame, pl.Series([not g for g in good], dtype=pl.Boolean), result)
    if rows.is_empty():
        return journal.empty_frame()
    ok = _valid_rows(rows, frame["run_id"])
    _drop_bad(frame, ~ok, result)
    return rows.filter(ok)


# -- run, sweep, catalog and credit entries -----------------------------------------------


def _loads(payload: str) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _json_rows(frame: pl.DataFrame, id_col: str | None, result: PullResult) -> list[dict[str, Any]]:
    out, bad = [], []
    for seq, origin, payload in frame.select("seq", "origin", "payload").iter_rows():
        row = _loads(payload)
        ok = row is not None and (id_col is None or (isinstance(row.get(id_col), str) and len(row[id_col]) < 200))
        bad.append(not ok)
        if ok and row is not None:
            out.append({**row, "_seq": seq, "_origin": origin})
    _drop_bad(frame, pl.Series(bad, dtype=pl.Boolean), result)
    return out


def _runs(frame: pl.DataFrame, result: PullResult) -> list[dict[str, Any]]:
    rows = _json_rows(frame, "run_id", result)
    latest: dict[str, dict[str, Any]] = {}
    bad = []
    for row in rows:
        if (row.get("run_id") != next(iter(frame.filter(pl.col("seq") == row["_seq"])["run_id"]), None)
                or not re.match(_SAFE_ID, str(row["run_id"])) or row.get("status") not in RUN_STATUSES):
            bad.append((row["_origin"], row.get("run_id")))
            continue
        if not row.get("origin"):  # a run from before origins (m016): where its entry was pushed from
            row["origin"] = row["_origin"]
        latest[row["run_id"]] = row  # entries come in seq order: the newest state wins
    for origin, run_id in bad:
        key = (str(origin), str(run_id or "-"))
        result.skipped[key] = result.skipped.get(key, 0) + 1
    return list(latest.values())


def _columns(db: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position", [table]).fetchall()]


def _insert_json(db: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]],
                 extra: dict[str, str] | None = None, skip: tuple[str, ...] = ()) -> int:
    """Insert JSON rows into a local table: each known column cast to its local type (bad -> NULL)."""
    if not rows:
        return 0
    cols = [(c, t) for c, t in _columns(db, table) if c not in skip and c not in (extra or {})]
    frame = pl.DataFrame({"j": [json.dumps({k: v for k, v in r.items() if not k.startswith("_")}) for r in rows],
                          "_seq": [int(r["_seq"]) for r in rows]})
    select = [f"TRY_CAST(json_extract_string(j, '$.\"{c}\"') AS {t})" for c, t in cols]
    names = [c for c, _ in cols] + list(extra or {})
    values = select + list((extra or {}).values())
    db.register("_orbench_pulled", frame)
    try:
        db.execute(f"INSERT INTO {table} ({', '.join(f'{chr(34)}{n}{chr(34)}' for n in names)}) "
                   f"SELECT {', '.join(values)} FROM _orbench_pulled")
    finally:
        db.unregister("_orbench_pulled")
    return len(rows)


def _upsert_runs(db: duckdb.DuckDBPyConnection, runs: list[dict[str, Any]]) -> int:
    runs = [r for r in runs if r.get("created_at") is not None]
    if not runs:
        return 0
    ids = [r["run_id"] for r in runs]
    db.execute("DELETE FROM runs WHERE team_seq IS NOT NULL AND list_contains(?, run_id)", [ids])
    return _insert_json(db, "runs", runs, extra={"team_seq": "_seq"}, skip=entries.RUN_EXCLUDED)


def _upsert_sweeps(db: duckdb.DuckDBPyConnection, sweeps: list[dict[str, Any]]) -> None:
    if not sweeps:
        return
    latest = {s["sweep_id"]: s for s in sweeps}
    ids = list(latest)
    db.execute("DELETE FROM sweeps WHERE list_contains(?, sweep_id) AND sweep_id NOT IN "
               "(SELECT sweep_id FROM runs WHERE team_seq IS NULL AND sweep_id IS NOT NULL)", [ids])
    have = {r[0] for r in db.execute("SELECT sweep_id FROM sweeps WHERE list_contains(?, sweep_id)", [ids]).fetchall()}
    _insert_json(db, "sweeps", [s for s in latest.values() if s["sweep_id"] not in have])


def _upsert_incidents(db: duckdb.DuckDBPyConnection, incidents: list[dict[str, Any]]) -> None:
    """Another machine's monitor incidents (their newest state), with the origin that recorded them.
    This machine's own incidents (origin NULL) are never replaced: its monitors decide on those."""
    latest = {}
    for row in incidents:  # in seq order: the newest state wins
        row["origin"] = row.get("origin") or row["_origin"]
        latest[row["incident_id"]] = row
    if not latest:
        return
    ids = list(latest)
    db.execute("DELETE FROM monitor_incidents WHERE list_contains(?, incident_id) AND origin IS NOT NULL", [ids])
    mine = {r[0] for r in db.execute("SELECT incident_id FROM monitor_incidents WHERE list_contains(?, incident_id)",
                                     [ids]).fetchall()}
    _insert_json(db, "monitor_incidents", [r for i, r in latest.items() if i not in mine])


def _catalogs(con: Any, frame: pl.DataFrame, result: PullResult) -> list[tuple[dict[str, Any], list[Any]]]:
    headers = _json_rows(frame.filter(pl.col("kind") == "catalog"), "snapshot_id", result)
    prices = {k: p for k, p in frame.filter(pl.col("kind") == "prices").select("entry_key", "payload").iter_rows()}
    out = []
    for head in headers:
        key = head.get("prices_key")
        text = prices.get(key) if isinstance(key, str) else None
        if text is None and isinstance(key, str):  # an unchanged catalog: its prices were sent before
            found = fetch(con, 0, 1, where="entry_key = $1", param=key)
            text = found["payload"][0] if found.height else None
        try:
            rows = json.loads(text) if text else []
        except ValueError:
            rows = []
        out.append((head, rows if isinstance(rows, list) else []))
    return out


def _insert_catalogs(db: duckdb.DuckDBPyConnection, catalogs: list[tuple[dict[str, Any], list[Any]]]) -> None:
    for head, prices in catalogs:
        sid = head["snapshot_id"]
        if db.execute("SELECT count(*) FROM catalog_snapshots WHERE snapshot_id = ?", [sid]).fetchall()[0][0]:
            continue
        _insert_json(db, "catalog_snapshots", [{k: v for k, v in head.items() if k != "prices_key"}])
        rows = [{**p, "snapshot_id": sid, "_seq": head["_seq"]} for p in prices if isinstance(p, dict)]
        _insert_json(db, "catalog_prices", rows)


def _insert_credits(db: duckdb.DuckDBPyConnection, team: TeamDB, credits: list[dict[str, Any]]) -> None:
    if not credits:
        return
    sent = {r[0] for r in db.execute("SELECT entry_key FROM _orbench_team_sent WHERE team = ?", [team.key]).fetchall()}
    new = []
    for row in credits:
        key = entries.credit_key({k: v for k, v in row.items() if not k.startswith("_")})
        if key not in sent:
            new.append(row)
            sent.add(key)
            db.execute("INSERT INTO _orbench_team_sent VALUES (?, ?, now())", [team.key, key])
    _insert_json(db, "credit_snapshots", new)

"""The ``runs`` and ``sweeps`` tables, run heartbeats, and the per-run aggregates (m011).

``RunTables`` is mixed into ``bench.store.store.Store``; run ids, statuses and the
redaction of stored settings live here too.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import duckdb
import polars as pl

from bench.errors import ConfigError, StoreBusy
from bench.records import FINISHED_OUTCOMES
from bench.store import journal
from bench.store.connection import StoreBase, _empty_result, _quoted
from bench.store.migrations import migrate

RUN_STATUSES = ("planned", "running", "finished", "stopped", "failed", "cancelled")
TERMINAL_STATUSES = ("finished", "stopped", "failed", "cancelled")
_RUN_FIELDS = (
    "name", "suite_name", "suite_path", "suite_hash", "tool_version", "settings", "status",
    "status_reason", "started_at", "finished_at", "catalog_snapshot_id", "simulated", "planned",
    "plan",
)  # fmt: skip
_SECRET_KEY = re.compile(r"(^|_)(api_?key|key|token|secret|password|authorization)$", re.I)


@dataclass
class RunRecord:
    """One row of ``runs``, JSON columns decoded."""

    run_id: str
    status: str
    name: str | None = None
    suite_name: str | None = None
    suite_path: str | None = None
    suite_hash: str | None = None
    tool_version: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    status_reason: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    catalog_snapshot_id: str | None = None
    simulated: bool = False
    planned: int | None = None
    plan: list[dict[str, Any]] | None = None
    origin: str | None = None

    def __getitem__(self, key: str) -> Any:
        """``run["plan"]``: callers may treat the record as a read-only mapping."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in self.__dataclass_fields__ else default


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and prefix-friendly: ``20261130-143501-3fa2c1d4e5f6``.

    48 random bits after the second: machines of one team starting runs in the same second
    collide with odds of about n^2 / 2^49 (ids of older orbench versions had 24 bits and
    keep working: a run id is any safe file name)."""
    return f"{(now or utcnow()):%Y%m%d-%H%M%S}-{secrets.token_hex(6)}"


def default_origin() -> str:
    """Where a run ran when neither ``--origin`` nor ORBENCH_ORIGIN says: this machine's name."""
    return _HOST.split(".")[0][:64] or "unknown"


def redact_url(url: str) -> str:
    """Drop user:password and secret-looking query parameters from a URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not _SECRET_KEY.search(k)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_settings(value: Any) -> Any:
    """Settings as stored: no key-like entries, no credentials inside URLs."""
    if isinstance(value, Mapping):
        return {str(k): redact_settings(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, (list, tuple)):
        return [redact_settings(v) for v in value]
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return redact_url(value)
    return value


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _plan_records(plan: Sequence[Any]) -> list[dict[str, Any]]:
    """Planned requests as JSON-ready dicts: a mapping is kept whole (the runner
    decides what a resume needs), a planned request gives its ``to_json()``."""
    return [dict(item) if isinstance(item, Mapping) else dict(item.to_json()) for item in plan]


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise ConfigError(f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")


_HOST = socket.gethostname()  # with the pid, says which process a heartbeat came from
_RUNNING_RUNS = """
SELECT r.run_id, r.name, r.suite_name, r.suite_path, r.simulated, r.started_at, r.planned,
       r.heartbeat_at, r.heartbeat_pid, r.heartbeat_host,
       epoch(now() - r.heartbeat_at) AS heartbeat_age_s, coalesce(q.done, 0) AS done
FROM runs AS r LEFT JOIN (
    SELECT run_id, count(*) FILTER (WHERE list_contains($finished, outcome)) AS done
    FROM requests WHERE run_id IN (SELECT run_id FROM runs WHERE status = 'running')
    GROUP BY run_id) AS q USING (run_id)
WHERE r.status = 'running'
ORDER BY coalesce(r.started_at, r.created_at) DESC, r.run_id DESC
"""
_SIMULATED_SPEND = """
WITH sim AS (SELECT run_id, judge_cost_usd FROM runs WHERE simulated)
SELECT
    CAST(coalesce((SELECT sum(q.cost_usd) FROM requests AS q SEMI JOIN sim USING (run_id)), 0)
         AS DECIMAL(38,18)) AS requests_usd,
    CAST(coalesce((SELECT sum(coalesce(q.judge_cost_usd, 0)) FROM requests AS q SEMI JOIN sim USING (run_id)), 0)
       + coalesce((SELECT sum(coalesce(s.cost_usd, 0) + coalesce(s.judge_cost_usd, 0))
                   FROM superseded_requests AS s SEMI JOIN sim USING (run_id)), 0)
       + coalesce((SELECT sum(judge_cost_usd) FROM sim), 0) AS DECIMAL(38,18)) AS other_usd,
    (SELECT count(*) FROM sim) AS runs
"""
# -- per-run aggregates (m011; read by bench.results.aggregates) --------------------------
SKETCH_ALPHA = 0.005
"""Relative error bound of the latency sketches: every value read back is within 0.5 %."""
SKETCH_GAMMA = (1 + SKETCH_ALPHA) / (1 - SKETCH_ALPHA)
AGGREGATE_METRICS = ("ttft_ms", "e2e_ms", "decode_tps", "tpot_ms")
AGGREGATE_VERSION = 3
"""Bumped when what the aggregates hold changes; rows of another version are rebuilt.
2: cached tokens, 429 retries and cold connections per outcome (m014), and the sketch of the
e2e time of answers that passed their checks (``bench.results.summary``'s ``e2e_p50_correct_ms``).
3: requests that needed a fresh connection (``n_fresh``, m015)."""
FRESH_CONNECTION_SQL = "regexp_matches(coalesce(retry_reasons, ''), 'closed_idle|dropped')"
"""A request that needed a fresh connection: its pooled one had been closed by the server."""
_AGG_TABLES = ("run_aggregate_bins", "run_aggregates", "run_aggregate_builds")
_AGG_KEY = "run_id, model, provider_variant, endpoint, provider"
_AGG_COUNTS = f"""
INSERT INTO run_aggregates
SELECT {_AGG_KEY}, outcome,
    count(*), count(cost_usd), sum(cost_usd), count(list_cost_usd), sum(list_cost_usd),
    CAST(sum(prompt_tokens) AS BIGINT), CAST(sum(completion_tokens) AS BIGINT),
    count(passed) FILTER (WHERE outcome = 'ok'), count(*) FILTER (WHERE outcome = 'ok' AND passed),
    list_sort(list(DISTINCT token_source) FILTER (WHERE token_source IS NOT NULL)),
    list_sort(list(DISTINCT case_id) FILTER (WHERE case_id IS NOT NULL)),
    CAST(sum(cached_tokens) AS BIGINT), CAST(sum(retries_429) AS BIGINT),
    count(*) FILTER (WHERE conn_reused = false),
    count(*) FILTER (WHERE {FRESH_CONNECTION_SQL})
FROM requests WHERE run_id = $run_id AND NOT is_warmup
GROUP BY {_AGG_KEY}, outcome
"""
_AGG_BINS = f"""
INSERT INTO run_aggregate_bins
SELECT {_AGG_KEY}, metric, CASE WHEN x > 0 THEN CAST(ceil(ln(x) / $ln_gamma) AS INTEGER) END AS bin,
       count(*)
FROM (UNPIVOT (SELECT {_AGG_KEY}, {", ".join(AGGREGATE_METRICS)} FROM requests
               WHERE run_id = $run_id AND NOT is_warmup AND outcome = 'ok')
      ON {", ".join(AGGREGATE_METRICS)} INTO NAME metric VALUE x)
GROUP BY ALL
"""
_AGG_BINS_PASSED = f"""
INSERT INTO run_aggregate_bins
SELECT {_AGG_KEY}, 'e2e_ms_passed', CASE WHEN e2e_ms > 0 THEN CAST(ceil(ln(e2e_ms) / $ln_gamma) AS INTEGER) END,
       count(*)
FROM requests WHERE run_id = $run_id AND NOT is_warmup AND outcome = 'ok' AND passed AND e2e_ms IS NOT NULL
GROUP BY ALL
"""
_AGG_BUILD = """
INSERT INTO run_aggregate_builds
SELECT $run_id, now(), (SELECT count(*) FROM requests WHERE run_id = $run_id AND NOT is_warmup),
       $alpha, $version
"""


def _build_aggregates(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    _drop_aggregates(con, [run_id])
    con.execute(_AGG_COUNTS, {"run_id": run_id}).fetchall()
    con.execute(_AGG_BINS, {"run_id": run_id, "ln_gamma": math.log(SKETCH_GAMMA)}).fetchall()
    con.execute(_AGG_BINS_PASSED, {"run_id": run_id, "ln_gamma": math.log(SKETCH_GAMMA)}).fetchall()
    con.execute(_AGG_BUILD, {"run_id": run_id, "alpha": SKETCH_ALPHA, "version": AGGREGATE_VERSION}).fetchall()


def _drop_aggregates(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> None:
    """A write to a run's request rows makes its aggregates stale: forget them."""
    for table in _AGG_TABLES:
        con.execute(f"DELETE FROM {table} WHERE list_contains(?, run_id)", [list(run_ids)])


_SWEEPS = """
    SELECT s.sweep_id, s.created_at, s.finished_at, s.suite_path, s.axis, s.levels, s.status,
           s.status_reason, count(r.run_id) AS steps, coalesce(bool_or(r.simulated), false) AS simulated
    FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.sweep_id
    GROUP BY ALL
    ORDER BY s.created_at DESC, s.sweep_id DESC
"""


class RunTables(StoreBase):
    """Runs, sweeps, heartbeats and per-run aggregates."""

    # -- runs --------------------------------------------------------------------

    def create_run(
        self,
        run_id: str | None = None,
        *,
        name: str | None = None,
        suite_name: str | None = None,
        suite_path: str | None = None,
        suite_hash: str | None = None,
        tool_version: str | None = None,
        settings: Mapping[str, Any] | None = None,
        plan: Sequence[Any] | None = None,
        status: str = "planned",
        started_at: datetime | None = None,
        catalog_snapshot_id: str | None = None,
        simulated: bool = False,
        origin: str | None = None,
    ) -> str:
        """Insert a run row; return its id (generated when not given).

        ``origin`` says where it ran (default: this machine's hostname).

        ``settings`` is stored with key-like entries and URL credentials removed;
        ``plan`` items are mappings or objects with a ``to_json()``.
        """
        run_id = run_id or new_run_id()
        journal.journal_path(self.journal_dir, run_id)  # the id must be a safe file name
        _check_status(status)
        plan_json = None if plan is None else _json(_plan_records(plan))
        values = [
            run_id, name, suite_name, None if suite_path is None else str(suite_path), suite_hash,
            tool_version, _json(redact_settings(settings or {})), status, started_at,
            catalog_snapshot_id, simulated, None if plan is None else len(plan), plan_json,
            origin or default_origin(),
        ]  # fmt: skip
        sql = (
            "INSERT INTO runs (run_id, name, suite_name, suite_path, suite_hash, tool_version, "
            "settings, status, started_at, catalog_snapshot_id, simulated, planned, plan, origin) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        try:
            self._write(sql, values)
        except duckdb.ConstraintException as exc:
            raise ConfigError(f"run {run_id} already exists") from exc
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set run columns. A terminal status stamps finished_at, 'running' started_at."""
        unknown = set(fields) - set(_RUN_FIELDS)
        if unknown:
            raise TypeError(f"update_run: unknown field(s) {', '.join(sorted(unknown))}")
        if "status" in fields:
            _check_status(fields["status"])
            if fields["status"] in TERMINAL_STATUSES:
                fields.setdefault("finished_at", utcnow())
        if "settings" in fields:
            fields["settings"] = _json(redact_settings(fields["settings"] or {}))
        if fields.get("plan") is not None:
            records = _plan_records(fields["plan"])
            fields["plan"] = _json(records)
            fields.setdefault("planned", len(records))
        sets = [f'"{k}" = ?' for k in fields]
        if fields.get("status") == "running" and "started_at" not in fields:
            sets.append("started_at = coalesce(started_at, now())")
        if not sets:
            return
        sql = f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?"
        if self._write(sql, [*fields.values(), run_id])[0][0] == 0:
            raise ConfigError(f"no run {run_id} in {self.path}")

    def get_run(self, run_id: str) -> RunRecord | None:
        columns = _quoted([f.name for f in dataclasses.fields(RunRecord)])
        frame = self._read(f"SELECT {columns} FROM runs WHERE run_id = ?", [run_id])
        if frame.is_empty():
            return None
        row = frame.row(0, named=True)
        row["settings"] = json.loads(row["settings"]) if row["settings"] else {}
        row["plan"] = json.loads(row["plan"]) if row["plan"] else None
        return RunRecord(**row)

    def latest_run_id(self, origin: str | None = None) -> str | None:
        """The newest run (of one ``origin`` when given)."""
        frame = self._read(
            "SELECT run_id FROM runs WHERE $origin IS NULL OR origin = $origin "
            "ORDER BY coalesce(started_at, created_at) DESC, created_at DESC, run_id DESC LIMIT 1",
            {"origin": origin},
        )
        return None if frame.is_empty() else str(frame.item())

    def resolve_run(self, ref: str, origin: str | None = None) -> str:
        """'latest', a full run id or a unique prefix -> run id; ConfigError otherwise.

        With ``origin``, only that origin's runs count (``latest`` is its newest)."""
        ref = ref.strip()
        if ref in ("", "latest"):
            latest = self.latest_run_id(origin)
            if latest is None:
                raise ConfigError(f"no runs in {self.path} yet" if origin is None
                                  else f"--origin {origin}: no runs from that origin in {self.path}")
            return latest
        ids = self._read(
            "SELECT run_id FROM runs WHERE starts_with(run_id, $ref) AND ($origin IS NULL OR origin = $origin) "
            "ORDER BY run_id", {"ref": ref, "origin": origin}
        )["run_id"].to_list()
        if ref in ids or len(ids) == 1:
            return ref if ref in ids else str(ids[0])
        if not ids:
            where = "" if origin is None else f" from origin {origin}"
            raise ConfigError(f"no run{where} matches {ref!r} in {self.path}")
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise ConfigError(f"run {ref!r} is ambiguous ({len(ids)} runs: {shown}); give more characters")

    def list_runs(self) -> pl.DataFrame:
        """Runs, newest first, with row counts and reported cost (plan left out)."""
        return self._read(
            """
            SELECT r.* EXCLUDE (plan),
                   coalesce(q.n_rows, 0) AS n_rows, coalesce(q.n_ok, 0) AS n_ok, q.cost_usd
            FROM runs AS r LEFT JOIN (
                SELECT run_id, count(*) AS n_rows, count(*) FILTER (WHERE outcome = 'ok') AS n_ok,
                       sum(cost_usd) AS cost_usd
                FROM requests GROUP BY run_id) AS q ON q.run_id = r.run_id
            ORDER BY coalesce(r.started_at, r.created_at) DESC, r.created_at DESC, r.run_id DESC
            """
        )

    # -- heartbeat: is a running run's process still alive? ---------------------------

    def beat(self, run_id: str, *, timeout_s: float = 2.0) -> None:
        """Stamp ``runs.heartbeat_at`` (and this process's pid and host) for a running run.

        Called every few seconds by the run's writer thread, never per request. It waits
        at most ``timeout_s`` for the file (StoreBusy after that): a missed beat is harmless.
        """
        sql = ("UPDATE runs SET heartbeat_at = now(), heartbeat_pid = ?, heartbeat_host = ? "
               "WHERE run_id = ?")
        self._ensure_ready()
        with self._writing(timeout_s) as con:
            self._in_transaction(con, lambda: con.execute(sql, [os.getpid(), _HOST, run_id]).fetchall())

    def running_runs(self) -> pl.DataFrame:
        """Runs whose status is still ``running``, newest first, with their heartbeat's age.

        ``done`` counts requests with a finished row (warm-ups included, like ``planned``);
        ``heartbeat_age_s`` is None for a run that never beat (an orbench older than m010).
        """
        return self._read(_RUNNING_RUNS, {"finished": sorted(FINISHED_OUTCOMES)})

    # -- sweeps: one run per load level, grouped by sweep_id (m012) ------------------------

    def create_sweep(self, sweep_id: str, *, suite_path: str, axis: str, levels: Sequence[float],
                     settings: Mapping[str, Any]) -> None:
        """Record a sweep before its first step runs (what ``--resume SWEEP`` replays)."""
        self._write("INSERT INTO sweeps (sweep_id, suite_path, axis, levels, settings) VALUES (?, ?, ?, ?, ?)",
                    [sweep_id, suite_path, axis, [float(v) for v in levels],
                     _json(redact_settings(dict(settings)))])

    def update_sweep(self, sweep_id: str, status: str, reason: str | None = None) -> None:
        """Set a sweep's status; anything but 'running' stamps finished_at."""
        self._write("UPDATE sweeps SET status = ?, status_reason = ?, "
                    "finished_at = CASE WHEN ? = 'running' THEN NULL ELSE now() END WHERE sweep_id = ?",
                    [status, reason, status, sweep_id])

    def get_sweep(self, ref: str) -> dict[str, Any]:
        """A sweep by id, unique prefix or 'latest' (settings decoded); ConfigError if none matches."""
        frame = self._read("SELECT * FROM sweeps WHERE $ref = 'latest' OR starts_with(sweep_id, $ref) "
                           "ORDER BY created_at DESC, sweep_id DESC", {"ref": ref.strip() or "latest"})
        exact = frame.filter(pl.col("sweep_id") == ref) if not frame.is_empty() else frame
        if not exact.is_empty():
            frame = exact
        elif frame.height > 1 and ref != "latest":
            raise ConfigError(f"--resume {ref!r}: matches {frame.height} sweeps; give more characters")
        if frame.is_empty():
            raise ConfigError(f"--resume {ref!r}: no such sweep in {self.path}")
        row = frame.row(0, named=True)
        row["settings"] = json.loads(row["settings"]) if row["settings"] else {}
        return row

    def tag_sweep_run(self, run_id: str, sweep_id: str, level: float) -> None:
        """Mark a run as the step of a sweep at one load level."""
        self._write("UPDATE runs SET sweep_id = ?, sweep_level = ? WHERE run_id = ?",
                    [sweep_id, float(level), run_id])

    def sweep_runs(self, sweep_id: str) -> pl.DataFrame:
        """The runs of a sweep (run_id, sweep_level, status), oldest first."""
        return self._read("SELECT run_id, sweep_level, status, status_reason FROM runs WHERE sweep_id = ? "
                          "ORDER BY sweep_level, created_at", [sweep_id])

    def simulated_spend(self) -> dict[str, Any]:
        """What the sandbox billed, as recorded here: every request of every simulated run.

        ``requests_usd`` is the billed cost of their request rows (warm-ups included, as the
        Credits page's per-run table sums it); ``other_usd`` adds replaced sends that were
        paid and judge calls. ``usd`` is the sum; ``runs`` how many simulated runs there are.
        """
        frame = self._read(_SIMULATED_SPEND)
        if frame.is_empty():
            return {"usd": Decimal(0), "requests_usd": Decimal(0), "other_usd": Decimal(0), "runs": 0}
        row = frame.row(0, named=True)
        return {"usd": row["requests_usd"] + row["other_usd"], "requests_usd": row["requests_usd"],
                "other_usd": row["other_usd"], "runs": int(row["runs"])}

    # -- per-run aggregates (m011) ---------------------------------------------------

    def build_aggregates(self, run_ids: Sequence[str], *, timeout_s: float | None = None) -> list[str]:
        """(Re)write the aggregates of ended runs, one short transaction per run.

        Called when a run ends and, lazily, by the dashboard (``bench.results.aggregates.plan``).
        Only the schema is brought up to date first, never a journal ingested: a reader
        must not move another process's rows. Returns the runs built. StoreBusy (after
        ``timeout_s``) stops it; the runs built before it stay built.
        """
        done: list[str] = []
        for run_id in run_ids:  # one connection each: a run's writer gets the file in between
            with self._writing(timeout_s) as con:
                migrate(con, self.path)
                self._in_transaction(con, functools.partial(_build_aggregates, con, run_id))
            done.append(run_id)
        return done

    def build_aggregates_at_end(self, run_id: str) -> bool:
        """``build_aggregates`` for a run that just ended; never raises (the dashboard
        rebuilds lazily what could not be written now)."""
        try:
            return bool(self.build_aggregates([run_id], timeout_s=5.0))
        except (StoreBusy, duckdb.Error, OSError):
            return False

    def list_sweeps(self) -> pl.DataFrame:
        """Every sweep, newest first: its row (settings left out) plus ``steps`` (runs tagged
        with it) and ``simulated`` (any of them ran on the sandbox). Read-only; a file written
        before sweeps existed (no ``sweeps`` table yet) has none."""
        if self._read("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'sweeps'")["n"].item() == 0:
            return _empty_result(_SWEEPS, None)  # the blank schema's answer: right columns, no rows
        return self._read(_SWEEPS)

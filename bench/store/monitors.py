"""Monitor state (m018): monitors, their ticks, incidents, alert deliveries and catalog snapshots.

The scheduler (bench.monitor) keeps everything a restart needs here and nowhere else: when
the next tick is due, which tick is running (and its run), which incidents are open and
which alerts went out. Rows are small and few (one per tick, per incident, per delivery);
the measurements themselves are the ticks' ordinary runs. No column holds a webhook URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

from bench.errors import ConfigError
from bench.store.connection import StoreBase
from bench.store.runs import redact_settings

TICK_STATUSES = ("running", "finished", "skipped", "failed", "cancelled")

_SPENT_SINCE = """
SELECT CAST(coalesce(sum(m), 0) AS DECIMAL(38,18)) AS spent FROM (
    SELECT coalesce(q.cost_usd, q.list_cost_usd, 0) AS m FROM requests AS q
    JOIN runs AS r ON r.run_id = q.run_id WHERE r.monitor = $monitor AND r.created_at >= $since
    UNION ALL SELECT coalesce(s.cost_usd, s.list_cost_usd, 0) AS m FROM superseded_requests AS s
    JOIN runs AS r ON r.run_id = s.run_id WHERE r.monitor = $monitor AND r.created_at >= $since
    UNION ALL SELECT coalesce(judge_cost_usd, 0) AS m FROM runs WHERE monitor = $monitor AND created_at >= $since
)
"""


class MonitorTables(StoreBase):
    """Monitors, ticks, incidents, alert deliveries, per-tick provider catalogs."""

    # -- monitors ----------------------------------------------------------------------

    def save_monitor(self, name: str, *, suite_path: str, options: Mapping[str, Any], every_s: float,
                     jitter: float, budget_per_day_usd: Decimal | None) -> None:
        """Create the monitor, or update its settings (the schedule and ticks are kept)."""
        self._write(
            "INSERT INTO monitors (name, suite_path, options, every_s, jitter, budget_per_day_usd) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET suite_path = excluded.suite_path, "
            "options = excluded.options, every_s = excluded.every_s, jitter = excluded.jitter, "
            "budget_per_day_usd = excluded.budget_per_day_usd",
            [name, suite_path, json.dumps(redact_settings(dict(options)), default=str), every_s, jitter,
             budget_per_day_usd])

    def get_monitor(self, name: str) -> dict[str, Any] | None:
        frame = self._read("SELECT * FROM monitors WHERE name = ?", [name])
        if frame.is_empty():
            return None
        row = frame.row(0, named=True)
        row["options"] = json.loads(row["options"]) if row["options"] else {}
        return row

    def monitor_for_suite(self, suite_path: str) -> list[str]:
        """Names of the monitors that run this suite file."""
        return self._read("SELECT name FROM monitors WHERE suite_path = ? ORDER BY name", [suite_path])[
            "name"].to_list()

    def list_monitors(self) -> pl.DataFrame:
        return self._read(
            "SELECT m.name, m.suite_path, m.every_s, m.next_tick_at, count(t.tick) AS ticks, "
            "max(t.started_at) AS last_tick_at FROM monitors AS m "
            "LEFT JOIN monitor_ticks AS t ON t.monitor = m.name GROUP BY ALL ORDER BY m.name")

    def set_next_tick(self, name: str, at: datetime) -> None:
        self._write("UPDATE monitors SET next_tick_at = ? WHERE name = ?", [at, name])

    # -- ticks -------------------------------------------------------------------------

    def last_tick(self, monitor: str) -> dict[str, Any] | None:
        frame = self._read("SELECT * FROM monitor_ticks WHERE monitor = ? ORDER BY tick DESC LIMIT 1",
                           [monitor])
        return None if frame.is_empty() else frame.row(0, named=True)

    def start_tick(self, monitor: str, tick: int, status: str = "running", note: str | None = None) -> None:
        """Record tick ``tick`` (a skipped one is finished at once). A tick number is used once."""
        if status not in TICK_STATUSES:
            raise ValueError(f"unknown tick status {status!r}")
        try:
            self._write(
                "INSERT INTO monitor_ticks (monitor, tick, status, note, finished_at) "
                "VALUES (?, ?, ?, ?, CASE WHEN ? = 'running' THEN NULL ELSE now() END)",
                [monitor, tick, status, note, status])
        except duckdb.ConstraintException as exc:  # the primary key: another process took this tick
            raise ConfigError(f"monitor {monitor!r}: tick {tick} exists already") from exc

    def tag_tick_run(self, monitor: str, tick: int, run_id: str) -> None:
        """The tick's run, on both rows: a restart finds it and resumes it."""
        self._ensure_ready()
        with self._writing() as con:
            self._in_transaction(con, lambda: [
                con.execute("UPDATE monitor_ticks SET run_id = ? WHERE monitor = ? AND tick = ?",
                            [run_id, monitor, tick]).fetchall(),
                con.execute("UPDATE runs SET monitor = ?, monitor_tick = ? WHERE run_id = ?",
                            [monitor, tick, run_id]).fetchall()])

    def end_tick(self, monitor: str, tick: int, status: str, note: str | None = None) -> None:
        if status not in TICK_STATUSES:
            raise ValueError(f"unknown tick status {status!r}")
        self._write("UPDATE monitor_ticks SET status = ?, note = coalesce(?, note), finished_at = now() "
                    "WHERE monitor = ? AND tick = ?", [status, note, monitor, tick])

    def monitor_ticks(self, monitor: str) -> pl.DataFrame:
        return self._read("SELECT * FROM monitor_ticks WHERE monitor = ? ORDER BY tick", [monitor])

    def monitor_spent_since(self, monitor: str, since: datetime) -> Decimal:
        """Money the monitor's runs created since ``since`` put at risk (billed, else list cost)."""
        frame = self._read(_SPENT_SINCE, {"monitor": monitor, "since": since})
        return Decimal(0) if frame.is_empty() else Decimal(frame.item())

    # -- incidents ---------------------------------------------------------------------

    def open_incident(self, incident_id: str, monitor: str, *, kind: str, model: str | None,
                      provider: str | None, metric: str | None, tick: int, at: datetime,
                      evidence: Mapping[str, Any]) -> None:
        self._write(
            "INSERT INTO monitor_incidents (incident_id, monitor, kind, model, provider, metric, opened_tick, "
            "opened_at, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [incident_id, monitor, kind, model, provider, metric, tick, at, json.dumps(evidence, default=str)])

    def recover_incident(self, incident_id: str, *, tick: int, at: datetime, evidence: Mapping[str, Any]) -> None:
        self._write("UPDATE monitor_incidents SET recovered_tick = ?, recovered_at = ?, recovery_evidence = ? "
                    "WHERE incident_id = ? AND recovered_tick IS NULL",
                    [tick, at, json.dumps(evidence, default=str), incident_id])

    def incidents(self, monitor: str | None = None, *, open_only: bool = False, pulled: bool = False
                  ) -> pl.DataFrame:
        """This machine's incidents, oldest first (evidence as JSON text); ``pulled``: with those pulled
        from the team store (``origin`` set: another machine's monitor recorded them)."""
        params = {"monitor": monitor, "open_only": open_only}
        where = ("WHERE ($monitor IS NULL OR monitor = $monitor) AND (NOT $open_only OR recovered_tick IS NULL)")
        try:
            return self._read(f"SELECT * FROM monitor_incidents {where} AND ($pulled OR origin IS NULL) "
                              "ORDER BY opened_at, incident_id", {**params, "pulled": pulled})
        except duckdb.BinderException:  # a file from before m019 (a reader does not migrate): none pulled
            return self._read(f"SELECT *, CAST(NULL AS VARCHAR) AS origin FROM monitor_incidents {where} "
                              "ORDER BY opened_at, incident_id", params)

    # -- alert deliveries ----------------------------------------------------------------

    def record_delivery(self, incident_id: str, event: str, attempt: int, at: datetime,
                        status_code: int | None, error: str | None, delivered: bool) -> None:
        self._write("INSERT INTO alert_deliveries VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [incident_id, event, attempt, at, status_code, error, delivered])

    def deliveries(self, monitor: str | None = None) -> pl.DataFrame:
        return self._read(
            "SELECT d.* FROM alert_deliveries AS d JOIN monitor_incidents AS i USING (incident_id) "
            "WHERE $monitor IS NULL OR i.monitor = $monitor ORDER BY d.sent_at, d.attempt", {"monitor": monitor})

    # -- provider catalog per tick ---------------------------------------------------------

    def save_tick_catalog(self, monitor: str, tick: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """One row per (model, provider endpoint) as the catalog listed it at this tick."""
        if not rows:
            return
        frame = pl.DataFrame(
            [{"monitor": monitor, "tick": tick, "model": r["model"], "provider": r["provider"],
              "prompt": None if r.get("prompt") is None else str(r["prompt"]),
              "completion": None if r.get("completion") is None else str(r["completion"]),
              "expiration_date": r.get("expiration_date")} for r in rows],
            schema={"monitor": pl.String, "tick": pl.Int32, "model": pl.String, "provider": pl.String,
                    "prompt": pl.String, "completion": pl.String, "expiration_date": pl.String})
        self._ensure_ready()
        with self._writing() as con:
            con.register("_orbench_tick_catalog", frame)
            try:
                self._in_transaction(con, lambda: [  # a resumed tick's snapshot replaces its first one
                    con.execute("DELETE FROM monitor_catalog WHERE monitor = ? AND tick = ?",
                                [monitor, tick]).fetchall(),
                    con.execute(
                        "INSERT INTO monitor_catalog SELECT monitor, tick, model, provider, "
                        "CAST(prompt AS DECIMAL(38,18)), CAST(completion AS DECIMAL(38,18)), expiration_date "
                        "FROM _orbench_tick_catalog").fetchall()])
            finally:
                con.unregister("_orbench_tick_catalog")

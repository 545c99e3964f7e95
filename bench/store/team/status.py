"""``orbench team status``: what this machine has not pushed, what the server holds, and the lag."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.store import journal
from bench.store.store import Store
from bench.store.team import entries
from bench.store.team.pull import last_pulled
from bench.store.team.push import local_runs, pushed_offsets, sent_keys
from bench.store.team.schema import LOG_TABLE, TeamUnreachable, connect
from bench.store.team.url import TeamDB


def _unpushed_lines(path: Any, offset: int) -> int:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().count(b"\n")
    except FileNotFoundError:
        return 0


def local_status(store: Store, team: TeamDB, origin: str) -> dict[str, Any]:
    """Journal lines and run states of local runs not on the server yet (from the bookkeeping)."""
    runs = local_runs(store)
    offsets = pushed_offsets(store, team)
    lines, behind_runs = 0, []
    for run_id in runs["run_id"].to_list():
        n = _unpushed_lines(journal.journal_path(store.journal_dir, run_id), offsets.get(run_id, 0))
        if n:
            lines += n
            behind_runs.append(run_id)
    sent = sent_keys(store, team)
    states = entries.run_entries(runs, origin)
    unsent = states.filter(~states["entry_key"].is_in(list(sent)))
    pushed_at = store.query("SELECT max(pushed_at) AS t FROM _orbench_team_pushed WHERE team = ?", [team.key])
    seq, pulled_at = last_pulled(store, team)
    return {"team": team.redacted, "local_runs": runs.height, "unpushed_rows": lines,
            "unpushed_runs": sorted(set(behind_runs) | set(unsent["run_id"].to_list())),
            "last_pushed_at": pushed_at["t"][0] if pushed_at.height else None,
            "pulled_seq": seq, "last_pulled_at": pulled_at}


def server_status(team: TeamDB) -> dict[str, Any]:
    with connect(team) as con:
        row = con.execute(
            f"SELECT count(*), count(DISTINCT run_id) FILTER (WHERE kind = 'run'), count(DISTINCT origin), "
            f"coalesce(max(seq), 0), max(pushed_at), count(*) FILTER (WHERE kind = 'request') FROM {LOG_TABLE}"
        ).fetchone()
    assert row is not None
    return {"server_entries": row[0], "server_runs": row[1], "server_origins": row[2], "server_last_seq": row[3],
            "server_last_push_at": row[4], "server_request_entries": row[5]}


def status(store: Store, team: TeamDB, origin: str) -> dict[str, Any]:
    out = local_status(store, team, origin)
    try:
        out.update(server_status(team), server_error=None)
        out["behind_entries"] = max(0, out["server_last_seq"] - out["pulled_seq"])
    except TeamUnreachable as exc:
        out.update(server_error=str(exc))
    return out


def ago(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "never"
    secs = max(0.0, ((now or datetime.now(UTC)) - when).total_seconds())
    if secs < 120:
        return f"{secs:.0f} s ago"
    return f"{secs / 60:.0f} min ago" if secs < 7200 else f"{secs / 3600:.1f} h ago"

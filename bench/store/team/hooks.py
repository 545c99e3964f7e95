"""The few calls a run makes into the team store: a line for the plan, a pusher to start and stop.

Kept here so the engine's part is two lines and the CLI's one: with no ``--team`` /
ORBENCH_TEAM_DB every call is a no-op, and nothing Postgres is imported.
"""

from __future__ import annotations

from bench.config import Settings
from bench.store.runs import default_origin
from bench.store.store import Store
from bench.store.team.url import TeamDB, parse_team_url


def team_of(settings: Settings) -> TeamDB | None:
    """The settings' team store, checked (ConfigError for a bad URL or a weak sslmode), or None."""
    if not settings.team_url:
        return None
    return parse_team_url(settings.team_url, insecure=settings.team_insecure)


def origin_of(settings: Settings) -> str:
    return settings.origin or default_origin()


def plan_lines(settings: Settings) -> list[str]:
    """What the plan says about the team store: where results go, or that it is unreachable now."""
    team = team_of(settings)
    if team is None:
        return []
    from bench.errors import BenchError
    from bench.store.team.schema import TeamUnreachable, check_schema, connect

    try:
        with connect(team, timeout_s=2) as con:
            check_schema(con, team)
    except TeamUnreachable as exc:
        return [f"team store unreachable: results will be pushed later ({exc})"]
    except BenchError as exc:  # no schema yet, or a newer one: the run runs, nothing is pushed now
        return [f"team store not writable: results will be pushed later ({exc})"]
    return [f"team store: {team.redacted} (pushed as the run goes; origin {origin_of(settings)})"]


def start_pusher(settings: Settings, store: Store, run_id: str) -> object | None:
    """A background pusher following the run's journal, or None without a team store."""
    team = team_of(settings)
    if team is None:
        return None
    from bench.store.team.push import Pusher

    return Pusher(store, team, run_id, origin_of(settings)).start()


def stop_pusher(pusher: object | None) -> None:
    """The run ended: its pusher sends what is left from its own thread (the run does not wait)."""
    from bench.store.team.push import Pusher

    if isinstance(pusher, Pusher):
        pusher.stop()


def wait_pushes(settings: Settings, timeout_s: float | None = 60.0) -> list[str]:
    """Wait for the runs' last pushes (after a summary is out); their one-line failures."""
    if team_of(settings) is None:
        return []
    from bench.store.team.push import wait_pushers

    return wait_pushers(timeout_s)


def push_run(settings: Settings, store: Store, run_id: str) -> str | None:
    """Push one run now (after ``orbench check`` re-scored it); returns a one-line failure."""
    team = team_of(settings)
    if team is None:
        return None
    from bench.store.team.push import push
    from bench.store.team.schema import TeamUnreachable

    try:
        push(store, team, [run_id], origin=origin_of(settings))
    except TeamUnreachable as exc:
        return str(exc)
    return None


def push_incidents(settings: Settings, store: Store, monitor: str) -> str | None:
    """After a monitor's tick: its incidents to the team store, if any; returns a one-line failure."""
    team = team_of(settings)
    if team is None:
        return None
    from bench.store.team.push import push_incidents as push_them
    from bench.store.team.schema import TeamUnreachable

    try:
        push_them(store, team, monitor, origin=origin_of(settings))
    except TeamUnreachable as exc:
        return f"{exc}; `orbench team push` sends them later"
    return None


def unpushed_lines(settings: Settings, store: Store, run_id: str) -> list[str]:
    """After a run: a line when some of its rows are not on the team store yet. It first waits for the
    run's pusher to finish its last push (``wait_pushes``), then checks locally, without the network."""
    team = team_of(settings)
    if team is None:
        return []
    wait_pushes(settings)
    from bench.store import journal
    from bench.store.team.push import pushed_offsets

    path = journal.journal_path(store.journal_dir, run_id)
    try:
        with open(path, "rb") as fh:
            fh.seek(pushed_offsets(store, team).get(run_id, 0))
            left = fh.read().count(b"\n")
    except FileNotFoundError:
        return []
    if not left:
        return []
    return [f"team store: {left} journal lines of run {run_id} are not on {team.redacted} yet; "
            "`orbench team push` sends them (`orbench team status` shows the lag)"]

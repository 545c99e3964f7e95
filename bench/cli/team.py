"""``orbench team``: the team store on PostgreSQL (init, push, pull, status); see docs/team.md."""

from __future__ import annotations

import json
from typing import Any

import click

from bench.cli.common import db_option, fail, note, origin_option, team_overrides
from bench.config import Settings
from bench.store.store import Store
from bench.store.team import hooks
from bench.store.team.url import TeamDB


def _team(url: str | None = None) -> tuple[Settings, TeamDB]:
    overrides = team_overrides()
    if url is not None:
        overrides["team_url"] = url
    settings = Settings.from_env(**overrides)
    team = hooks.team_of(settings)
    if team is None:
        fail("no team store: give --team URL or set ORBENCH_TEAM_DB (a libpq URL, see docs/team.md)")
    assert team is not None
    return settings, team


def _settings_db(settings: Settings, db_path: str | None) -> Store:
    return Store(db_path or settings.db_path)


@click.group("team")
def team_group() -> None:
    """The team store on PostgreSQL: many machines push, any machine pulls (see docs/team.md)."""


@team_group.command("init")
@click.argument("url", required=False)
@origin_option
def init_cmd(url: str | None) -> None:
    """Create or migrate the team store's schema at URL (as its owner)."""
    from bench.store.team.schema import init_schema

    _, team = _team(url)
    applied = init_schema(team)
    click.echo(f"team store {team.redacted}: " + (f"applied {', '.join(applied)}" if applied else "up to date"))


@team_group.command("push")
@click.argument("runs", nargs=-1)
@click.option("--all", "push_all", is_flag=True, help="Every run measured here (the default when no RUN is given).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@db_option
@origin_option
def push_cmd(runs: tuple[str, ...], push_all: bool, as_json: bool, db_path: str | None) -> None:
    """Send what the team store does not have yet (RUN..., or --all), and print counts."""
    from bench.store.team.push import push

    settings, team = _team()
    store = _settings_db(settings, db_path)
    store.init()
    ids = None if push_all or not runs else [store.resolve_run(r) for r in runs]
    res = push(store, team, ids, origin=hooks.origin_of(settings))
    if as_json:
        click.echo(json.dumps({"team": team.redacted, "sent": res.sent, "new": res.new}, sort_keys=True))
        return
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(res.sent.items())) or "nothing"
    click.echo(f"pushed to {team.redacted}: {res.total_new} new entries (looked at: {kinds})")


@team_group.command("pull")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@db_option
@origin_option
def pull_cmd(as_json: bool, db_path: str | None) -> None:
    """Bring the team's runs into the local DuckDB (only entries after the last pulled sequence)."""
    settings, team = _team()
    res = pull_into(settings, team, db_path)
    if as_json:
        click.echo(json.dumps({"team": team.redacted, "entries": res.entries, "request_rows": res.requests,
                               "runs": res.runs, "last_seq": res.last_seq,
                               "skipped": sum(res.skipped.values())}, sort_keys=True))
        return
    click.echo(f"pulled from {team.redacted}: {res.entries} entries ({res.requests} request rows, {res.runs} runs); "
               f"up to seq {res.last_seq}")


def pull_into(settings: Settings, team: TeamDB, db_path: Any = None) -> Any:
    from bench.store.team.pull import pull

    return pull(_settings_db(settings, db_path), team, on_skip=note)


@team_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@db_option
@origin_option
def status_cmd(as_json: bool, db_path: str | None) -> None:
    """What this machine has not pushed, what the server holds, and the lag."""
    from bench.store.team.status import ago, status

    settings, team = _team()
    store = _settings_db(settings, db_path)
    store.init()
    st = status(store, team, hooks.origin_of(settings))
    if as_json:
        click.echo(json.dumps(st, default=str, sort_keys=True))
        return
    click.echo(f"team store: {st['team']}")
    click.echo(f"  not pushed: {st['unpushed_rows']} request rows, {len(st['unpushed_runs'])} runs "
               f"(of {st['local_runs']} measured here); last push {ago(st['last_pushed_at'])}")
    if st["server_error"]:
        click.echo(f"  server: unreachable ({st['server_error']})")
    else:
        click.echo(f"  server: {st['server_entries']} entries, {st['server_runs']} runs from "
                   f"{st['server_origins']} origins, last push {ago(st['server_last_push_at'])}")
        click.echo(f"  pulled here: up to seq {st['pulled_seq']} of {st['server_last_seq']} "
                   f"({st['behind_entries']} entries behind), {ago(st['last_pulled_at'])}")

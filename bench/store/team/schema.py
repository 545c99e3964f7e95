"""The team store's PostgreSQL schema: its own numbered steps, and opening a connection.

``orbench_log`` is the whole team store: one append-only table. Each entry has a stable
``entry_key`` (pushing twice adds nothing: ``ON CONFLICT DO NOTHING`` needs only INSERT), a
``kind`` (request, run, sweep, catalog, prices, credit), the machine's ``origin``, the run it
belongs to, and its ``payload`` as JSON text (a journal line for a request). ``seq`` is the
server's order: writers append under one transaction-level advisory lock, so entries commit
in ``seq`` order and a reader that has every entry up to S never misses a later, smaller one.
Client clocks order nothing.

Steps are ``pNNN_<what>``, registered like DuckDB's (``bench.store.migrator``); only
``orbench team init`` (the schema's owner) applies them, writers and readers only check that
the schema is the one they know.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bench.errors import ConfigError, StoreError
from bench.store.migrator import Migrations
from bench.store.team.url import TeamDB

if TYPE_CHECKING:  # the orbench[team] extra; imported lazily at run time
    import psycopg

LOG_TABLE = "orbench_log"
MIGRATIONS_TABLE = "orbench_migrations"
APPEND_LOCK = 0x6F7262656E6368  # "orbench": the advisory lock every append holds until commit
CONNECT_TIMEOUT_S = 3


class TeamUnreachable(StoreError):
    """The team store did not answer (down, refused, wrong password); the message is redacted."""


class _PostgresSteps:
    def applied(self, con: psycopg.Connection[Any]) -> list[str]:
        found = con.execute("SELECT to_regclass(%s) IS NOT NULL", [MIGRATIONS_TABLE]).fetchone()
        if not found or not found[0]:
            return []
        return [r[0] for r in con.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY name").fetchall()]

    @contextmanager
    def transaction(self, con: psycopg.Connection[Any]) -> Iterator[None]:
        with con.transaction():
            yield

    def record(self, con: psycopg.Connection[Any], name: str) -> None:
        con.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (%s, now())", [name])


STEPS: Migrations[psycopg.Connection[Any]] = Migrations("orbench team store", _PostgresSteps())


@STEPS()
def p001_create_log(con: psycopg.Connection[Any]) -> None:
    # The team's log. Append-only by design and by grant (docs/team.md's writer role has
    # INSERT and SELECT, never UPDATE or DELETE). Payload is text, not jsonb: readers parse
    # and check it themselves, and a malformed entry from one machine must not stop a pull.
    con.execute(
        f"""
        CREATE TABLE {LOG_TABLE} (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the server's order
            entry_key TEXT NOT NULL UNIQUE,   -- stable identity: pushing twice adds nothing
            kind TEXT NOT NULL,               -- request|run|sweep|catalog|prices|credit
            origin TEXT NOT NULL,             -- the machine that measured it (--origin)
            run_id TEXT,                      -- the run it belongs to, if any
            payload TEXT NOT NULL,            -- JSON: a journal line, a run row, a snapshot
            pushed_at TIMESTAMPTZ NOT NULL DEFAULT now()  -- for status and lag only; never an order
        )
        """
    )
    con.execute(f"CREATE INDEX {LOG_TABLE}_run ON {LOG_TABLE} (run_id, kind)")


def connect(team: TeamDB, *, autocommit: bool = True, timeout_s: float = CONNECT_TIMEOUT_S) -> psycopg.Connection[Any]:
    """A psycopg connection (password from the URL, PGPASSWORD, ~/.pgpass or a service file)."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError("the team store needs the orbench[team] extra: pip install 'orbench[team]'") from None
    try:
        return psycopg.connect(team.url, autocommit=autocommit, connect_timeout=max(1, int(timeout_s)),
                               application_name="orbench")
    except psycopg.Error as exc:
        raise TeamUnreachable(f"team store {team.redacted}: {_first_line(exc, team)}") from None


def _first_line(exc: BaseException, team: TeamDB) -> str:
    text = (str(exc).strip().splitlines() or ["unreachable"])[0]
    return _scrub(text, team)


def _scrub(text: str, team: TeamDB) -> str:
    """Drivers never print the password, but be sure: any URL in the text is shown redacted."""
    return text.replace(team.url, team.redacted)


def init_schema(team: TeamDB) -> list[str]:
    """Create or migrate the schema (``orbench team init``); returns the steps applied now."""
    with connect(team) as con:
        con.execute("SELECT pg_advisory_lock(%s)", [APPEND_LOCK + 1])  # two inits take turns
        try:
            con.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
                        "(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)")
            return STEPS.apply(con, team.redacted)
        finally:
            con.execute("SELECT pg_advisory_unlock(%s)", [APPEND_LOCK + 1])


def check_schema(con: psycopg.Connection[Any], team: TeamDB) -> None:
    """SchemaTooNew for a newer schema (writes refused); ConfigError when it is missing or older."""
    if STEPS.pending(con, team.redacted):
        raise ConfigError(f"team store {team.redacted} has no orbench schema yet (or an older one); "
                          f"run `orbench team init URL` as its owner")

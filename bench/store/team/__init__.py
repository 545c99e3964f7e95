"""The team store: many machines append to one PostgreSQL log; readers pull it into DuckDB.

Local first: every run still writes its journal and its DuckDB file; Postgres is the team's
append-only log (``orbench_log``: one entry per journal line, run state, sweep, catalog or credit
snapshot, each with a stable ``entry_key`` so pushing twice adds nothing, ordered by a server-side
sequence). Readers pull the entries after their last sequence through ADBC into Arrow, and into
the local DuckDB through the store's one merge (``bench.store.merge.merge_rows``).

Modules: ``url`` (parse, redact, the sslmode rule), ``schema`` (Postgres's numbered migrations),
``entries`` (log entries from the journal and the local store), ``push`` (psycopg COPY; the
background pusher of a run), ``pull`` (ADBC -> Arrow -> DuckDB), ``status``.

May import: bench.store, bench.records, bench.errors, bench.config. Only this package knows
Postgres SQL and drivers; psycopg and adbc_driver_postgresql come with the ``orbench[team]`` extra
and are imported lazily, so the core install never needs them.
"""

__all__ = ["entries", "hooks", "pull", "push", "schema", "status", "url"]

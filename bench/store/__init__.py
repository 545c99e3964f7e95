"""Persistence: the DuckDB file and the crash-proof journal beside it.

Owns the ``Store`` (connections, the idempotent merge, runs, sweeps, catalog and credit
snapshots), the numbered migrations (``migrator.Migrations``: one list per database), the
per-run JSONL journal and the run's row sink; ``merge.merge_rows`` is the one way request rows
enter a file. ``bench.store.team`` is the team store on PostgreSQL (push, pull, its own steps).
SQL lives here and in bench.results only.

May import: bench.suites, bench.records, bench.errors, bench.config. Never bench.api,
bench.results, bench.quality, bench.run or bench.cli.
"""

# The public modules (merge, migrations and snapshots sit behind ``Store``; ``team`` is the
# team store's subpackage, its own ``__all__`` names its modules):
__all__ = ["connection", "journal", "runs", "sink", "store", "team"]

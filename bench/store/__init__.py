"""Persistence: the DuckDB file and the crash-proof journal beside it.

Owns the ``Store`` (connections, the idempotent merge, runs, sweeps, catalog and credit
snapshots), the numbered migrations, the per-run JSONL journal and the run's row sink.
SQL lives here and in bench.results only.

May import: bench.suites, bench.records, bench.errors, bench.config. Never bench.api,
bench.results, bench.quality, bench.run or bench.cli.
"""

# The public modules (merge, migrations and snapshots sit behind ``Store``):
__all__ = ["connection", "journal", "runs", "sink", "store"]

"""Watching over time: the scheduler, one tick, incidents with their state in the database, alerts.

A monitor runs one suite on a schedule (``orbench monitor SUITE --every 30m``) or once per call
(``orbench monitor tick``, for cron and CI). Each tick is an ordinary run made through the same
engine calls as ``orbench run`` (``tick.execute_run``, the one place to switch when a public
"run this Suite" entry point exists), tagged with the monitor's name and tick number. After each
tick ``bench.results.trends.evaluate`` says what opens and recovers; ``incidents`` records it and
``alerts`` POSTs it once (through ``bench.api.webhook``). Everything a restart needs is in the
database (bench.store.monitors), so a restart neither repeats nor skips a tick.

May import: bench.run, bench.api, bench.store, bench.results, bench.suites, bench.quality and the
base modules. Nothing in bench imports this package but bench.cli.
"""

__all__ = ["alerts", "incidents", "tick"]

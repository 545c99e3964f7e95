"""Running a suite: plan -> bounded concurrency -> rows, with the money guards.

Owns the plan, the budget (reservations per attempt), the runner, the engine that wires a
run together (clients, targets, prices, store, resume), re-scoring and load sweeps. Callers
run a suite through one door, ``bench.run.session.run_suite``.

May import: bench.api, bench.store, bench.results, bench.quality, bench.suites,
bench.records, bench.errors, bench.config, bench.local, bench.local_build. Never bench.cli
(the CLI calls this package, not the reverse).
"""

# The public modules: ``session.run_suite`` is the one door for running a suite (engine, plan,
# budget and targets sit behind it); spec, state and runner name what its callers pass and see:
__all__ = ["conversation", "rescore", "runner", "session", "spec", "state", "sweep", "synthetic", "verify"]

"""Quality: evaluating a suite's checks on one answer, and the LLM judge.

One evaluation, used by a run and by ``orbench check`` re-scoring. The check specs it
evaluates are parsed with the suite (bench.suites.checks).

May import: bench.api (judge prices and worst cases), bench.suites, bench.records,
bench.errors. Never bench.store, bench.results, bench.run or bench.cli.
"""

# The public modules:
__all__ = ["checks", "judge"]

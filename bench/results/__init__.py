"""Reading stored runs: summaries, statistics, comparisons, gates, exports and reports.

Everything here is read-only over the store: the CLI summary and tables, the dashboard's
SQL aggregations and per-run sketches, order-statistic intervals, CI gates and JUnit,
exports, the HTML report and the Altair chart builders it shares with the dashboard, and
the decision engine.

May import: bench.store, bench.suites, bench.records, bench.errors, bench.config. Never
bench.run or bench.cli, and never dashboard or streamlit.
"""

# The public modules (aggregates and filters serve the others):
__all__ = [
    "analytics", "charts", "compare", "conformance", "conversations", "decide", "decide_render", "export",
    "gates", "html_report", "pass_rates", "render", "report", "spend", "stats", "summary", "summary_fields",
    "trend_series", "trends"
]

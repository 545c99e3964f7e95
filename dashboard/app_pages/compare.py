"""Compare: cost vs latency (Pareto), one model across providers, run A vs run B, measured vs advertised."""

from __future__ import annotations

import polars as pl
import streamlit as st

from bench.api.catalog import ModelEndpoints
from bench.errors import BenchError
from bench.results import analytics
from dashboard import charts, data, ui

settings, db, runs = ui.page_start("Compare")
labels = ui.run_labels(runs)
ids = list(labels)

# ------------------------------------------------------------ cost vs latency
st.subheader("Cost vs latency")
left, right = st.columns([3, 1])
with right:
    run_ids = ui.run_picker(runs, "cmp")  # shared with every page and the URL
    provider_by = ui.provider_by_picker("cmp", horizontal=False)
    metric = st.radio("Latency", ["ttft_ms", "e2e_ms"], format_func=analytics.METRIC_LABELS.__getitem__,
                      key="cmp-metric")
if not run_ids:
    st.info("Pick at least one run.")
    st.stop()
with ui.store_errors():
    groups = data.group_stats(db, tuple(run_ids), provider_by=provider_by)
points = analytics.pareto_points(groups, metric)
with left:
    st.altair_chart(charts.pareto_chart(points, analytics.METRIC_LABELS[metric]), width="stretch",
                    key="chart-pareto")
st.dataframe(
    points.select("group", "n_ok", "p50_ms", "cost_per_request_usd", "pass_rate", "on_frontier")
    if points.height else points,
    hide_index=True, key="table-pareto",
    column_config={"p50_ms": st.column_config.NumberColumn(f"p50 {analytics.METRIC_LABELS[metric]}", format="%.1f"),
                   "cost_per_request_usd": st.column_config.NumberColumn("USD / request", format="$%.8f"),
                   "pass_rate": st.column_config.NumberColumn("pass rate", format="percent")},
)

# ------------------------------------------------------------ one model across providers
st.subheader("One model across providers")
models = groups["model"].unique(maintain_order=True).to_list() if groups.height else []
if models:
    model = st.selectbox("Model", models, key="cmp-model")
    with ui.store_errors():
        ttft = data.percentile_table(db, "ttft_ms", tuple(run_ids), (model,), provider_by=provider_by)
        e2e = data.percentile_table(db, "e2e_ms", tuple(run_ids), (model,), provider_by=provider_by)
    side = analytics.provider_comparison(groups.filter(pl.col("model") == model), ttft, e2e)
    st.altair_chart(charts.provider_bars(side, model), key="chart-providers")

# ------------------------------------------------------------ run A vs run B
st.subheader("Run A vs run B")
if len(ids) < 2:
    st.info("Two runs are needed for a comparison.")
else:
    a_col, b_col = st.columns(2)
    run_a = a_col.selectbox("Run A (before)", ids, index=1, format_func=labels.__getitem__, key="cmp-a")
    run_b = b_col.selectbox("Run B (after)", ids, index=0, format_func=labels.__getitem__, key="cmp-b")
    with ui.store_errors(), st.spinner("Bootstrapping medians..."):
        diff = data.run_comparison(db, run_a, run_b, provider_by)
    st.altair_chart(charts.diff_chart(diff), width="stretch", key="chart-diff")
    st.dataframe(diff, hide_index=True, key="table-diff",
                 column_config={"change_pct": st.column_config.NumberColumn("change %", format="%+.1f"),
                                "ci_lo_pct": st.column_config.NumberColumn("CI lo %", format="%+.1f"),
                                "ci_hi_pct": st.column_config.NumberColumn("CI hi %", format="%+.1f")})
    st.caption(f"Median of every ok request per group and run; 95 % bootstrap interval of the difference "
               f"({data.COMPARE_RESAMPLES:,} resamples, seeded), as `orbench compare` computes it. "
               "*Beyond noise* = the interval excludes 0.")

# ------------------------------------------------------------ measured vs advertised
st.subheader("Measured vs advertised latency")
with ui.store_errors():
    all_models = data.filter_options(db, tuple(run_ids)).get("models", [])
if all_models:
    adv_model = st.selectbox("Model", all_models, key="cmp-adv-model")
    with ui.store_errors():
        served = data.group_stats(db, tuple(run_ids), (adv_model,), provider_by="served")
    eps: ModelEndpoints | None
    try:
        eps = data.endpoints(settings.base_url, adv_model)
    except BenchError as exc:
        eps = None
        st.warning(f"Could not load {adv_model}'s endpoints: {exc}")
    frame = analytics.advertised_vs_measured(served, eps)
    st.altair_chart(charts.advertised_chart(frame, adv_model), width="stretch", key="chart-advertised")
    if eps and all(e.latency_last_30m is None for e in eps.endpoints):
        st.caption("OpenRouter sends no latency statistics without an API key.")
    st.caption("Advertised = the endpoints API's `latency_last_30m.p50` (time to first token, ms, all "
               "OpenRouter traffic); measured = this database's TTFT p50 per served-by provider.")

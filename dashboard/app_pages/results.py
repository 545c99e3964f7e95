"""Results: latency distributions, percentiles with CIs, decode speed, cost, timeline, responses."""

from __future__ import annotations

import streamlit as st

from bench.results import analytics
from dashboard import charts, data, ui

settings, db, runs = ui.page_start("Results")

choice = ui.filters(db, runs, key="results")
with ui.store_errors():
    groups = data.group_stats(db, *choice.args)
if groups.is_empty():
    st.info("No measured requests match these filters.")
    st.stop()
if runs.filter(runs["run_id"].is_in(list(choice.run_ids)))["simulated"].any():
    st.caption(":material/science: The selected runs include **simulated** (sandbox) runs.")

top = analytics.headline(groups)
cols = st.columns(5)
cols[0].metric("Requests sent (excl. warm-up)", f"{top['n']:,}")
cols[1].metric("OK", f"{top['ok']:,}")
cols[2].metric("Error rate", "—" if top["error_rate"] is None else f"{top['error_rate']:.1%}")
cols[3].metric("429 rate", "—" if top["rate_limited_rate"] is None else f"{top['rate_limited_rate']:.1%}")
cols[4].metric("Billed", ui.money(top["cost_usd"]))

st.subheader("Latency by model × provider")
st.caption("Box p25–p75, line p5–p95, tick median; ok requests only. Error and 429 rates "
           "(of requests sent) beside each chart.")
SKETCHED = bool(groups["sketched"].any())
if SKETCHED:
    st.caption(":material/speed: Percentiles here come from per-run sketches (within ±0.5 % of the "
               "exact value) because the selection is large; counts, error and 429 rates, tokens and "
               "costs are exact. Pick a case filter to compute everything from the request rows.")
rates = analytics.rates(groups)
st.altair_chart(charts.latency_with_errors(analytics.box_stats(groups, "ttft_ms"), rates, "TTFT ms",
                                           "Time to first token"), key="chart-ttft")
st.altair_chart(charts.latency_with_errors(analytics.box_stats(groups, "e2e_ms"), rates,
                                           "end-to-end ms", "End to end (last token)"), key="chart-e2e")

st.subheader("Percentiles with 95% confidence intervals")
metric = st.radio("Metric", ["ttft_ms", "e2e_ms", "decode_tps"], format_func=analytics.METRIC_LABELS.__getitem__,
                  horizontal=True, key="results-pct-metric")
with ui.store_errors():
    pct = data.percentile_table(db, metric, *choice.args)
st.dataframe(ui.percentile_display(pct), hide_index=True, key="table-percentiles",
             column_config={f"p{q}": st.column_config.NumberColumn(format="%.1f") for q in (50, 90, 95, 99)})
st.caption("Intervals are distribution-free (order statistics). p99 needs at least 368 ok requests "
           "and p50 at least 6; below that the table says *n too small* instead of passing off the max."
           + (" The interval ranks are exact; the values read at them come from the per-run sketches "
              "(within ±0.5 %)." if SKETCHED else ""))

st.subheader("Decode speed")
st.altair_chart(charts.latency_with_errors(
    analytics.box_stats(groups, "decode_tps"), rates,
    "decode tokens/s = (output tokens − 1) / (last − first token time)",
    "Decode tokens/s (excludes the wait for the first token)"), key="chart-decode")

st.subheader("Cost")
st.altair_chart(charts.cost_chart(analytics.cost_frame(groups)), width="stretch", key="chart-cost")
st.dataframe(ui.summary_display(groups), hide_index=True, column_config=ui.SUMMARY_FORMATS,
             key="table-summary")
st.caption("Billed = cost OpenRouter reported; list = catalog price × tokens from the snapshot taken "
           "at run start. Per request = over requests sent (failed ones can be billed too).")

with ui.store_errors():
    conv_summary, conv_turns = data.conversation_stats(db, choice.run_ids)
if conv_summary.height:
    st.subheader("Conversations")
    st.dataframe(ui.conversation_display(conv_summary), hide_index=True, key="table-conversations")
    st.altair_chart(charts.conversation_chart(conv_turns), key="chart-conversations")
    st.caption("Cost per conversation = billed cost of every turn of a complete conversation, averaged; "
               "baseline = the same tokens at list price with nothing cached (computed, not run); "
               "cache saved = 1 − billed ÷ baseline. Switches = consecutive turns served by different "
               "providers (each provider keeps its own prompt cache).")

st.subheader("Timeline of one run")
labels = ui.run_labels(runs)
run_id = st.selectbox("Run", list(choice.run_ids), format_func=labels.__getitem__, key="results-timeline-run")
with ui.store_errors():
    tl, total = data.timeline(db, run_id, 0, *choice.args[1:])
first = 0
if total > data.TIMELINE_WINDOW:
    first = st.slider("Window start (request number, in start order)", 0, total - 1, 0,
                      step=data.TIMELINE_WINDOW, key="results-timeline-first")
    if first:
        with ui.store_errors():
            tl, total = data.timeline(db, run_id, first, *choice.args[1:])
st.altair_chart(charts.timeline_chart(tl, total, first), width="stretch", key="chart-timeline")
st.caption("One bar per request from send to stream end, packed into in-flight slots. Idle gaps "
           "and bursts of simultaneous starts show queueing; the chart below shows drift.")
with ui.store_errors():
    st.altair_chart(charts.drift_chart(data.drift(db, run_id, *choice.args[1:])), width="stretch",
                    key="chart-drift")

with st.expander("Responses (plain text)"):
    with ui.store_errors():
        out = data.outputs(db, *choice.args)
    st.dataframe(out.drop("output_text"), hide_index=True, key="table-outputs")
    if out.height:
        names = [f"{m} · {c} · #{i}" for m, c, i in zip(out["model"], out["case_id"], out["request_idx"])]
        idx = st.selectbox("Show the full text of request", range(out.height), key="results-output-row",
                           format_func=names.__getitem__)
        st.text(out["output_text"][idx] or out["error"][idx] or "(no text)")

"""Export: filtered per-request rows and the summary as CSV/Parquet; charts as PNG/SVG (offline);
the self-contained HTML report of the selected runs (the file ``orbench report`` writes)."""

from __future__ import annotations

import streamlit as st

from bench.results import analytics, export, html_report
from dashboard import charts, data, ui

settings, db, runs = ui.page_start("Export")
choice = ui.filters(db, runs, key="export")
with ui.store_errors():
    n_rows = data.count_rows(db, *choice.args)
    groups = data.group_stats(db, *choice.args)

st.subheader("Per-request rows")
st.write(f"{n_rows:,} rows match (warm-ups excluded). Money stays exact: decimal text in CSV, "
         "DECIMAL in Parquet.")
c1, c2 = st.columns(2)
c1.download_button("Rows as CSV", lambda: export.render(data.export_rows(db, *choice.args), "csv"),
                   file_name="orbench-requests.csv", mime="text/csv", icon=":material/table:",
                   key="dl-rows-csv", on_click="ignore")
c2.download_button("Rows as Parquet", lambda: export.render(data.export_rows(db, *choice.args), "parquet"),
                   file_name="orbench-requests.parquet", mime="application/vnd.apache.parquet",
                   icon=":material/table:", key="dl-rows-parquet", on_click="ignore")

st.subheader("Summary per model × provider")
summary = groups
st.dataframe(ui.summary_display(groups), hide_index=True, column_config=ui.SUMMARY_FORMATS,
             key="table-export-summary")
c1, c2 = st.columns(2)
c1.download_button("Summary as CSV", export.render(summary, "csv"), file_name="orbench-summary.csv",
                   mime="text/csv", key="dl-summary-csv", on_click="ignore")
c2.download_button("Summary as Parquet", export.render(summary, "parquet"),
                   file_name="orbench-summary.parquet", mime="application/vnd.apache.parquet",
                   key="dl-summary-parquet", on_click="ignore")

st.subheader("A chart as an image")
rates = analytics.rates(groups)
builders = {
    "TTFT by model × provider": lambda: charts.latency_with_errors(
        analytics.box_stats(groups, "ttft_ms"), rates, "TTFT ms", "Time to first token"),
    "End-to-end latency": lambda: charts.latency_with_errors(
        analytics.box_stats(groups, "e2e_ms"), rates, "end-to-end ms", "End to end"),
    "Cost per 1,000 requests": lambda: charts.cost_chart(analytics.cost_frame(groups)),
    "Cost vs latency (Pareto)": lambda: charts.pareto_chart(analytics.pareto_points(groups), "TTFT"),
}
which = st.selectbox("Chart", list(builders), key="export-chart")
chart = builders[which]()
st.altair_chart(chart, key="chart-export-preview")
stem = "orbench-" + which.split(" ")[0].lower()
c1, c2 = st.columns(2)
c1.download_button("PNG", lambda: charts.chart_image(chart, "png"), file_name=f"{stem}.png",
                   mime="image/png", icon=":material/image:", key="dl-chart-png", on_click="ignore")
c2.download_button("SVG", lambda: charts.chart_image(chart, "svg"), file_name=f"{stem}.svg",
                   mime="image/svg+xml", icon=":material/image:", key="dl-chart-svg", on_click="ignore")
st.caption("Images are rendered on the server by vl-convert's bundled Vega; nothing is fetched from a CDN.")

st.subheader("Report (one self-contained HTML file)")
labels = ui.run_labels(runs)
baseline = st.selectbox("Baseline (optional): mark each run's changes against it", [None, *labels],
                        format_func=lambda r: "no baseline" if r is None else labels[r], key="export-baseline")
st.download_button(
    "Report as HTML", lambda: html_report.build_report(data.store(db), choice.run_ids, baseline),
    file_name="orbench-report.html", mime="text/html", icon=":material/description:", key="dl-report-html",
    on_click="ignore")
st.caption(f"Runs {', '.join(choice.run_ids)}, whole (the model, provider and case filters do not apply): "
           "metadata, summary with 95% intervals, the Results and Quality charts, the frontier"
           + (", changes against the baseline" if baseline else "") + " and the failed answers. "
           "The same file as `orbench report`; it opens in any browser with no network.")

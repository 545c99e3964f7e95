"""Trends: one monitor over time (``orbench monitor``). It opens on "now": what is degraded or down.

Then one chart per metric: the per-tick median with its 95 % interval, the rolling 72 h median,
incidents shaded and price changes marked. Figures come from ``bench.results.trend_series`` and
the monitor's stored incidents, through ``data``; the view is in the URL
(``?monitor=NAME&since=7d&model=...&provider=...&origin=...``). On a team store's cache the same
monitor's ticks from several origins (regions) show side by side, one line per origin; incidents and
price marks are recorded by the machine that runs the monitor, so a reader sees those of its own.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, data, ui

settings = data.current_settings()
db = str(settings.db_path)
st.title("Trends")
with ui.store_errors():
    monitors = data.monitors(db)
if monitors.is_empty():
    st.info(f"`{db}`: no monitors yet. A monitor runs a suite on a schedule, one ordinary run per tick, "
            "and opens an incident when latency, errors, quality, prices or routing change. Start one with:")
    st.code(f"orbench monitor data/suites/latency.yaml --every 30m --sandbox --db {db}", language="bash")
    st.stop()

names = monitors["name"].to_list()
left, right = st.columns([2, 1])
with left:
    monitor = ui.shared_selectbox("Monitor", names, "monitor", "trends-monitor")
with right:
    if "since" not in ui.view():
        ui.view_set("since", ["7d"])  # opens on the last week
    span = ui.shared_radio("Span", list(data.TREND_SPANS), "since", "trends-since", horizontal=True)
row = monitors.row(names.index(monitor), named=True)
with ui.store_errors():
    incidents = data.monitor_incidents(db, monitor)
    series = data.trend_series(db, monitor, data.TREND_SPANS[span])
    marks = data.price_marks(db, monitor)

# -- now: what is degraded or down at this moment ------------------------------------------------
st.subheader("Now")
open_now = incidents.filter(pl.col("recovered_tick").is_null()) if not incidents.is_empty() else incidents
last = row["last_tick_at"]
remote = row["every_s"] is None  # ticks pulled from the team store; the monitor runs elsewhere
if remote:  # another machine's names: text, never Markdown
    st.text(f"{row['ticks']} ticks from the team store · last {last:%Y-%m-%d %H:%M UTC} · suite "
            f"{row['suite_path']}. This monitor runs on another machine: its incidents are as that machine "
            "last pushed them (price marks stay there).")
else:
    st.caption(f"{row['ticks']} ticks · last {last:%Y-%m-%d %H:%M UTC} · next due "
               f"{row['next_tick_at']:%H:%M:%S UTC} · suite `{row['suite_path']}`"
               if last and row["next_tick_at"] else f"{row['ticks']} ticks · suite `{row['suite_path']}`")
if open_now.is_empty():
    st.success("Nothing is degraded or down: no open incident" + (" on the team store." if remote else "."),
               icon=":material/check_circle:")
for inc in open_now.iter_rows(named=True):
    icon = ":material/error:" if inc["kind"] == "outage" else ":material/warning:"
    where = f" · seen from {ui.md_escape(inc['origin'])}" if inc.get("origin") else ""
    st.error(f"**{inc['kind']}** on {ui.md_escape(inc['model'] or 'catalog')} · {ui.md_escape(inc['provider'])} "
             f"({inc['metric']}), open since tick {inc['opened_tick']} ({inc['opened_at']:%Y-%m-%d %H:%M UTC})"
             f"{where}", icon=icon)

if series.is_empty():
    st.info(f"No tick of “{ui.md_escape(monitor)}” in the last {span}.")
    st.stop()

# -- filters and charts ----------------------------------------------------------------------------
origins = sorted(series["origin"].unique().to_list())
columns = st.columns(3 if len(origins) > 1 else 2)
with columns[0]:
    models = ui.shared_multiselect("Models", sorted(series["model"].unique().to_list()), "model", "trends-models",
                                   placeholder="all models")
with columns[1]:
    providers = ui.shared_multiselect("Providers", sorted(series["provider"].unique().to_list()), "provider",
                                      "trends-providers", placeholder="all providers")
picked_origins: list[str] = []
if len(origins) > 1:  # a team store's cache: the same monitor run from several regions
    with columns[2]:
        picked_origins = ui.shared_multiselect("Origins", origins, "origin", "trends-origins",
                                               placeholder="all origins")
shown = series
if models:
    shown = shown.filter(pl.col("model").is_in(models))
if providers:
    shown = shown.filter(pl.col("provider").is_in(providers))
if picked_origins:
    shown = shown.filter(pl.col("origin").is_in(picked_origins))
shaded = incidents
if not shaded.is_empty() and (models or providers):
    shaded = shaded.filter((pl.col("model").is_in(models) if models else pl.lit(True))
                           & (pl.col("provider").is_in(providers) if providers else pl.lit(True))
                           | pl.col("model").is_null())
for metric, label in data.TREND_METRICS.items():
    part = shown.filter(pl.col("metric") == metric)
    kinds = shaded.filter(pl.col("metric").is_in([metric, "error_rate"])) if not shaded.is_empty() else shaded
    st.altair_chart(charts.trend_chart(part, label, kinds, marks, by_origin=len(origins) > 1), width="stretch",
                    key=f"chart-trend-{metric}")
st.caption("Line: the per-tick median, band: its 95 % interval (order statistics), dashed: the median of "
           "the per-tick medians over the 72 h before each tick. Red: outages and incidents of the metric "
           "(to the last tick while open). Purple rules: a listed price changed.")
most = int(shown["ticks"].max() or 1) if not shown.is_empty() else 1  # type: ignore[arg-type]
if most > 1:
    st.caption(f"{span} is more ticks than a chart can show: each point is a bucket of up to "
               f"{most} consecutive ticks, the median of their per-tick medians, its band from "
               "their lowest to their highest interval bound (hover: how many ticks). `orbench trends` and "
               "shorter spans use every tick.")

st.subheader("Incidents")
if incidents.is_empty():
    st.caption("None recorded.")
else:
    st.dataframe(incidents.select("kind", "model", "provider", "metric", "opened_tick", "recovered_tick",
                                  "opened_at", "recovered_at", "origin", "evidence").sort("opened_at", descending=True),
                 hide_index=True, key="table-trends-incidents")

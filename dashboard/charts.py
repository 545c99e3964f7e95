"""The dashboard's Altair chart builders: a small polars frame in, a chart out; no Streamlit here.

The builders the HTML report draws too (latency boxes with error rates, cost, timeline,
drift, the frontier, quality) live in ``bench.results.charts`` (bench never imports the
dashboard) and are re-exported here, so the pages use one module. The same rules hold for
the ones below: every frame is already aggregated or capped by ``bench.results``, and a
frame over Altair's 5,000-row limit is refused, never silently trimmed.
"""

from __future__ import annotations

import altair as alt
import polars as pl
import vl_convert as vlc

from bench.results.charts import (
    FIT_X,
    INDEPENDENT_COLORS,
    LABEL_LIMIT,
    MAX_ROWS,
    box_chart,
    check_rows,
    conversation_chart,
    cost_chart,
    drift_chart,
    empty_chart,
    latency_with_errors,
    pareto_chart,
    pareto_layers,
    quality_chart,
    rate_chart,
    stretch,
    timeline_chart,
)

__all__ = [
    "FIT_X", "MAX_ROWS", "VERDICT_COLORS", "advertised_chart", "box_chart", "chart_image", "conversation_chart",
    "cost_chart",
    "decide_frontier", "diff_chart", "drift_chart", "empty_chart", "latency_with_errors", "monthly_cost_chart",
    "pareto_chart", "price_history_chart", "provider_bars", "quality_chart", "rate_chart", "spend_chart",
    "goodput_chart", "load_curve", "timeline_chart", "trend_chart",
]

VERDICT_COLORS = {"meets": "#2e7d32", "uncertain": "#f9a825", "fails": "#c62828"}


def decide_frontier(points: pl.DataFrame, latency_label: str, latency_limit: float | None = None,
                    cost_limit: float | None = None) -> alt.LayerChart | alt.FacetChart | alt.Chart:
    """The Decide page's frontier: cost vs latency coloured by verdict, the limits as rule lines.

    ``points``: ``pareto_chart``'s columns plus ``verdict``. ``latency_limit`` (ms, on the x
    metric) draws a vertical rule, ``cost_limit`` (USD per request) a horizontal one; both red dashed.
    """
    pts = points.drop_nulls(["p50_ms", "cost_per_request_usd"]) if points.height else points
    if pts.is_empty():
        return empty_chart("no candidate has both a latency and a cost")
    check_rows(pts, "decide_frontier")
    color = alt.Color("verdict:N", title="verdict", legend=alt.Legend(orient="bottom"),
                      scale=alt.Scale(domain=list(VERDICT_COLORS), range=list(VERDICT_COLORS.values())))
    line, dots = pareto_layers(pts, latency_label, color)
    layers: list[alt.Chart] = [line, dots]
    limits = [("x", latency_limit, f"{latency_label} limit"), ("y", cost_limit, "cost limit")]
    for axis, value, name in limits:
        if value is None:
            continue
        field = "p50_ms" if axis == "x" else "cost_per_request_usd"
        rule = pl.DataFrame({field: [float(value)], "limit": [name]})
        enc = {axis: alt.X(f"{field}:Q") if axis == "x" else alt.Y(f"{field}:Q"),
               "tooltip": [alt.Tooltip("limit:N"), alt.Tooltip(f"{field}:Q")]}
        layers.append(alt.Chart(rule).mark_rule(color="#c62828", strokeDash=[6, 4], size=2).encode(**enc))
    title = "Cost vs latency by verdict (dashed black: Pareto frontier; red: your limits)"
    return alt.layer(*layers, **stretch(title, 480))


def provider_bars(frame: pl.DataFrame, model: str) -> alt.HConcatChart | alt.Chart:
    """One model across providers: p50 TTFT and e2e with CI whiskers (n in the label), error rates beside.

    ``frame`` columns: provider, metric, p50_ms, ci_lo_ms, ci_hi_ms, n, error_rate,
    rate_limited_rate, sent.
    """
    if frame.is_empty():
        return empty_chart(f"{model}: no ok requests")
    check_rows(frame, "provider_bars")
    order = frame["provider"].unique(maintain_order=True).to_list()
    y = alt.Y("provider:N", sort=order, title=None)
    bars = alt.Chart().mark_bar().encode(
        y=y, yOffset=alt.YOffset("metric:N"),
        x=alt.X("p50_ms:Q", title="p50 ms (whisker: 95% CI)"),
        color=alt.Color("metric:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("provider:N"), alt.Tooltip("metric:N"), alt.Tooltip("n:Q"),
                 alt.Tooltip("p50_ms:Q", format=",.1f"), alt.Tooltip("ci_lo_ms:Q", format=",.1f"),
                 alt.Tooltip("ci_hi_ms:Q", format=",.1f")],
    )
    err = alt.Chart().mark_rule(color="black").encode(
        y=y, yOffset=alt.YOffset("metric:N"), x=alt.X("ci_lo_ms:Q"), x2=alt.X2("ci_hi_ms:Q"))
    n_text = alt.Chart().mark_text(align="left", dx=4, fontSize=10).encode(
        y=y, yOffset=alt.YOffset("metric:N"), x=alt.X("ci_hi_ms:Q"), text=alt.Text("n_label:N"))
    data = frame.with_columns(pl.concat_str([pl.lit("n="), pl.col("n").cast(pl.String)]).alias("n_label"))
    left = alt.layer(bars, err, n_text, data=data, title=f"{model} across providers", width=480,
                     height=max(80, 44 * len(order)))
    rates = frame.unique(subset=["provider"], maintain_order=True).select(
        pl.col("provider").alias("group"), "sent", "error_rate", "rate_limited_rate")
    return alt.hconcat(left, rate_chart(rates, order), resolve=INDEPENDENT_COLORS)


def diff_chart(diff: pl.DataFrame) -> alt.LayerChart | alt.FacetChart | alt.Chart:
    """Run A -> run B: median change in % per group and metric, with its CI; beyond-noise coloured.

    ``diff`` columns: group, metric, change_pct, ci_lo_pct, ci_hi_pct, verdict.
    """
    d = diff.drop_nulls("change_pct") if diff.height else diff
    if d.is_empty():
        return empty_chart("the two runs share no group with measurements")
    check_rows(d, "diff_chart")
    y = alt.Y("group:N", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT))
    color = alt.Color("verdict:N", scale=alt.Scale(domain=["beyond noise", "within noise"],
                                                   range=["#d62728", "#9e9e9e"]),
                      legend=alt.Legend(orient="bottom", title=None))
    pts = alt.Chart(d).mark_point(filled=True, size=80).encode(
        y=y, yOffset=alt.YOffset("metric:N"),
        x=alt.X("change_pct:Q", title="median change B vs A, % (whisker: 95% CI)"),
        color=color, shape=alt.Shape("metric:N", legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip("group:N"), alt.Tooltip("metric:N"), alt.Tooltip("change_pct:Q", format="+.1f"),
                 alt.Tooltip("ci_lo_pct:Q", format="+.1f"), alt.Tooltip("ci_hi_pct:Q", format="+.1f"),
                 alt.Tooltip("verdict:N")],
    )
    ci = alt.Chart(d).mark_rule().encode(y=y, yOffset=alt.YOffset("metric:N"), x=alt.X("ci_lo_pct:Q"),
                                         x2=alt.X2("ci_hi_pct:Q"), color=color)
    zero = alt.Chart(pl.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[3, 3], color="black").encode(
        x=alt.X("x:Q"))
    height = max(100, 30 * d["group"].n_unique() * max(1, d["metric"].n_unique()))
    return alt.layer(zero, ci, pts, **stretch("Run B vs run A (red: change larger than the noise)", height))


def advertised_chart(frame: pl.DataFrame, model: str) -> alt.Chart:
    """Measured TTFT p50 next to OpenRouter's advertised latency_last_30m p50, per provider.

    ``frame`` columns: provider, source ("measured TTFT p50" / "advertised p50 (last 30 min)"), ms, n.
    """
    f = frame.drop_nulls("ms") if frame.height else frame
    if f.is_empty():
        return empty_chart(f"{model}: nothing measured or advertised")
    height = max(80, 40 * f["provider"].n_unique())
    return alt.Chart(f, **stretch(f"{model}: measured vs advertised TTFT", height)).mark_bar().encode(
        y=alt.Y("provider:N", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        yOffset=alt.YOffset("source:N"),
        x=alt.X("ms:Q", title="time to first token, ms"),
        color=alt.Color("source:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("provider:N"), alt.Tooltip("source:N"), alt.Tooltip("ms:Q", format=",.0f"),
                 alt.Tooltip("n:Q")],
    )


# ------------------------------------------------------------------- catalog, credits
def price_history_chart(history: pl.DataFrame, model: str) -> alt.Chart:
    """Prompt and completion price per 1M tokens over catalog snapshots.

    ``history`` columns: taken_at, kind, usd_per_m, simulated.
    """
    if history.is_empty():
        return empty_chart(f"{model}: no stored catalog snapshot has this model yet")
    title = f"{model}: list price history (from snapshots taken by runs)"
    return alt.Chart(history, **stretch(title, 260)).mark_line(point=True, interpolate="step-after").encode(
        x=alt.X("taken_at:T", title="snapshot taken"),
        y=alt.Y("usd_per_m:Q", title="USD per 1M tokens"),
        color=alt.Color("kind:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("taken_at:T", format="%Y-%m-%d %H:%M"), alt.Tooltip("kind:N"),
                 alt.Tooltip("usd_per_m:Q", format="$,.4f")],
    )


def monthly_cost_chart(costs: pl.DataFrame) -> alt.Chart:
    """Monthly cost per model from the calculator. ``costs`` columns: model, monthly_usd."""
    f = costs.drop_nulls("monthly_usd") if costs.height else costs
    if f.is_empty():
        return empty_chart("pick models with a fixed price")
    return alt.Chart(f, **stretch("Estimated monthly cost", max(80, 28 * f.height))).mark_bar().encode(
        y=alt.Y("model:N", sort="x", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        x=alt.X("monthly_usd:Q", title="USD per month (30 days)"),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("monthly_usd:Q", format="$,.2f")],
    )


def spend_chart(spend: pl.DataFrame, key: str, title: str) -> alt.Chart:
    """Spend bars: billed and list USD per ``key`` (run or model). Columns: key, billed_usd, list_usd."""
    if spend.is_empty():
        return empty_chart("nothing spent yet")
    check_rows(spend, "spend_chart")
    long = spend.select(
        pl.col(key).alias("key"),
        pl.col("billed_usd").cast(pl.Float64).alias("billed (reported)"),
        pl.col("list_usd").cast(pl.Float64).alias("list (catalog x tokens)"),
    ).unpivot(index="key", variable_name="kind", value_name="usd")
    return alt.Chart(long.drop_nulls("usd"), **stretch(title, max(80, 30 * spend.height))).mark_bar().encode(
        y=alt.Y("key:N", sort=spend[key].to_list(), title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        yOffset=alt.YOffset("kind:N"),
        x=alt.X("usd:Q", title="USD"),
        color=alt.Color("kind:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("key:N"), alt.Tooltip("kind:N"), alt.Tooltip("usd:Q", format="$,.6f")],
    )


# ------------------------------------------------------------------- images
def chart_image(chart: alt.TopLevelMixin, fmt: str, scale: float = 2.0) -> bytes:
    """PNG or SVG bytes rendered offline by vl-convert (bundled Vega; no URL is ever fetched)."""
    spec = chart.to_dict()
    if spec.get("width") == "container":
        spec["width"] = 700
    # "container" width means nothing outside a page; give every sub-chart a width.
    for sub in spec.get("hconcat", []) + spec.get("vconcat", []):
        if sub.get("width") == "container":
            sub["width"] = 520
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec, vl_version="6.4", allowed_base_urls=[]).encode()
    if fmt == "png":
        return vlc.vegalite_to_png(spec, vl_version="6.4", scale=scale, allowed_base_urls=[])
    raise ValueError(f"unknown image format {fmt!r}")


# ------------------------------------------------------------------- load (sweeps)
def _level_x(axis: str, levels: list[float]) -> alt.X:
    # Sweep levels usually double (1, 2, 4, ...): a log-2 axis spaces them evenly; ticks at the levels.
    return alt.X("level:Q", title=axis, scale=alt.Scale(type="log", base=2),
                 axis=alt.Axis(values=levels, format="~g"))


def load_curve(points: pl.DataFrame, x_label: str, y_label: str,
               slos: list[tuple[float, str]]) -> alt.LayerChart | alt.FacetChart | alt.Chart:
    """Throughput (x) against latency (y) per model x provider: one point per step, joined in
    level order and labelled with the level, the latency's 95 % interval as a vertical bar,
    and each SLO on this latency as a red dashed rule.

    ``points``: ``dashboard.data.load_points`` (group, level, label, n, throughput, latency,
    latency_lo, latency_hi, ...); ``slos``: (limit, text) pairs.
    """
    pts = points.drop_nulls(["throughput", "latency"]) if points.height else points
    if pts.is_empty():
        return empty_chart("no step has both a throughput and this latency")
    check_rows(pts, "load_curve")
    color = alt.Color("group:N", title="model [provider]",
                      legend=alt.Legend(orient="bottom", columns=2, labelLimit=LABEL_LIMIT))
    x = alt.X("throughput:Q", title=x_label)
    y = alt.Y("latency:Q", title=f"{y_label} (bars: 95% CI)")
    tooltip = [alt.Tooltip("group:N"), alt.Tooltip("label:N", title="level"), alt.Tooltip("n:Q"),
               alt.Tooltip("throughput:Q", format=",.2f", title=x_label),
               alt.Tooltip("latency:Q", format=",.1f", title=y_label),
               alt.Tooltip("latency_lo:Q", format=",.1f", title="CI low"),
               alt.Tooltip("latency_hi:Q", format=",.1f", title="CI high")]
    line = alt.Chart(pts).mark_line(strokeWidth=2).encode(x=x, y=y, color=color, order=alt.Order("level:Q"))
    dots = alt.Chart(pts).mark_point(filled=True, size=70).encode(x=x, y=y, color=color, tooltip=tooltip)
    labels = alt.Chart(pts).mark_text(align="left", dx=7, dy=-9, fontSize=12).encode(
        x=x, y=y, text=alt.Text("label:N"), color=color)
    layers: list[alt.Chart] = [line, dots, labels]
    bars = pts.drop_nulls(["latency_lo", "latency_hi"])
    if bars.height:
        layers.insert(0, alt.Chart(bars).mark_rule(strokeWidth=2, opacity=0.6).encode(
            x=x, y=alt.Y("latency_lo:Q"), y2=alt.Y2("latency_hi:Q"), color=color))
    if slos:
        right = max(float(v) for v in pts["throughput"].drop_nulls().to_list())
        rules = pl.DataFrame({"latency": [v for v, _ in slos], "slo": [f"SLO {t}" for _, t in slos],
                              "throughput": [right] * len(slos)})
        layers.append(alt.Chart(rules).mark_rule(color="#c62828", strokeDash=[6, 4], size=2).encode(
            y=alt.Y("latency:Q"), tooltip=[alt.Tooltip("slo:N")]))
        layers.append(alt.Chart(rules).mark_text(align="right", dy=-7, color="#c62828", fontSize=12).encode(
            x=alt.X("throughput:Q"), y=alt.Y("latency:Q"), text=alt.Text("slo:N")))
    title = "Throughput vs latency: one point per step, labelled with its level (red: SLO)"
    return alt.layer(*layers, **stretch(title, 420))


def goodput_chart(points: pl.DataFrame, axis: str) -> alt.LayerChart | alt.FacetChart | alt.Chart:
    """Goodput (solid) and req/s (dashed) against the load level per model x provider; the
    knee as a vertical rule with its label, max goodput as a large diamond.

    ``points``: ``dashboard.data.load_points`` (group, level, label, goodput_req_per_s,
    req_per_s, is_knee, is_max_goodput).
    """
    pts = points.drop_nulls(["goodput_req_per_s"]) if points.height else points
    if pts.is_empty():
        return empty_chart("no step has a goodput yet")
    check_rows(pts, "goodput_chart")
    long = pts.select("group", "level", "label", pl.col("goodput_req_per_s").alias("goodput"),
                      pl.col("req_per_s").alias("req/s (all ok)")).unpivot(
        index=["group", "level", "label"], variable_name="series", value_name="req_per_s")
    x = _level_x(axis, sorted(set(pts["level"].to_list())))
    y = alt.Y("req_per_s:Q", title="requests per second")
    color = alt.Color("group:N", title="model [provider]",
                      legend=alt.Legend(orient="bottom", columns=2, labelLimit=LABEL_LIMIT))
    dash = alt.StrokeDash("series:N", title=None, legend=alt.Legend(orient="bottom", symbolType="stroke"),
                          scale=alt.Scale(domain=["goodput", "req/s (all ok)"], range=[[1, 0], [5, 4]]))
    tooltip = [alt.Tooltip("group:N"), alt.Tooltip("label:N", title="level"), alt.Tooltip("series:N"),
               alt.Tooltip("req_per_s:Q", format=",.2f", title="req/s")]
    layers: list[alt.Chart] = [
        alt.Chart(long).mark_line(point=True).encode(x=x, y=y, color=color, strokeDash=dash,
                                                     order=alt.Order("level:Q"), tooltip=tooltip)]
    knees = pts.filter(pl.col("is_knee")).with_columns(
        pl.concat_str([pl.lit("knee "), pl.col("label")]).alias("mark"))
    if knees.height:
        layers.append(alt.Chart(knees).mark_rule(strokeDash=[2, 2], size=2).encode(
            x=alt.X("level:Q"), color=color, tooltip=[alt.Tooltip("group:N"), alt.Tooltip("mark:N")]))
        layers.append(alt.Chart(knees).mark_text(align="left", dx=5, dy=-12, fontSize=13, fontWeight="bold").encode(
            x=alt.X("level:Q"), y=alt.Y("goodput_req_per_s:Q"), text=alt.Text("mark:N"), color=color))
    best = pts.filter(pl.col("is_max_goodput")).with_columns(pl.lit("max goodput").alias("mark"))
    if best.height:
        layers.append(alt.Chart(best).mark_point(shape="diamond", filled=True, size=260, opacity=0.9).encode(
            x=alt.X("level:Q"), y=alt.Y("goodput_req_per_s:Q"), color=color,
            tooltip=[alt.Tooltip("group:N"), alt.Tooltip("mark:N"), alt.Tooltip("label:N", title="level"),
                     alt.Tooltip("goodput_req_per_s:Q", format=",.2f", title="goodput req/s")]))
        layers.append(alt.Chart(best).mark_text(align="left", dx=10, dy=14, fontSize=12).encode(
            x=alt.X("level:Q"), y=alt.Y("goodput_req_per_s:Q"), text=alt.Text("mark:N"), color=color))
    title = f"Goodput (solid: ok requests meeting every SLO) and req/s (dashed) by {axis}: knee and max goodput"
    return alt.layer(*layers, **stretch(title, 360))


def trend_chart(series: pl.DataFrame, metric_label: str, incidents: pl.DataFrame,
                marks: pl.DataFrame, by_origin: bool = False) -> alt.LayerChart | alt.FacetChart:
    """One metric over time: per-tick median (line) with its 95 % interval (band), the rolling 72 h
    median (dashed), incidents shaded (red while open: to the last tick) and price changes (rules).
    ``by_origin`` (ticks from several origins: a team store): each origin is its own line, "model ·
    provider @ origin"."""
    several = by_origin and "origin" in series.columns
    target = pl.col("model") + " · " + pl.col("provider")
    frame = series.with_columns((target + " @ " + pl.col("origin") if several else target).alias("target"))
    x = alt.X("started_at:T", title=None)
    color = alt.Color("target:N", title="model · provider @ origin" if several else "model · provider",
                      legend=alt.Legend(orient="bottom", columns=2, labelLimit=420))
    base = alt.Chart(frame)
    band = base.mark_area(opacity=0.18).encode(x=x, y=alt.Y("lo:Q", title=metric_label), y2="hi:Q", color=color)
    line = base.mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=x, y="p50:Q", color=color,
        tooltip=["tick:Q", "target:N", alt.Tooltip("started_at:T", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip("p50:Q", format=".1f"), alt.Tooltip("lo:Q", format=".1f"),
                 alt.Tooltip("hi:Q", format=".1f"), alt.Tooltip("n:Q"), alt.Tooltip("error_rate:Q", format=".0%"),
                 *([alt.Tooltip("ticks:Q", title="ticks in this point")] if "ticks" in frame.columns else [])])
    rolling = base.mark_line(strokeDash=[6, 3], opacity=0.8).encode(x=x, y="rolling_p50:Q", color=color)
    layers: list[alt.Chart] = [band, line, rolling]
    if not incidents.is_empty() and not frame.is_empty():
        end = frame["started_at"].max()
        shaded = incidents.with_columns(pl.col("recovered_at").fill_null(end).alias("until"),
                                        (pl.col("kind") + ": " + pl.col("provider").fill_null("")).alias("what"))
        layers.insert(0, alt.Chart(shaded).mark_rect(opacity=0.12, color="#c62828").encode(
            x="opened_at:T", x2="until:T", tooltip=["what:N", "metric:N", "opened_tick:Q", "recovered_tick:Q"]))
    if not marks.is_empty():
        layers.append(alt.Chart(marks.with_columns(pl.lit("price change").alias("mark"))).mark_rule(
            color="#6a1b9a", strokeDash=[2, 2]).encode(x="started_at:T", tooltip=["mark:N", "provider:N", "tick:Q"]))
    return alt.layer(*layers).properties(height=260)

"""Altair chart builders: a small polars frame in, a chart out; no Streamlit here.

Every frame these functions take is already aggregated (box-plot statistics,
rates, sums) or capped (timeline, scatter) by ``bench.analytics``, so no chart
ever carries more than a few thousand rows and Altair's 5,000-row limit holds
without switching transformers. Box plots are drawn from precomputed stats
(rule p5-p95, bar q1-q3, tick median) with ``n`` printed beside each box, and
every latency chart is concatenated with its group's error and 429 rates.
"""

from __future__ import annotations

from typing import Any, cast

import altair as alt
import polars as pl
import vl_convert as vlc

MAX_ROWS = 5000
"""Altair's default row limit; builders refuse (not silently trim) bigger frames."""

BOX_HEIGHT = 26
RATE_WIDTH = 170
LABEL_LIMIT = 300  # px of a y-axis label before it is cut ("model · provider" is long)
FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")
"""Stretch to the page width but keep the height we ask for (Streamlit's default "fit" squeezes
axes, legends and title into that height, flattening short charts)."""


def _check_rows(frame: pl.DataFrame, what: str) -> None:
    if frame.height > MAX_ROWS:
        raise ValueError(f"{what}: {frame.height} rows; aggregate or sample to <= {MAX_ROWS} first")


def _height(frame: pl.DataFrame, key: str = "group") -> int:
    groups = frame[key].n_unique() if key in frame.columns and frame.height else 1
    return max(60, BOX_HEIGHT * groups)


def empty_chart(message: str) -> alt.Chart:
    """A placeholder with a message, for filters that leave nothing to draw."""
    return alt.Chart(pl.DataFrame({"message": [message]}), height=60, width="container",
                     autosize=FIT_X).mark_text(size=14, color="gray").encode(text=alt.Text("message:N"))


# ------------------------------------------------------------------- box plots
def box_chart(stats: pl.DataFrame, unit_label: str, title: str,
              width: int | None = None) -> alt.LayerChart | alt.FacetChart | alt.Chart:
    """Horizontal box plots per group from precomputed stats, ``n`` in each group's label.

    ``stats`` columns: group, model, n, p05, q1, median, q3, p95 (rows with n == 0 dropped).
    Whiskers span p5-p95 (said in the axis title).
    """
    stats = stats.filter(pl.col("n") > 0) if stats.height else stats
    if stats.is_empty():
        return empty_chart(f"{title}: no ok requests with this metric")
    _check_rows(stats, "box_chart")
    stats = stats.with_columns(
        pl.concat_str([pl.col("group"), pl.lit("  (n="), pl.col("n").cast(pl.String), pl.lit(")")])
        .alias("label"))
    y = alt.Y("label:N", sort=stats["label"].to_list(), title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT))
    tooltip = [
        alt.Tooltip("group:N"),
        alt.Tooltip("n:Q", title="n (ok)"),
        alt.Tooltip("p05:Q", format=",.1f", title="p5"),
        alt.Tooltip("q1:Q", format=",.1f", title="p25"),
        alt.Tooltip("median:Q", format=",.1f", title="p50"),
        alt.Tooltip("q3:Q", format=",.1f", title="p75"),
        alt.Tooltip("p95:Q", format=",.1f", title="p95"),
    ]
    # Each layer is built whole and the sizes go to the constructor: Altair deep-copies a
    # composite chart on every .properties()/.resolve_scale(), which costs more than the data.
    whisker = alt.Chart().mark_rule(color="#666").encode(
        y=y, x=alt.X("p05:Q", title=f"{unit_label} (box p25-p75, line p5-p95)", scale=alt.Scale(zero=False)),
        x2=alt.X2("p95:Q"),
    )
    box = alt.Chart().mark_bar(size=16).encode(
        y=y, x=alt.X("q1:Q"), x2=alt.X2("q3:Q"), tooltip=tooltip,
        color=alt.Color("model:N", legend=alt.Legend(orient="bottom", columns=2)),
    )
    median = alt.Chart().mark_tick(color="black", thickness=2, size=18).encode(
        y=y, x=alt.X("median:Q"), tooltip=tooltip)
    size: dict[str, Any] = {"width": width} if width else {"width": "container", "autosize": FIT_X}
    return alt.layer(whisker, box, median, data=stats, title=title, height=_height(stats), **size)


def rate_chart(rates: pl.DataFrame, order: list[str] | None = None) -> alt.Chart:
    """Error and 429 rates per group (of requests sent), as grouped horizontal bars."""
    if rates.is_empty():
        return empty_chart("no requests")
    _check_rows(rates, "rate_chart")
    long = rates.select(
        "group",
        "sent",
        pl.col("error_rate").fill_null(0.0).alias("errors (all)"),
        pl.col("rate_limited_rate").fill_null(0.0).alias("429 rate-limited"),
    ).unpivot(index=["group", "sent"], variable_name="kind", value_name="rate")
    # A 0-100 % axis would hide a 2 % error rate; zoom to the data but never below 0-5 %.
    top = max(0.05, float(cast(float | None, long["rate"].max()) or 0.0) * 1.15)  # a Float64 column
    chart = alt.Chart(long, width=RATE_WIDTH, height=_height(rates), title="errors beside it")
    return chart.mark_bar().encode(
        y=alt.Y("group:N", sort=order or rates["group"].to_list(), title=None, axis=None),
        yOffset=alt.YOffset("kind:N"),
        x=alt.X("rate:Q", title="error / 429 rate", axis=alt.Axis(format="%", tickCount=3),
                scale=alt.Scale(domain=[0, min(1.0, top)])),
        color=alt.Color("kind:N", scale=alt.Scale(domain=["errors (all)", "429 rate-limited"],
                                                  range=["#d62728", "#ff7f0e"]),
                        legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("group:N"), alt.Tooltip("kind:N"),
                 alt.Tooltip("rate:Q", format=".1%"), alt.Tooltip("sent:Q", title="sent")],
    )


INDEPENDENT_COLORS = alt.Resolve(scale=alt.ScaleResolveMap(color="independent"))


def latency_with_errors(stats: pl.DataFrame, rates: pl.DataFrame, unit_label: str,
                        title: str) -> alt.HConcatChart | alt.LayerChart | alt.FacetChart | alt.Chart:
    """A box-plot chart with the same groups' error and 429 rates beside it."""
    measured = stats.filter(pl.col("n") > 0) if stats.height else stats
    if measured.is_empty():
        return box_chart(stats, unit_label, title)
    order = measured["group"].to_list()
    rates = rates.filter(pl.col("group").is_in(order)) if rates.height else rates
    box = box_chart(measured, unit_label, title, width=460)
    return alt.hconcat(box, rate_chart(rates, order), resolve=INDEPENDENT_COLORS)


# ------------------------------------------------------------------- cost
def _stretch(title: str, height: int) -> dict[str, Any]:
    """Constructor arguments of a chart that fills the page width at a fixed height."""
    return {"title": title, "height": height, "width": "container", "autosize": FIT_X}


def cost_chart(costs: pl.DataFrame) -> alt.Chart:
    """USD per 1,000 requests per group: billed (reported) beside list (catalog price x tokens).

    ``costs`` columns: group, model, billed_per_1k_usd, list_per_1k_usd, sent.
    """
    if costs.is_empty():
        return empty_chart("no cost data")
    _check_rows(costs, "cost_chart")
    long = costs.select(
        "group", "sent",
        pl.col("billed_per_1k_usd").alias("billed (reported)"),
        pl.col("list_per_1k_usd").alias("list (catalog x tokens)"),
    ).unpivot(index=["group", "sent"], variable_name="kind", value_name="usd_per_1k")
    title = "Cost per 1,000 requests: billed vs list"
    return alt.Chart(long.drop_nulls("usd_per_1k"), **_stretch(title, 36 * costs.height)).mark_bar().encode(
        y=alt.Y("group:N", sort=costs["group"].to_list(), title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        yOffset=alt.YOffset("kind:N"),
        x=alt.X("usd_per_1k:Q", title="USD per 1,000 requests"),
        color=alt.Color("kind:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("group:N"), alt.Tooltip("kind:N"),
                 alt.Tooltip("usd_per_1k:Q", format="$,.6f", title="USD / 1k requests"),
                 alt.Tooltip("sent:Q")],
    )


# ------------------------------------------------------------------- timeline
def timeline_chart(rows: pl.DataFrame, total: int, first: int = 0) -> alt.Chart:
    """Requests as bars from send to stream end, one row per in-flight slot, coloured by model.

    ``rows`` columns: slot, request_idx, model, provider, case_id, outcome, t_start_ms,
    t_end_ms, ttft_ms (see ``bench.analytics.timeline``). Gaps in a slot are idle
    capacity; many bars starting together after a gap are queueing; bars that grow
    along the run are drift. ``total``/``first`` say which window of the run this is.
    """
    if rows.is_empty():
        return empty_chart("no timed requests in this run")
    _check_rows(rows, "timeline_chart")
    last = first + rows.height
    shown = f"all {total}" if rows.height >= total else f"requests {first + 1:,}–{last:,} of {total:,}"
    frame = rows.with_columns(
        (pl.col("t_start_ms") / 1000).alias("start_s"), (pl.col("t_end_ms") / 1000).alias("end_s"),
        (pl.col("outcome") != "ok").alias("not_ok"),
    )
    slots = int(cast(int | None, frame["slot"].max()) or 0) + 1  # an integer column
    title = f"Run timeline: {shown} (black outline = not ok)"
    return alt.Chart(frame, **_stretch(title, min(640, max(120, 16 * slots)))).mark_bar(
        height={"band": 0.8}, cornerRadius=2, strokeWidth=2
    ).encode(
        x=alt.X("start_s:Q", title="seconds since run start", scale=alt.Scale(zero=False)),
        x2=alt.X2("end_s:Q"),
        y=alt.Y("slot:O", title="in-flight slot", axis=alt.Axis(labels=slots <= 40)),
        color=alt.Color("model:N", legend=alt.Legend(orient="bottom", columns=2)),
        # Typed channels, never alt.condition/alt.value or "field:T" strings: those go
        # through from_dict, which rebuilds Altair's class table each time (~10 ms).
        stroke=alt.Stroke("not_ok:N", legend=None,
                          scale=alt.Scale(domain=[True, False], range=["#111111", "transparent"])),
        tooltip=[alt.Tooltip("request_idx:Q"), alt.Tooltip("model:N"), alt.Tooltip("provider:N"),
                 alt.Tooltip("case_id:N"), alt.Tooltip("outcome:N"),
                 alt.Tooltip("start_s:Q", format=".3f"), alt.Tooltip("end_s:Q", format=".3f"),
                 alt.Tooltip("ttft_ms:Q", format=",.1f")],
    )


def drift_chart(bins: pl.DataFrame) -> alt.Chart:
    """Median TTFT and end-to-end per model over the run's wall time (binned by start time).

    ``bins`` columns: start_s, model, metric, median_ms, n.
    """
    if bins.is_empty():
        return empty_chart("no ok requests to show drift")
    _check_rows(bins, "drift_chart")
    title = "Drift over the run: median latency per time bin"
    return alt.Chart(bins, **_stretch(title, 260)).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("start_s:Q", title="request start, seconds since run start"),
        y=alt.Y("median_ms:Q", title="median ms of requests started in the bin"),
        color=alt.Color("model:N", legend=alt.Legend(orient="bottom", columns=2)),
        strokeDash=alt.StrokeDash("metric:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("metric:N"), alt.Tooltip("start_s:Q", format=",.0f"),
                 alt.Tooltip("median_ms:Q", format=",.1f"), alt.Tooltip("n:Q")],
    )


# ------------------------------------------------------------------- compare
def _pareto_layers(pts: pl.DataFrame, latency_label: str,
                   color: alt.Color | None = None) -> tuple[alt.Chart, alt.Chart]:
    """The frontier step line and the dots of ``pareto_chart`` (shared with ``decide_frontier``)."""
    has_pass = "pass_rate" in pts.columns and pts["pass_rate"].null_count() < pts.height
    tooltip = [alt.Tooltip("group:N"), alt.Tooltip("n_ok:Q", title="n ok"),
               alt.Tooltip("p50_ms:Q", format=",.1f", title=f"{latency_label} ms"),
               alt.Tooltip("cost_per_request_usd:Q", format="$,.8f", title="USD / request"),
               alt.Tooltip("on_frontier:N", title="on frontier")]
    enc: dict[str, Any] = {
        "x": alt.X("p50_ms:Q", title=f"{latency_label} (ms)", scale=alt.Scale(zero=False)),
        "y": alt.Y("cost_per_request_usd:Q", title="USD per request", scale=alt.Scale(zero=False)),
        "color": color or alt.Color("model:N", legend=alt.Legend(orient="bottom", columns=2)),
        "shape": alt.Shape("provider:N", legend=alt.Legend(orient="bottom")),
    }
    if has_pass:
        enc["size"] = alt.Size("pass_rate:Q", title="pass rate",
                               scale=alt.Scale(domain=[0, 1], range=[40, 400]))
        tooltip.append(alt.Tooltip("pass_rate:Q", format=".0%", title="pass rate"))
    if "verdict" in pts.columns:
        tooltip.append(alt.Tooltip("verdict:N"))
    dots = alt.Chart(pts).mark_point(filled=True, opacity=0.85, size=120).encode(**enc, tooltip=tooltip)
    frontier = pts.filter(pl.col("on_frontier")).sort("p50_ms")
    line = alt.Chart(frontier).mark_line(interpolate="step-after", color="black", strokeDash=[4, 3]).encode(
        x=alt.X("p50_ms:Q"), y=alt.Y("cost_per_request_usd:Q"))
    return line, dots


def pareto_chart(points: pl.DataFrame, latency_label: str) -> alt.LayerChart | alt.FacetChart | alt.Chart:
    """Cost per request vs p50 latency per group, the Pareto frontier drawn as a step line.

    ``points`` columns: group, model, provider, p50_ms, cost_per_request_usd, on_frontier,
    n_ok, and optionally pass_rate (then the point size shows it).
    """
    pts = points.drop_nulls(["p50_ms", "cost_per_request_usd"]) if points.height else points
    if pts.is_empty():
        return empty_chart("no group has both a latency and a cost")
    _check_rows(pts, "pareto_chart")
    line, dots = _pareto_layers(pts, f"p50 {latency_label}")
    title = "Cost vs latency (dashed: Pareto frontier, lower-left is better)"
    return alt.layer(line, dots, **_stretch(title, 480))


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
    _check_rows(pts, "decide_frontier")
    color = alt.Color("verdict:N", title="verdict", legend=alt.Legend(orient="bottom"),
                      scale=alt.Scale(domain=list(VERDICT_COLORS), range=list(VERDICT_COLORS.values())))
    line, dots = _pareto_layers(pts, latency_label, color)
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
    return alt.layer(*layers, **_stretch(title, 480))


def provider_bars(frame: pl.DataFrame, model: str) -> alt.HConcatChart | alt.Chart:
    """One model across providers: p50 TTFT and e2e with CI whiskers (n in the label), error rates beside.

    ``frame`` columns: provider, metric, p50_ms, ci_lo_ms, ci_hi_ms, n, error_rate,
    rate_limited_rate, sent.
    """
    if frame.is_empty():
        return empty_chart(f"{model}: no ok requests")
    _check_rows(frame, "provider_bars")
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
    _check_rows(d, "diff_chart")
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
    return alt.layer(zero, ci, pts, **_stretch("Run B vs run A (red: change larger than the noise)", height))


def advertised_chart(frame: pl.DataFrame, model: str) -> alt.Chart:
    """Measured TTFT p50 next to OpenRouter's advertised latency_last_30m p50, per provider.

    ``frame`` columns: provider, source ("measured TTFT p50" / "advertised p50 (last 30 min)"), ms, n.
    """
    f = frame.drop_nulls("ms") if frame.height else frame
    if f.is_empty():
        return empty_chart(f"{model}: nothing measured or advertised")
    height = max(80, 40 * f["provider"].n_unique())
    return alt.Chart(f, **_stretch(f"{model}: measured vs advertised TTFT", height)).mark_bar().encode(
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
    return alt.Chart(history, **_stretch(title, 260)).mark_line(point=True, interpolate="step-after").encode(
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
    return alt.Chart(f, **_stretch("Estimated monthly cost", max(80, 28 * f.height))).mark_bar().encode(
        y=alt.Y("model:N", sort="x", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        x=alt.X("monthly_usd:Q", title="USD per month (30 days)"),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("monthly_usd:Q", format="$,.2f")],
    )


def spend_chart(spend: pl.DataFrame, key: str, title: str) -> alt.Chart:
    """Spend bars: billed and list USD per ``key`` (run or model). Columns: key, billed_usd, list_usd."""
    if spend.is_empty():
        return empty_chart("nothing spent yet")
    _check_rows(spend, "spend_chart")
    long = spend.select(
        pl.col(key).alias("key"),
        pl.col("billed_usd").cast(pl.Float64).alias("billed (reported)"),
        pl.col("list_usd").cast(pl.Float64).alias("list (catalog x tokens)"),
    ).unpivot(index="key", variable_name="kind", value_name="usd")
    return alt.Chart(long.drop_nulls("usd"), **_stretch(title, max(80, 30 * spend.height))).mark_bar().encode(
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


def quality_chart(groups: pl.DataFrame) -> alt.LayerChart | alt.FacetChart | alt.Chart:
    """Cost per correct answer vs p50 end-to-end latency; size = pass rate; frontier ringed.

    ``groups`` columns: group, model, provider, pass_rate, e2e_p50_ms, cost_per_correct_usd,
    on_frontier, n_checked.
    """
    pts = groups.drop_nulls(["e2e_p50_ms", "cost_per_correct_usd"]) if groups.height else groups
    if pts.is_empty():
        return empty_chart("no group has a correct answer with a known cost")
    _check_rows(pts, "quality_chart")
    tooltip = [alt.Tooltip("group:N"), alt.Tooltip("n_checked:Q", title="n checked"),
               alt.Tooltip("pass_rate:Q", format=".0%", title="pass rate"),
               alt.Tooltip("e2e_p50_ms:Q", format=",.1f", title="p50 end-to-end ms"),
               alt.Tooltip("cost_per_correct_usd:Q", format="$,.8f", title="USD per correct answer"),
               alt.Tooltip("on_frontier:N", title="on frontier")]
    x = alt.X("e2e_p50_ms:Q", title="p50 end-to-end latency (ms)", scale=alt.Scale(zero=False))
    y = alt.Y("cost_per_correct_usd:Q", title="USD per correct answer", scale=alt.Scale(zero=False))
    dots = alt.Chart(pts).mark_point(filled=True, opacity=0.85).encode(
        x=x, y=y, color=alt.Color("model:N", legend=alt.Legend(orient="bottom", columns=2)),
        size=alt.Size("pass_rate:Q", title="pass rate", scale=alt.Scale(domain=[0, 1], range=[40, 500])),
        tooltip=tooltip)
    ring = alt.Chart(pts.filter(pl.col("on_frontier"))).mark_point(
        shape="circle", size=700, color="black", strokeWidth=1.5, filled=False).encode(x=x, y=y)
    title = "Quality x latency x cost (ringed: Pareto frontier of pass rate, p50 latency, cost per correct)"
    return alt.layer(ring, dots, **_stretch(title, 420))


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
    _check_rows(pts, "load_curve")
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
    return alt.layer(*layers, **_stretch(title, 420))


def goodput_chart(points: pl.DataFrame, axis: str) -> alt.LayerChart | alt.FacetChart | alt.Chart:
    """Goodput (solid) and req/s (dashed) against the load level per model x provider; the
    knee as a vertical rule with its label, max goodput as a large diamond.

    ``points``: ``dashboard.data.load_points`` (group, level, label, goodput_req_per_s,
    req_per_s, is_knee, is_max_goodput).
    """
    pts = points.drop_nulls(["goodput_req_per_s"]) if points.height else points
    if pts.is_empty():
        return empty_chart("no step has a goodput yet")
    _check_rows(pts, "goodput_chart")
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
    return alt.layer(*layers, **_stretch(title, 360))

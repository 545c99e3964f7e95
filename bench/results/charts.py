"""Altair chart builders shared by the HTML report and the dashboard: a small polars frame in,
a chart out; no Streamlit here.

Every frame these functions take is already aggregated (box-plot statistics,
rates, sums) or capped (timeline, scatter) by ``bench.results.analytics``, so no chart
ever carries more than a few thousand rows and Altair's 5,000-row limit holds
without switching transformers. Box plots are drawn from precomputed stats
(rule p5-p95, bar q1-q3, tick median) with ``n`` printed beside each box, and
every latency chart is concatenated with its group's error and 429 rates.
The dashboard's own charts (dashboard.charts) build on these.
"""

from __future__ import annotations

from typing import Any, cast

import altair as alt
import polars as pl

MAX_ROWS = 5000
"""Altair's default row limit; builders refuse (not silently trim) bigger frames."""
BOX_HEIGHT = 26
RATE_WIDTH = 170
LABEL_LIMIT = 300  # px of a y-axis label before it is cut ("model · provider" is long)
FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")
"""Stretch to the page width but keep the height we ask for (Streamlit's default "fit" squeezes
axes, legends and title into that height, flattening short charts)."""


def check_rows(frame: pl.DataFrame, what: str) -> None:
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
    check_rows(stats, "box_chart")
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
    check_rows(rates, "rate_chart")
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
def stretch(title: str, height: int) -> dict[str, Any]:
    """Constructor arguments of a chart that fills the page width at a fixed height."""
    return {"title": title, "height": height, "width": "container", "autosize": FIT_X}


def cost_chart(costs: pl.DataFrame) -> alt.Chart:
    """USD per 1,000 requests per group: billed (reported) beside list (catalog price x tokens).

    ``costs`` columns: group, model, billed_per_1k_usd, list_per_1k_usd, sent.
    """
    if costs.is_empty():
        return empty_chart("no cost data")
    check_rows(costs, "cost_chart")
    long = costs.select(
        "group", "sent",
        pl.col("billed_per_1k_usd").alias("billed (reported)"),
        pl.col("list_per_1k_usd").alias("list (catalog x tokens)"),
    ).unpivot(index=["group", "sent"], variable_name="kind", value_name="usd_per_1k")
    title = "Cost per 1,000 requests: billed vs list"
    return alt.Chart(long.drop_nulls("usd_per_1k"), **stretch(title, 36 * costs.height)).mark_bar().encode(
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
    t_end_ms, ttft_ms (see ``bench.results.analytics.timeline``). Gaps in a slot are idle
    capacity; many bars starting together after a gap are queueing; bars that grow
    along the run are drift. ``total``/``first`` say which window of the run this is.
    """
    if rows.is_empty():
        return empty_chart("no timed requests in this run")
    check_rows(rows, "timeline_chart")
    last = first + rows.height
    shown = f"all {total}" if rows.height >= total else f"requests {first + 1:,}–{last:,} of {total:,}"
    frame = rows.with_columns(
        (pl.col("t_start_ms") / 1000).alias("start_s"), (pl.col("t_end_ms") / 1000).alias("end_s"),
        (pl.col("outcome") != "ok").alias("not_ok"),
    )
    slots = int(cast(int | None, frame["slot"].max()) or 0) + 1  # an integer column
    title = f"Run timeline: {shown} (black outline = not ok)"
    return alt.Chart(frame, **stretch(title, min(640, max(120, 16 * slots)))).mark_bar(
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
    check_rows(bins, "drift_chart")
    title = "Drift over the run: median latency per time bin"
    return alt.Chart(bins, **stretch(title, 260)).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("start_s:Q", title="request start, seconds since run start"),
        y=alt.Y("median_ms:Q", title="median ms of requests started in the bin"),
        color=alt.Color("model:N", legend=alt.Legend(orient="bottom", columns=2)),
        strokeDash=alt.StrokeDash("metric:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("metric:N"), alt.Tooltip("start_s:Q", format=",.0f"),
                 alt.Tooltip("median_ms:Q", format=",.1f"), alt.Tooltip("n:Q")],
    )


# ------------------------------------------------------------------- compare
def pareto_layers(pts: pl.DataFrame, latency_label: str,
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
    check_rows(pts, "pareto_chart")
    line, dots = pareto_layers(pts, f"p50 {latency_label}")
    title = "Cost vs latency (dashed: Pareto frontier, lower-left is better)"
    return alt.layer(line, dots, **stretch(title, 480))


def quality_chart(groups: pl.DataFrame) -> alt.LayerChart | alt.FacetChart | alt.Chart:
    """Cost per correct answer vs p50 end-to-end latency; size = pass rate; frontier ringed.

    ``groups`` columns: group, model, provider, pass_rate, e2e_p50_ms, cost_per_correct_usd,
    on_frontier, n_checked.
    """
    pts = groups.drop_nulls(["e2e_p50_ms", "cost_per_correct_usd"]) if groups.height else groups
    if pts.is_empty():
        return empty_chart("no group has a correct answer with a known cost")
    check_rows(pts, "quality_chart")
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
    return alt.layer(ring, dots, **stretch(title, 420))


# ------------------------------------------------------------------- conversations
def conversation_chart(turns: pl.DataFrame) -> alt.HConcatChart | alt.Chart:
    """Cost and TTFT by turn for each model x provider (bench.results.conversations.turn_frame).

    ``turns`` columns: group, turn, n, cost_usd_mean, cache_hit_rate, ttft_p50_cached_ms,
    ttft_p50_uncached_ms. Left: mean billed cost of turn k (it grows with the history unless the
    history is read from a cache). Right: median TTFT of turn k, cached and uncached turns apart.
    """
    if turns.is_empty():
        return empty_chart("no conversation turns answered")
    check_rows(turns, "conversation_chart")
    turn_x = alt.X("turn:O", title="turn")
    color = alt.Color("group:N", legend=alt.Legend(orient="bottom", title=None, labelLimit=LABEL_LIMIT))
    cost = alt.Chart(turns, title="Billed cost by turn", width=320, height=220).mark_line(point=True).encode(
        x=turn_x, y=alt.Y("cost_usd_mean:Q", title="USD per turn (mean)"), color=color,
        tooltip=[alt.Tooltip("group:N"), alt.Tooltip("turn:O"), alt.Tooltip("n:Q"),
                 alt.Tooltip("cost_usd_mean:Q", format="$,.8f", title="USD / turn"),
                 alt.Tooltip("cache_hit_rate:Q", format=".0%", title="cache hit rate")])
    long = turns.select(
        "group", "turn", pl.col("ttft_p50_cached_ms").alias("cached"), pl.col("ttft_p50_uncached_ms").alias("uncached"),
    ).unpivot(index=["group", "turn"], variable_name="prefix", value_name="ttft_ms").drop_nulls("ttft_ms")
    ttft = alt.Chart(long, title="TTFT by turn (median), cached vs uncached", width=320,
                     height=220).mark_line(point=True).encode(
        x=turn_x, y=alt.Y("ttft_ms:Q", title="TTFT ms (p50)"), color=color,
        strokeDash=alt.StrokeDash("prefix:N", legend=alt.Legend(orient="bottom", title="prompt prefix")),
        tooltip=[alt.Tooltip("group:N"), alt.Tooltip("turn:O"), alt.Tooltip("prefix:N"),
                 alt.Tooltip("ttft_ms:Q", format=",.0f")])
    return alt.hconcat(cost, ttft).resolve_scale(color="shared")

"""Chart builders (dashboard.charts) checked through their Vega-Lite dicts, and offline image export."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from bench.results import analytics
from dashboard import catalog_view, charts


def box_stats(n: list[int]) -> pl.DataFrame:
    k = len(n)
    return pl.DataFrame({
        "group": [f"m{i} · p" for i in range(k)], "model": [f"m{i}" for i in range(k)],
        "provider": ["p"] * k, "n": n, "p05": [1.0] * k, "q1": [2.0] * k, "median": [3.0] * k,
        "q3": [4.0] * k, "p95": [5.0] * k,
    })


def rates(groups: list[str], err: float = 0.02, rl: float = 0.01) -> pl.DataFrame:
    return pl.DataFrame({"group": groups, "sent": [100] * len(groups), "error_rate": [err] * len(groups),
                         "rate_limited_rate": [rl] * len(groups)})


def datasets(spec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return list(spec.get("datasets", {}).values())


def marks(spec: dict[str, Any]) -> list[str]:
    out = []
    for layer in spec.get("layer", []):
        mark = layer["mark"]
        out.append(mark if isinstance(mark, str) else mark["type"])
    return out


def test_box_chart_draws_precomputed_stats_with_n_in_labels() -> None:
    spec = charts.box_chart(box_stats([12, 0, 7]), "TTFT ms", "TTFT").to_dict()
    assert marks(spec) == ["rule", "bar", "tick"]
    (rows,) = datasets(spec)
    assert [r["label"] for r in rows] == ["m0 · p  (n=12)", "m2 · p  (n=7)"]  # n == 0 dropped
    assert spec["autosize"] == {"type": "fit-x", "contains": "padding"}


def test_latency_chart_puts_error_rates_beside_the_boxes() -> None:
    stats = box_stats([10, 20])
    spec = charts.latency_with_errors(stats, rates(stats["group"].to_list(), err=0.5), "ms", "TTFT").to_dict()
    box, side = spec["hconcat"]
    assert box["width"] == 460 and "autosize" not in box
    assert side["encoding"]["x"]["scale"]["domain"] == [0, pytest.approx(0.575)]
    assert spec["resolve"] == {"scale": {"color": "independent"}}


def test_rate_axis_never_zooms_below_five_percent() -> None:
    spec = charts.rate_chart(rates(["a"], err=0.0, rl=0.0)).to_dict()
    assert spec["encoding"]["x"]["scale"]["domain"] == [0, 0.05]


def test_empty_frames_give_a_message_not_an_error() -> None:
    empty = pl.DataFrame(schema={"group": pl.String, "model": pl.String, "n": pl.Int64})
    for chart in (charts.box_chart(empty, "ms", "t"), charts.latency_with_errors(empty, empty, "ms", "t"),
                  charts.cost_chart(pl.DataFrame()), charts.timeline_chart(pl.DataFrame(), 0),
                  charts.pareto_chart(pl.DataFrame(), "TTFT"), charts.diff_chart(pl.DataFrame()),
                  charts.spend_chart(pl.DataFrame(), "run_id", "t")):
        spec = chart.to_dict()
        assert spec["mark"]["type"] == "text"


def test_builders_refuse_more_rows_than_altair_allows() -> None:
    rows = pl.DataFrame({
        "slot": [0] * 5001, "request_idx": list(range(5001)), "model": ["m"] * 5001,
        "provider": ["p"] * 5001, "case_id": ["c"] * 5001, "outcome": ["ok"] * 5001,
        "t_start_ms": [0.0] * 5001, "t_end_ms": [1.0] * 5001, "ttft_ms": [0.5] * 5001,
    })
    with pytest.raises(ValueError, match="5001 rows"):
        charts.timeline_chart(rows, 5001)
    spec = charts.timeline_chart(rows.head(5000), 9000, first=4000).to_dict()
    assert "requests 4,001–9,000 of 9,000" in spec["title"]


def test_timeline_outlines_failed_requests() -> None:
    rows = pl.DataFrame({
        "slot": [0, 1], "request_idx": [0, 1], "model": ["m", "m"], "provider": ["p", "p"],
        "case_id": ["c", "c"], "outcome": ["ok", "timeout"], "t_start_ms": [0.0, 10.0],
        "t_end_ms": [900.0, 60_000.0], "ttft_ms": [100.0, None],
    })
    spec = charts.timeline_chart(rows, 2).to_dict()
    (data,) = datasets(spec)
    assert [r["not_ok"] for r in data] == [False, True]
    assert spec["encoding"]["stroke"]["scale"]["range"][0] == "#111111"
    assert [r["end_s"] for r in data] == [0.9, 60.0]


def test_pareto_frontier_keeps_only_undominated_groups() -> None:
    groups = pl.DataFrame({
        "group": ["fast-dear", "slow-cheap", "dominated", "no-cost"], "model": ["a", "b", "c", "d"],
        "provider": ["p"] * 4, "ok": [10] * 4, "pass_rate": [None, 0.5, 1.0, None],
        "ttft_p50_ms": [100.0, 300.0, 350.0, 50.0],  # the summary field
        "cost_per_request_usd": pl.Series([2.0, 1.0, 1.5, None]).cast(pl.Decimal(38, 18)),
    })
    pts = analytics.pareto_points(groups, "ttft_ms")
    assert pts["on_frontier"].to_list() == [True, True, False, False]
    spec = charts.pareto_chart(pts, "TTFT").to_dict()
    line, dots = spec["layer"]
    frontier = spec["datasets"][line["data"]["name"]]
    assert [r["group"] for r in frontier] == ["fast-dear", "slow-cheap"]
    assert dots["encoding"]["size"]["field"] == "pass_rate"  # pass rate shown when present


def test_diff_chart_colours_beyond_noise_red() -> None:
    diff = pl.DataFrame({"group": ["g", "g"], "metric": ["TTFT ms", "end-to-end ms"],
                         "change_pct": [25.0, 1.0], "ci_lo_pct": [10.0, -3.0], "ci_hi_pct": [40.0, 5.0],
                         "verdict": ["beyond noise", "within noise"]})
    spec = charts.diff_chart(diff).to_dict()
    color = spec["layer"][2]["encoding"]["color"]["scale"]
    assert color == {"domain": ["beyond noise", "within noise"], "range": ["#d62728", "#9e9e9e"]}


def test_chart_images_render_offline() -> None:
    stats = box_stats([5, 6])
    chart = charts.latency_with_errors(stats, rates(stats["group"].to_list()), "ms", "TTFT")
    png = charts.chart_image(chart, "png")
    costs = pl.DataFrame({"group": ["a"], "model": ["m"], "sent": [3], "billed_per_1k_usd": [1.5],
                          "list_per_1k_usd": [1.4]})
    svg = charts.chart_image(charts.cost_chart(costs), "svg")
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert svg.lstrip().startswith(b"<svg") and b"USD per 1,000 requests" in svg
    with pytest.raises(ValueError):
        charts.chart_image(chart, "gif")


def test_monthly_costs_skip_variable_prices() -> None:
    from bench.api.catalog import parse_models

    models = parse_models({"data": [
        {"id": "a/fixed", "name": "A", "pricing": {"prompt": "0.000001", "completion": "0.000002"}},
        {"id": "openrouter/auto", "name": "Auto", "pricing": {"prompt": "-1", "completion": "-1"}},
    ]})
    costs = catalog_view.monthly_costs(models, 1000, 500, 100)
    assert costs["monthly_usd"].to_list() == [pytest.approx((0.001 + 0.001) * 100 * 30), None]
    spec = charts.monthly_cost_chart(costs).to_dict()
    (rows,) = datasets(spec)
    assert [r["model"] for r in rows] == ["a/fixed"]

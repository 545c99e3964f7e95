"""The self-contained HTML report of stored runs: ``orbench report`` and the dashboard's Export page.

One file that opens anywhere, offline. Vega, Vega-Lite and Vega-Embed are inlined from
vl-convert's bundle; each chart's spec and its (already aggregated) data are embedded as
JSON; a Content-Security-Policy forbids every fetch, so the page requests nothing from
any host. Every string that comes from the data is HTML-escaped, and the JSON blocks
escape ``<``, ``>`` and ``&``, so no answer text can close a tag or start a script.

The numbers are the ones the other views show: the summary is ``bench.results.summary``'s (the
same as ``orbench show``), the charts are the builders the dashboard draws with
(``bench.results.charts``) over the same summary, and changes against a baseline are
``bench.results.compare``'s on every ok value, as ``orbench compare`` computes them.

What is cut, so a 1,000-request run stays well under 2 MB (the Vega bundle is ~0.9 MB):
the box plots, rates, costs and frontiers are aggregates (a few rows per model x
provider, whatever the run's size); the timeline draws the first ``TIMELINE_CAP``
requests in start order (split over the runs); at most ``FAILED_CAP`` failed answers are
listed per run, each cut to ``TEXT_CAP`` characters.
"""

from __future__ import annotations

import functools
import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from bench import __version__
from bench.errors import ConfigError
from bench.records import FINISHED_OUTCOMES
from bench.results import analytics, compare, pass_rates, report, summary
from bench.results.analytics import Filters
from bench.store.runs import RunRecord
from bench.store.store import Store

VL_VERSION = "6.4"  # the Vega-Lite major.minor Altair 6.3 writes (dashboard.charts.chart_image agrees)
TIMELINE_CAP = 1000
FAILED_CAP = 100
TEXT_CAP = 400
COMPARE_METRICS = compare.METRICS
"""What ``orbench compare`` compares, with which direction is better."""

CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
       "img-src data:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'")
"""Inline code only, no fetch of any kind (Vega compiles its expressions, hence 'unsafe-eval')."""


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega + Vega-Lite + Vega-Embed as one script (from vl-convert; ~0.9 MB, ~2 s the first time)."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VL_VERSION)  # type: ignore[call-arg]  # stub wrongly needs snippet
    return bundle.replace("</script", "<\\/script")  # it has none today; an inline script must not


# ------------------------------------------------------------------- formatting
def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt_num(v: Any) -> str:
    if v is None:
        return "—"
    v = float(v)
    if math.isnan(v):
        return "—"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}"


def fmt_int(v: Any) -> str:
    return "—" if v is None else f"{int(v):,}"


def fmt_pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.1f} %"


def fmt_usd(v: Any) -> str:
    """Dollars to 3 significant digits, never in exponent form ("$0.0000448")."""
    if v is None:
        return "—"
    d = Decimal(str(v))
    if d == 0:
        return "$0"
    if abs(d) >= 1:
        return f"${d:,.2f}"
    places = max(2, 2 - int(math.floor(math.log10(abs(float(d))))))
    return f"${d:.{places}f}"


def fmt_ci(v: Any, lo: Any, hi: Any, fmt: Any = fmt_num) -> str:
    if v is None:
        return "—"
    return f"{fmt(v)} [{fmt(lo)}–{fmt(hi)}]" if lo is not None and hi is not None else f"{fmt(v)} [n too small]"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = (),
          kind: str = "numbers") -> str:
    """An HTML table; every cell is escaped here (callers pass plain text)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = row_classes[i] if i < len(row_classes) and row_classes[i] else ""
        attr = f' class="{esc(cls)}"' if cls else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    return (f"<div class='scroll'><table class='{kind}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element whatever strings it holds."""
    text = json.dumps(value, default=_json_default, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _json_default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


# ------------------------------------------------------------------- charts
class Charts:
    """Collects chart specs; each ``add`` returns the element vega-embed draws it into."""

    def __init__(self) -> None:
        self.specs: dict[str, dict[str, Any]] = {}

    def add(self, chart: Any, caption: str = "") -> str:
        chart_id = f"chart-{len(self.specs)}"
        self.specs[chart_id] = chart.to_dict()
        cap = f"<p class='caption'>{esc(caption)}</p>" if caption else ""
        return f"<figure><div class='chart' id='{chart_id}'></div>{cap}</figure>"


def _prefixed(frame: pl.DataFrame, label: str | None) -> pl.DataFrame:
    if label is None or frame.is_empty() or "group" not in frame.columns:
        return frame
    return frame.with_columns((pl.lit(f"{label} · ") + pl.col("group")).alias("group"))


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if not f.is_empty()]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def chart_sections(store: Store, runs: list[RunRecord], charts: Charts) -> str:
    """The Results page's latency and cost charts, its timeline and drift, the Quality chart,
    and the cost x latency frontier, over every run (groups prefixed by run id when several)."""
    from bench.results import charts as c

    many = len(runs) > 1
    per_run = [summary.frame(summary.summarize(store, Filters((r.run_id,)), min_rows=summary.EXACT_ONLY))
               for r in runs]
    groups = _concat([_prefixed(g, r.run_id if many else None) for g, r in zip(per_run, runs)])
    quality = _concat([_prefixed(pass_rates.quality_groups(g), r.run_id if many else None)
                       for g, r in zip(per_run, runs)])
    out = ["<h2 id='latency'>Latency</h2>"]
    if groups.is_empty():
        return "".join(out) + "<p>No measured requests.</p>"
    rates = analytics.rates(groups)
    for metric, unit, title in (("ttft_ms", "TTFT ms", "Time to first token"),
                                ("e2e_ms", "end-to-end ms", "End to end (last token)"),
                                ("decode_tps", "decode tokens/s", "Decode tokens/s (excludes the wait)")):
        out.append(charts.add(c.latency_with_errors(analytics.box_stats(groups, metric), rates, unit, title)))
    out.append("<p class='caption'>Box p25–p75, line p5–p95, tick median, over every ok request; "
               "error and 429 rates (of requests sent) beside each chart.</p>")
    out.append("<h2 id='cost'>Cost</h2>")
    out.append(charts.add(c.cost_chart(analytics.cost_frame(groups)),
                          "Billed = cost the API reported; list = catalog price × tokens at run start."))
    out.append("<h2 id='frontier'>Frontier</h2>")
    points = analytics.pareto_points(groups)
    out.append(charts.add(c.pareto_chart(points, "TTFT")))
    out.append(_frontier_table(points))
    out.append("<h2 id='quality'>Quality</h2>")
    if quality.is_empty() or not int(quality["n_checked"].sum() or 0):
        out.append("<p>These runs have no quality checks.</p>")
    else:
        if many:  # the frontier over every run's groups, not per run
            flags = pass_rates.pareto_flags(
                list(zip(quality["pass_rate"], quality["e2e_p50_ms"], quality["cost_per_correct_usd"])),
                ("high", "low", "low"))
            quality = quality.with_columns(pl.Series("on_frontier", flags, dtype=pl.Boolean))
        out.append(charts.add(c.quality_chart(quality)))
        out.append(_quality_table(quality))
    out.append("<h2 id='timeline'>Timeline and drift</h2>")
    cap = max(100, TIMELINE_CAP // len(runs))
    for r in runs:
        tl, total = analytics.timeline(store, Filters((r.run_id,)), r.run_id, 0, cap)
        out.append(f"<h3>{esc(r.run_id)}</h3>")
        out.append(charts.add(c.timeline_chart(tl, total, 0),
                              "" if total <= cap else f"Only the first {cap:,} of {total:,} requests "
                                                      "(in start order) are drawn."))
        out.append(charts.add(c.drift_chart(analytics.drift(store, Filters((r.run_id,)), r.run_id))))
    return "".join(out)


def conversations_section(store: Store, runs: list[RunRecord], charts: Charts) -> str:
    """Cost per conversation against the no-cache baseline, and cost and TTFT by turn
    (bench.results.conversations); empty when no run has conversations."""
    from bench.results import charts as c
    from bench.results import conversations

    turns = conversations.turn_rows(store, [r.run_id for r in runs])
    if turns.is_empty():
        return ""
    rows = [[f"{r['model']} [{r['provider_variant']}]", fmt_int(r["conversations"]),
             fmt_int(r["conversations_complete"]), fmt_usd(r["cost_per_conversation_usd"]),
             fmt_usd(r["baseline_per_conversation_usd"]),
             "" if r["cache_discount_pct"] is None else f"{r['cache_discount_pct']:.1f} %",
             fmt_pct(r["cache_hit_rate"]), fmt_int(r["switches"])] for r in conversations.summarize(turns)]
    head = ["model [provider]", "conversations", "complete", "USD / conversation", "no-cache baseline",
            "cache saved", "cache hit rate", "switches"]
    return ("<h2 id='conversations'>Conversations</h2>" + table(head, rows)
            + charts.add(c.conversation_chart(conversations.turn_frame(turns)),
                         "Baseline = the same tokens at list price with nothing cached; cache saved = "
                         "1 − billed ÷ baseline. Switches: consecutive turns served by different providers."))


def _frontier_table(points: pl.DataFrame) -> str:
    pts = points.sort(["on_frontier", "p50_ms"], descending=[True, False], nulls_last=True)
    rows = [[g, fmt_num(p), fmt_usd(cost), "on the frontier" if f else ""]
            for g, p, cost, f in zip(pts["group"], pts["p50_ms"], pts["cost_per_request_usd"], pts["on_frontier"])]
    return table(["group", "p50 TTFT ms", "USD per request", "frontier"], rows,
                 ["frontier" if f else "" for f in pts["on_frontier"]])


def _quality_table(q: pl.DataFrame) -> str:
    rows = [[r["group"], str(r["n_checked"]), fmt_ci(r["pass_rate"], r["pass_rate_ci_lo"], r["pass_rate_ci_hi"],
                                                     fmt_pct),
             fmt_usd(r["cost_per_correct_usd"]), fmt_num(r["e2e_p50_ms"]),
             "on the frontier" if r["on_frontier"] else ""]
            for r in q.iter_rows(named=True)]
    return table(["group", "n checked", "pass rate [95% CI]", "USD per correct", "p50 e2e ms", "frontier"], rows,
                 ["frontier" if f else "" for f in q["on_frontier"]])


# ------------------------------------------------------------------- metadata and summary
def metadata_section(runs: list[RunRecord], baseline: RunRecord | None) -> str:
    out = ["<h2 id='runs'>Runs</h2>"]
    for r, role in [(r, "run") for r in runs] + ([(baseline, "baseline")] if baseline else []):
        fields = [("role", role), ("run id", r.run_id), ("name", r.name), ("suite", r.suite_name),
                  ("suite file", r.suite_path), ("suite hash (sha256)", r.suite_hash),
                  ("tool version", r.tool_version), ("status", r.status + (f": {r.status_reason}"
                                                                          if r.status_reason else "")),
                  ("started", r.started_at), ("finished", r.finished_at), ("planned requests", r.planned),
                  ("catalog snapshot", r.catalog_snapshot_id),
                  ("data", "SIMULATED (sandbox, not real providers)" if r.simulated else "real")]
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in fields)
        settings = json.dumps(r.settings, indent=2, sort_keys=True, default=str)
        cls = " simulated" if r.simulated else ""
        out.append(f"<section class='run{cls}'><h3>{esc(r.run_id)}</h3><table class='meta'>{rows}</table>"
                   f"<details><summary>settings</summary><pre>{esc(settings)}</pre></details></section>")
    return "".join(out)


SUMMARY_HEADERS = ["group", "n", "ok", "errors", "429", "TTFT p50 ms [95% CI]", "TTFT p90 ms [95% CI]",
                   "TTFT p99 ms [95% CI]", "e2e p50 ms", "e2e p95 ms", "TPOT p50 ms", "decode tok/s p50",
                   "prompt tok", "completion tok", "billed", "per request", "billed − list", "pass rate [95% CI]"]


def summary_rows(summary: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """``bench.results.summary.run_summary`` groups as display cells (the numbers ``orbench show`` prints)."""
    out = []
    for s in summary:
        ttft = [fmt_ci(s[f"ttft_p{q}_ms"], s[f"ttft_p{q}_ci_lo_ms"], s[f"ttft_p{q}_ci_hi_ms"]) for q in (50, 90, 99)]
        out.append([s["group"], str(s["n"]), str(s["ok"]), fmt_pct(s["error_rate"]), fmt_pct(s["rate_limited_rate"]),
                    *ttft, fmt_num(s["e2e_p50_ms"]), fmt_num(s["e2e_p95_ms"]), fmt_num(s["tpot_p50_ms"]),
                    fmt_num(s["decode_tps_p50"]), fmt_int(s["prompt_tokens"]), fmt_int(s["completion_tokens"]),
                    fmt_usd(s["cost_usd"]), fmt_usd(s["cost_per_request_usd"]), fmt_usd(s["billed_minus_list_usd"]),
                    fmt_ci(s["pass_rate"], s["pass_rate_ci_lo"], s["pass_rate_ci_hi"], fmt_pct)])
    return out


def summary_section(store: Store, runs: list[RunRecord]) -> str:
    out = ["<h2 id='summary'>Summary</h2>",
           "<p class='caption'>Per model × provider, warm-ups excluded; latency over ok requests, with "
           "distribution-free 95% intervals (order statistics; “n too small” where the sample cannot "
           "bound that percentile); error and 429 rates over requests sent; pass rate with a Wilson interval."
           "</p>"]
    for r in runs:
        groups = summary.run_summary(store, r.run_id)
        out.append(f"<h3>{esc(r.run_id)}</h3>")
        out.append(table(SUMMARY_HEADERS, summary_rows(groups),
                         ["total" if s["group"] == "TOTAL" else "" for s in groups]) if groups
                   else "<p>No requests.</p>")
    return "".join(out)


# ------------------------------------------------------------------- baseline
def baseline_changes(store: Store, base_id: str, run_id: str, seed: int = 0) -> list[dict[str, Any]]:
    """What ``orbench compare BASE RUN`` computes (``bench.results.compare``): per model x provider and metric,
    the change of the median (bootstrap CI, every ok value) and whether it is beyond the noise."""
    return compare.compare_runs(store, base_id, run_id, seed=seed)


def baseline_section(store: Store, runs: list[RunRecord], baseline: RunRecord) -> str:
    out = [f"<h2 id='baseline'>Changes against baseline {esc(baseline.run_id)}</h2>",
           "<p class='caption'>Change of the median per model × provider (bootstrap 95% CI of the difference, "
           "every ok request, as <code>orbench compare</code>). Rows marked ▲/▼ are beyond the noise.</p>"]
    for r in runs:
        if r.run_id == baseline.run_id:
            continue
        rows = baseline_changes(store, baseline.run_id, r.run_id)
        out.append(f"<h3>{esc(baseline.run_id)} → {esc(r.run_id)}</h3>")
        if not rows:
            out.append("<p>The two runs share no model × provider.</p>")
            continue
        cells, classes = [], []
        for c in rows:
            rate = c["metric"] == "error rate"
            f = fmt_pct if rate else fmt_num
            beyond = c["verdict"] == "beyond noise"
            mark = ("▲ " if c["direction"] == "worse" else "▼ ") if beyond else ""
            verdict = "" if rate else mark + c["verdict"] + (f" ({c['direction']})" if beyond else "")
            change = (f"{100 * c['change']:+.1f} pts" if rate and c["change"] is not None else
                      "—" if c["change"] is None else
                      f"{c['change']:+,.1f}" + ("" if c.get("change_pct") is None else f" ({c['change_pct']:+.1f} %)"))
            ci = "" if rate or c.get("ci_lo") is None else f"[{c['ci_lo']:+,.1f}, {c['ci_hi']:+,.1f}]"
            cells.append([c["group"], c["metric"], f(c["p50_a"]), f(c["p50_b"]), change, ci, verdict])
            classes.append(f"beyond {c['direction']}" if beyond else "")
        out.append(table(["group", "metric", "baseline p50", "p50", "change", "95% CI of change", "verdict"],
                         cells, classes))
    return "".join(out)


# ------------------------------------------------------------------- failed answers
def failed_answers(store: Store, run_id: str) -> tuple[list[dict[str, Any]], int]:
    """Answered requests that failed: an error outcome, or a failed check with its reasons.

    Returns up to ``FAILED_CAP`` rows (in plan order) and how many there are in all."""
    rows = report.current_rows(store.requests_frame(run_id))
    if rows.is_empty():
        return [], 0
    bad = rows.filter(pl.col("outcome").is_in(sorted(FINISHED_OUTCOMES))
                      & ((pl.col("outcome") != "ok") | pl.col("passed").eq(False).fill_null(False)))
    out = []
    for r in bad.head(FAILED_CAP).iter_rows(named=True):
        if r["outcome"] != "ok":
            reason = f"{r['outcome']}: {r['error'] or 'no message'}"
        else:
            checks = json.loads(r["check_detail"] or "[]")
            reason = "; ".join(f"{c.get('kind')}: {c.get('reason')}" for c in checks if c.get("passed") is False)
        answer = r["output_text"] or r["tool_calls_json"] or ""
        if len(answer) > TEXT_CAP:
            answer = answer[:TEXT_CAP] + f"… ({len(answer):,} characters)"
        out.append({"request_idx": r["request_idx"], "model": r["model"], "provider": r["provider_variant"],
                    "case_id": r["case_id"], "repeat": r["repeat"], "outcome": r["outcome"],
                    "reason": reason or "failed", "answer": answer})
    return out, bad.height


def failures_section(store: Store, runs: list[RunRecord]) -> str:
    out = ["<h2 id='failures'>Failed answers</h2>"]
    for r in runs:
        rows, total = failed_answers(store, r.run_id)
        out.append(f"<h3>{esc(r.run_id)}: {total:,} failed</h3>")
        if not rows:
            out.append("<p>None: every answered request was ok and passed its checks.</p>")
            continue
        out.append(table(["#", "model", "provider", "case", "repeat", "outcome", "why", "answer"],
                         [[str(f["request_idx"]), f["model"], f["provider"], f["case_id"], str(f["repeat"]),
                           f["outcome"], f["reason"], f["answer"]] for f in rows], kind="text"))
        if total > len(rows):
            out.append(f"<p class='caption'>The first {len(rows)} of {total:,} are listed; "
                       f"<code>orbench export {esc(r.run_id)}</code> has every row.</p>")
    return "".join(out)


# ------------------------------------------------------------------- the page
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:16px 24px;
color:#1b1b1b}
h1{margin:.2em 0}h2{margin-top:1.8em;border-bottom:1px solid #ddd}h3{margin:1.2em 0 .4em}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:12.5px}th,td{border:1px solid #ddd;padding:3px 6px;
text-align:left;vertical-align:top}thead th{background:#f4f4f4}td{white-space:nowrap}
table.text td{max-width:420px;overflow-wrap:anywhere;white-space:pre-wrap}.scroll{overflow-x:auto}
tr.total td{font-weight:600;background:#fafafa}tr.frontier td{background:#eef7ee}
tr.beyond.worse td{background:#fdecea}tr.beyond.better td{background:#e8f4fd}table.meta th{width:170px;
background:#f8f8f8}.banner{padding:10px 14px;border-radius:6px;margin:10px 0;font-weight:600}
.simulated.banner{background:#fff4d6;border:1px solid #e0b000}.caption{color:#555;font-size:12.5px}
figure{margin:.6em 0 1.2em}.chart{width:100%}pre{background:#f7f7f7;padding:8px;overflow:auto}
nav a{margin-right:12px}
"""

RENDER = """
(function () {
  const specs = JSON.parse(document.getElementById("orbench-specs").textContent);
  const state = {total: Object.keys(specs).length, rendered: 0, failed: 0};
  window.orbenchCharts = state;
  for (const [id, spec] of Object.entries(specs)) {
    const el = document.getElementById(id);
    vegaEmbed(el, spec, {actions: false, renderer: "svg"}).then(function () {
      el.dataset.rendered = "1"; state.rendered += 1;
    }).catch(function (err) {
      el.dataset.failed = "1"; state.failed += 1; el.textContent = "This chart could not be drawn: " + err;
    });
  }
})();
"""


def build_report(store: Store, run_ids: Sequence[str], baseline: str | None = None,
                 now: datetime | None = None) -> str:
    """The report of ``run_ids`` (resolved ids), optionally against ``baseline``, as one HTML string."""
    if not run_ids:
        raise ConfigError("report: name at least one run")
    runs = [_get(store, r) for r in dict.fromkeys(run_ids)]
    base = _get(store, baseline) if baseline else None
    charts = Charts()
    sim = [r.run_id for r in runs + ([base] if base else []) if r.simulated]
    banner = ""
    if sim:
        which = "all runs" if len(sim) == len(runs) + bool(base) else "runs " + ", ".join(sim)
        banner = (f"<div class='banner simulated'>SIMULATED: {esc(which)} ran on the orbench sandbox, "
                  "a simulated OpenRouter. These numbers are not real providers' latency, cost or quality.</div>")
    parts = [metadata_section(runs, base), summary_section(store, runs), chart_sections(store, runs, charts)]
    talk = conversations_section(store, runs, charts)
    parts.append(talk)
    if base is not None:
        parts.append(baseline_section(store, runs, base))
    parts.append(failures_section(store, runs))
    title = "orbench report: " + ", ".join(r.run_id for r in runs)
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f"<a href='#{a}'>{t}</a>" for a, t in (
        ("runs", "Runs"), ("summary", "Summary"), ("latency", "Latency"), ("cost", "Cost"),
        ("frontier", "Frontier"), ("quality", "Quality"), ("timeline", "Timeline"),
        *([("conversations", "Conversations")] if talk else []),
        *([("baseline", "Baseline")] if base else []), ("failures", "Failed answers")))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        f"<meta name='generator' content='orbench {esc(__version__)}'><title>{esc(title)}</title>"
        f"<style>{STYLE}</style><script>{vega_bundle()}</script></head><body>"
        f"<h1>{esc(title)}</h1><p class='caption'>Written by orbench {esc(__version__)} on {esc(stamp)}. "
        "One self-contained file: it requests nothing from the network.</p>"
        f"{banner}<nav>{nav}</nav>{''.join(parts)}"
        f"<script type='application/json' id='orbench-specs'>{script_json(charts.specs)}</script>"
        f"<script>{RENDER}</script></body></html>"
    )


def _get(store: Store, run_id: str) -> RunRecord:
    run = store.get_run(run_id)
    if run is None:
        raise ConfigError(f"no run {run_id} in {store.path}")
    return run

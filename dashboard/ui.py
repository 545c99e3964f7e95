"""Layout pieces every page shares: the simulated banner, error messages, run filters, demo button.

Only layout lives here (widgets and messages); data comes from ``dashboard.data``.
Shareable views: the filters every page shares (runs, models, providers, cases, the
provider reading, and the Decide page's constraints and objective) live in one dict in
``st.session_state`` (``VIEW``), copied into ``st.query_params`` on every run, so the URL
reproduces the view and a page switch keeps the picks. A new session (a reload, a shared
link) starts from the URL. Each widget copies its value back in ``on_change``, so the dict
is current before the script reruns; see ``URL_PARAMS`` for the names.
``store_errors`` is how every page turns a database problem into a message: a
locked file (``StoreBusy``) is a warning with a Retry button, any other
``BenchError`` an error; both stop the page instead of showing a stack trace.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import duckdb
import polars as pl
import streamlit as st

from bench.config import Settings
from bench.errors import BenchError, StoreBusy
from bench.examples import DEMO_MIN_PASS_RATE
from dashboard import data, jobs

PROVIDER_BY_LABELS = {"variant": "routing variant (as asked)", "served": "served-by provider"}


_WARM: list[bool] = []


def warm_once() -> None:
    """Load, once per dashboard process and after its first page is out, what chart and table pages
    need the first time: Altair (~0.3 s), the Vega-Lite schema its first validation compiles, and
    pandas, which ``st.dataframe`` imports for any frame (~0.25 s). The page a user opens next does
    not pay for them. On the script's thread, not a background one: Altair and Streamlit look
    pandas up in ``sys.modules``, where a half-imported module would break a page."""
    if _WARM:
        return
    _WARM.append(True)
    import importlib

    import altair as alt

    importlib.import_module("pandas")  # for its side effect: the module cache
    alt.Chart(pl.DataFrame({"x": [1.0]})).mark_point().encode(x="x:Q").to_dict()


def banner(settings: Settings) -> None:
    if settings.sandbox:
        st.warning(
            "**Simulated** — no OPENROUTER_API_KEY is set, so this dashboard talks to the built-in "
            "sandbox: models and list prices are real catalog facts, but every latency, provider and "
            "balance is simulated.",
            icon=":material/science:",
        )


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Show database and API failures as messages and stop the page."""
    try:
        yield
    except StoreBusy as exc:
        st.warning(f"The database is busy: {exc}. A run may be writing to it right now.",
                   icon=":material/hourglass:")
        if st.button("Retry", key="store-busy-retry", icon=":material/refresh:"):
            data.clear_caches()
            st.rerun()
        st.stop()
    except BenchError as exc:
        st.error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        st.stop()
    except duckdb.Error as exc:  # a damaged file or a schema this version cannot read
        st.error(f"Could not read the database: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        st.stop()


def page_start(title: str) -> tuple[Settings, str, pl.DataFrame]:
    """Every results page opens the same way: title, stored runs, or the empty state and stop."""
    settings = data.current_settings()
    db = str(settings.db_path)
    st.title(title)
    with store_errors():
        runs = data.runs(db)
    if runs.is_empty():
        empty_state(settings, db)
        st.stop()
    return settings, db, origin_filter(runs)


def empty_state(settings: Settings, db: str) -> None:
    """No runs yet: say where we looked and offer a demo run on the sandbox."""
    what = "no database file yet" if not data.db_exists(db) else "no runs in it yet"
    st.info(f"`{db}`: {what}. Start a run on the Run page, with `orbench run SUITE`, or try a demo.")
    if st.button("Run a demo on the sandbox", type="primary", icon=":material/play_arrow:",
                 key="demo-run"):
        demo_button_action(settings, db)


def demo_button_action(settings: Settings, db: str) -> None:
    import os
    from pathlib import Path

    with_local = jobs.demo_includes_local(dict(os.environ))
    what = "the simulated sandbox" + (" and the real local model" if with_local else "")
    with st.spinner(f"Running the demo suite on {what}..."):
        try:
            state = jobs.run_demo(data.sandbox_settings(Path(db)), data.SUITES_DIR,
                                  with_local=with_local)
        except BenchError as exc:
            st.error(f"The demo could not start: {exc}")
            return
    if state.phase != "finished":
        st.error(f"The demo run ended {state.phase}: {state.message or 'no reason given'}")
        return
    data.clear_caches()
    # Decide opens with a limit it can judge, so the demo shows verdicts and cost per correct answer
    view_set("min_pass_rate", [DEMO_MIN_PASS_RATE])
    st.switch_page("app_pages/decide.py")


@dataclass(frozen=True)
class Choice:
    """The user's filter picks; empty tuples mean "all"."""

    run_ids: tuple[str, ...]
    models: tuple[str, ...]
    providers: tuple[str, ...]
    cases: tuple[str, ...]
    provider_by: str

    @property
    def args(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], str]:
        return self.run_ids, self.models, self.providers, self.cases, self.provider_by


def run_labels(runs: pl.DataFrame) -> dict[str, str]:
    """run_id -> "name · id (status, simulated)" for select boxes ("name · id @ origin (...)" when the
    runs come from several origins)."""
    labels = {}
    several = "origin" in runs.columns and runs["origin"].n_unique() > 1
    for r in runs.iter_rows(named=True):
        tags = [r.get("status") or ""]
        if r.get("simulated"):
            tags.append("simulated")
        name = r.get("name") or r.get("suite_name") or "run"
        where = f" @ {r.get('origin')}" if several else ""
        labels[r["run_id"]] = f"{name} · {r['run_id']}{where} ({', '.join(t for t in tags if t)})"
    return labels


def sweep_labels(sweeps: pl.DataFrame) -> dict[str, str]:
    """sweep_id -> "id · concurrency 1,2,4 · 3 steps (finished, simulated)" for the Load page's picker."""
    labels = {}
    for r in sweeps.iter_rows(named=True):
        levels = ",".join(f"{v:g}" for v in r["levels"] or [])
        tags = [r["status"]] + (["simulated"] if r["simulated"] else [])
        labels[r["sweep_id"]] = f"{r['sweep_id']} · {r['axis']} {levels} · {r['steps']} steps ({', '.join(tags)})"
    return labels


def filters(db: str, runs: pl.DataFrame, key: str, where: str = "sidebar") -> Choice:
    """Runs, provider reading, models, providers and cases; returns the picks (stops with no run).

    Every pick is shared (``VIEW``): it comes from the URL or the last page, and goes back there."""
    box = st.sidebar if where == "sidebar" else st.container()
    with box:
        run_ids = run_picker(runs, key)
        provider_by = provider_by_picker(key)
        with store_errors():
            opts = data.filter_options(db, tuple(run_ids)) if run_ids else {}
        models = shared_multiselect("Models", opts.get("models", []), "model", f"{key}-models",
                                    placeholder="all models")
        providers = shared_multiselect("Providers", opts.get(provider_by, []), "provider", f"{key}-providers",
                                       placeholder="all providers")
        cases = shared_multiselect("Cases", opts.get("cases", []), "case", f"{key}-cases", placeholder="all cases")
    if not run_ids:
        st.info("Pick at least one run in the sidebar.")
        st.stop()
    return Choice(tuple(run_ids), tuple(models), tuple(providers), tuple(cases), provider_by)


def run_picker(runs: pl.DataFrame, key: str) -> list[str]:
    """The shared "Runs" multiselect (URL ``run``); the newest run when nothing is picked yet."""
    labels = run_labels(runs)
    ids = list(labels)
    return shared_multiselect("Runs", ids, "run", f"{key}-runs", default=ids[:1],
                              format_func=labels.__getitem__, placeholder="pick one or more runs")


def provider_by_picker(key: str, horizontal: bool = True) -> str:
    """The shared "Provider means" radio (URL ``provider_by``: ``variant`` or ``served``)."""
    return shared_radio("Provider means", list(PROVIDER_BY_LABELS), "provider_by", f"{key}-provider-by",
                        format_func=PROVIDER_BY_LABELS.__getitem__, horizontal=horizontal)


# ------------------------------------------------------------------- shareable views (URL)
VIEW = "orbench-view"  # session_state: {URL parameter: [values]}, the picks every page shares
URL_LISTS = ("run", "model", "provider", "case", "origin")  # repeated: ?run=A&run=B
URL_VALUES = ("provider_by", "objective", "sweep", "monitor", "since",  # one value each: ?sweep=<sweep_id> (Load),
              "verify", "vprovider", "dimension", "skip_failed",  # ?monitor=<name>&since=7d (Trends); Providers
              "by_origin")  # Decide: runs from several origins pooled or side by side
URL_BOUNDS = ("min_", "max_")  # + a metric of bench.results.gates.GATE_METRICS: ?min_pass_rate=0.9
URL_PARAMS = (*URL_LISTS, *URL_VALUES, "min_METRIC", "max_METRIC")


def _ours(name: str) -> bool:
    return name in URL_LISTS or name in URL_VALUES or name.startswith(URL_BOUNDS)


def restore_view() -> None:
    """Once per script run, before the page: a new session starts from the URL; then view -> URL."""
    if VIEW not in st.session_state:
        st.session_state[VIEW] = {k: st.query_params.get_all(k) for k in st.query_params if _ours(k)}
    _write_url()


def view() -> dict[str, list[str]]:
    """The shared picks (a copy), by URL parameter."""
    return {k: list(v) for k, v in st.session_state.get(VIEW, {}).items()}


def view_set(param: str, values: Sequence[str]) -> None:
    """Remember one shared pick (empty forgets it) and put the whole view in the URL."""
    shared = st.session_state.setdefault(VIEW, {})
    if values:
        shared[param] = [str(v) for v in values]
    else:
        shared.pop(param, None)
    _write_url()


def _write_url() -> None:
    shared = st.session_state.get(VIEW, {})
    for k in [k for k in st.query_params if _ours(k) and k not in shared]:
        del st.query_params[k]
    for k, values in shared.items():
        if st.query_params.get_all(k) != values:
            st.query_params[k] = values


def _copy_back(key: str, param: str, to_text: Callable[[Any], list[str]]) -> Callable[[], None]:
    return lambda: view_set(param, to_text(st.session_state.get(key)))


def _seed(key: str, want: object) -> None:
    """Set a widget's value before it is drawn, when the shared view says otherwise (page switch, URL)."""
    if key not in st.session_state or st.session_state[key] != want:
        st.session_state[key] = want


def shared_multiselect(label: str, options: Sequence[str], param: str, key: str,
                       default: Sequence[str] = (), **kw: Any) -> list[str]:
    """A multiselect whose picks are the shared ``param`` (values not among ``options`` are dropped)."""
    shared = view()
    if param not in shared and default:
        view_set(param, default)
        shared[param] = list(default)
    _seed(key, [v for v in shared.get(param, []) if v in options])
    return list(st.multiselect(label, list(options), key=key,
                               on_change=_copy_back(key, param, lambda v: list(v or [])), **kw))


def shared_radio(label: str, options: Sequence[str], param: str, key: str, **kw: Any) -> str:
    """A radio whose choice is the shared ``param`` (the first option when unset or unknown)."""
    picked = view().get(param, [])
    _seed(key, picked[0] if picked and picked[0] in options else options[0])
    return str(st.radio(label, list(options), key=key,
                        on_change=_copy_back(key, param, lambda v: [] if v is None else [str(v)]), **kw))


def shared_selectbox(label: str, options: Sequence[str], param: str, key: str, **kw: Any) -> str:
    """A selectbox whose choice is the shared ``param``, written back into the URL even when it
    is the default (the first option), so the address always names what is shown. A URL value
    not among ``options`` is dropped with a warning naming the parameter."""
    picked = view().get(param, [])
    if picked and picked[0] not in options:
        st.warning(f"URL parameter {param}={picked[0]!r}: no such choice here; showing {options[0]!r}.")
        picked = []
    choice = picked[0] if picked else options[0]
    if picked != [choice]:
        view_set(param, [choice])
    _seed(key, choice)
    return str(st.selectbox(label, list(options), key=key,
                            on_change=_copy_back(key, param, lambda v: [] if v is None else [str(v)]), **kw))


def shared_number(label: str, param: str, key: str, **kw: Any) -> float | None:
    """An optional number input (empty = off) whose value is the shared ``param``.

    A URL value that is not a number is dropped with a warning naming the parameter."""
    raw = view().get(param, [])
    value: float | None = None
    if raw:
        try:
            value = float(raw[0])
        except ValueError:
            st.warning(f"URL parameter {param}={raw[0]!r} is not a number; ignored.")
            view_set(param, [])
    _seed(key, value)
    out = st.number_input(label, value=None, key=key,
                          on_change=_copy_back(key, param, lambda v: [] if v is None else [f"{v:g}"]), **kw)
    return None if out is None else float(out)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&:])")


def md_escape(text: str) -> str:
    """Text (a run or suite name, maybe another machine's) as literal Markdown: no links, images or HTML."""
    return _MD_SPECIAL.sub(r"\\\1", str(text).replace("\n", " "))


def team_header(db: str) -> None:
    """With ``--team``: pull every <= 10 s (and on Refresh) and say what the cache holds."""
    with store_errors():
        found = data.team()
    if found is None:
        return
    _team_status(db, found.key, found.label)


@st.fragment(run_every=data.TEAM_TICK_S)  # ticks every 5 s, the pull's cache lasts 9 s: a pull every 10 s
def _team_status(db: str, team_key: str, label: str) -> None:
    from datetime import UTC, datetime

    info = data.team_pull(db, team_key)
    if info["error"]:
        st.warning(f"team: {label}: {info['error']}", icon=":material/cloud_off:")
        return
    with store_errors():
        n_runs, n_origins = data.team_counts(db)
    synced = info["synced_at"]
    ago = max(0, int((datetime.now(UTC) - synced).total_seconds())) if synced else None
    origins = f"{n_origins} origin{'s' if n_origins != 1 else ''}"
    st.caption(f":material/groups: team: {label}, {n_runs} runs from {origins}, synced {ago} s ago",
               help="Pulled into this dashboard's local DuckDB at least every "
               f"{data.TEAM_SYNC_S} s; Refresh data pulls now.")
    for line in info["skipped"]:
        st.text(line)  # names another machine's origin and run: text, never Markdown
    if info["entries"] and st.session_state.get("team-synced") != synced:
        st.session_state["team-synced"] = synced
        data.clear_caches()  # new rows: every page reads them now
        st.rerun(scope="app")


def origin_filter(runs: pl.DataFrame) -> pl.DataFrame:
    """With runs from several origins: the shared "Origins" pick (URL ``origin``) narrows the runs."""
    if "origin" not in runs.columns:
        return runs
    origins = sorted({o for o in runs["origin"].to_list() if o})
    if len(origins) < 2:
        return runs
    with st.sidebar:
        picked = shared_multiselect("Origins", origins, "origin", "origins", placeholder="all origins")
    return runs.filter(pl.col("origin").is_in(picked)) if picked else runs


def refresh_button() -> None:
    if st.sidebar.button("Refresh data", icon=":material/refresh:", key="refresh"):
        data.clear_caches()
        st.rerun()


def money(value: SupportsFloat | None, digits: int = 6) -> str:
    """A USD amount for a metric tile ("—" when unknown)."""
    if value is None:
        return "—"
    return f"${float(value):,.{digits}f}"  # display only; exports keep the Decimal


# ------------------------------------------------------------------- tables for display
def _fmt_ci(lo: float | None, hi: float | None, digits: int) -> str:
    if lo is None or hi is None:
        return "n too small"
    return f"{lo:,.{digits}f} – {hi:,.{digits}f}"


def percentile_display(table: pl.DataFrame, digits: int = 1) -> pl.DataFrame:
    """p50..p99 with their 95 % intervals as text, one row per group."""
    rows = []
    for r in table.iter_rows(named=True):
        rec: dict[str, object] = {"group": r["group"], "n (ok)": r["n"]}
        for q in (50, 90, 95, 99):
            rec[f"p{q}"] = r[f"p{q}"]
            rec[f"p{q} 95% CI"] = _fmt_ci(r[f"p{q}_ci_lo"], r[f"p{q}_ci_hi"], digits)
        rows.append(rec)
    return pl.DataFrame(rows) if rows else pl.DataFrame({"group": []}, schema={"group": pl.String})


SUMMARY_COLUMNS = {
    "group": "group", "n": "n", "not_sent": "not sent", "ok": "ok", "error_rate": "error rate",
    "rate_limited_rate": "429 rate", "ttft_p50_ms": "TTFT p50 ms", "e2e_p50_ms": "e2e p50 ms",
    "decode_tps_p50": "decode tok/s p50", "tpot_p50_ms": "TPOT p50 ms",
    "prompt_tokens": "prompt tokens", "completion_tokens": "completion tokens",
    "cost_usd": "billed USD", "list_cost_usd": "list USD", "cost_per_request_usd": "USD / request",
    "cost_per_1k_requests_usd": "USD / 1k requests", "pass_rate": "pass rate",
}


def summary_display(groups: pl.DataFrame) -> pl.DataFrame:
    """The per-group summary (``bench.results.summary``) with readable headers; money as float for display only."""
    cols = [c for c in SUMMARY_COLUMNS if c in groups.columns]
    out = groups.select(cols).with_columns(
        [pl.col(c).cast(pl.Float64) for c in ("cost_usd", "list_cost_usd", "cost_per_request_usd",
                                                "cost_per_1k_requests_usd") if c in cols]
    )
    if "billed_minus_list_usd" in groups.columns:
        out = out.with_columns(groups["billed_minus_list_usd"].cast(pl.Float64).alias("billed − list USD"))
    if "token_source" in groups.columns:
        out = out.with_columns(groups["token_source"].alias("token source"))
    return out.rename({c: SUMMARY_COLUMNS[c] for c in cols})


SUMMARY_FORMATS = {
    "error rate": st.column_config.NumberColumn(format="percent"),
    "429 rate": st.column_config.NumberColumn(format="percent"),
    "pass rate": st.column_config.NumberColumn(format="percent"),
    "TTFT p50 ms": st.column_config.NumberColumn(format="%.1f"),
    "e2e p50 ms": st.column_config.NumberColumn(format="%.1f"),
    "decode tok/s p50": st.column_config.NumberColumn(format="%.1f"),
    "TPOT p50 ms": st.column_config.NumberColumn(format="%.2f"),
    "billed USD": st.column_config.NumberColumn(format="$%.6f"),
    "list USD": st.column_config.NumberColumn(format="$%.6f"),
    "billed − list USD": st.column_config.NumberColumn(format="$%.6f"),
    "USD / request": st.column_config.NumberColumn(format="$%.8f"),
    "USD / 1k requests": st.column_config.NumberColumn(format="$%.4f"),
}


# ------------------------------------------------------------------- the Decide page's pieces
COMMON_CONSTRAINTS = (("min", "pass_rate"), ("max", "ttft_p95_ms"), ("max", "e2e_p95_ms"),
                      ("max", "cost_per_request_usd"), ("max", "error_rate"))
_BOUND_WORDS = {"min": "at least", "max": "at most"}


def _number_kw(metric: str) -> dict[str, Any]:
    if metric.endswith("_rate"):
        return {"min_value": 0.0, "max_value": 1.0, "step": 0.05, "format": "%.3f"}
    if metric.endswith("_usd"):
        return {"min_value": 0.0, "step": 0.000001, "format": "%.8f"}
    return {"min_value": 0.0, "step": 50.0 if metric.endswith("_ms") else 1.0, "format": "%.1f"}


def constraint_inputs(key: str, metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """Number inputs (empty = no limit) for the common constraints, plus any other metric of
    ``metrics`` the user adds; URL ``min_METRIC`` / ``max_METRIC``. Returns the ``--min`` and
    ``--max`` texts ("pass_rate=0.9") for ``bench.results.decide.parse_constraints``."""
    common = {f"{b}_{m}" for b, m in COMMON_CONSTRAINTS}
    others = [f"{b}_{m}" for m in sorted(metrics) for b in ("min", "max") if f"{b}_{m}" not in common]
    shared = view()
    for param in [p for p in shared if p.startswith(URL_BOUNDS) and p not in common and p not in others]:
        st.warning(f"URL parameter {param}: unknown metric {param[4:]!r}; ignored. Known: {', '.join(sorted(metrics))}")
        view_set(param, [])
    extra_key = f"{key}-more"
    _seed(extra_key, [p for p in others if p in shared] + [p for p in st.session_state.get(extra_key, [])
                                                           if p in others and p not in shared])
    cols = st.columns(len(COMMON_CONSTRAINTS))
    params = []
    for col, (bound, metric) in zip(cols, COMMON_CONSTRAINTS):
        with col:
            params.append((f"{bound}_{metric}", f"{metric} {_BOUND_WORDS[bound]}"))
            shared_number(params[-1][1], params[-1][0], f"{key}-{params[-1][0]}", **_number_kw(metric))
    more = st.multiselect("More constraints", others, key=extra_key, placeholder="add a limit on another metric",
                          format_func=lambda p: f"{p[4:]} {_BOUND_WORDS[p[:3]]}")
    for forgotten in [p for p in others if p in shared and p not in more]:
        view_set(forgotten, [])
    if more:
        cols = st.columns(min(len(more), 5))
        for i, param in enumerate(more):
            with cols[i % len(cols)]:
                shared_number(f"{param[4:]} {_BOUND_WORDS[param[:3]]}", param, f"{key}-{param}",
                              **_number_kw(param[4:]))
    mins: list[str]
    maxs: list[str]
    mins, maxs = [], []
    for param, values in view().items():
        if param.startswith(URL_BOUNDS) and values and (param in common or param in more):
            (mins if param.startswith("min_") else maxs).append(f"{param[4:]}={values[0]}")
    return mins, maxs


VERDICT_MARKS = {"meets": "meets", "uncertain": "uncertain", "fails": "fails"}  # no emoji: headless fonts lack them
_VERDICT_BACKGROUND = {"meets": "#e8f5e9", "uncertain": "#fff8e1", "fails": "#ffebee"}


def decision_display(decision: Any) -> pl.DataFrame:
    """The ranked candidates of a ``bench.results.decide.Decision`` for ``st.dataframe``: verdict, the
    objective, money, each constraint's value with its interval, and why (uncertain or failing)."""
    from bench.results.decide import format_metric, format_usd

    rows = []
    for rank, c in enumerate(decision.ranking, 1):
        row: dict[str, Any] = {"rank": rank, "candidate": c.label, "verdict": VERDICT_MARKS[c.verdict],
                               decision.objective_field: format_metric(decision.objective_field,
                                                                       c.value(decision.objective_field)),
                               "USD / 1k requests": format_usd(c.value("cost_per_1k_requests_usd")),
                               "USD / correct answer": format_usd(c.value("cost_per_correct_usd")),
                               "n": c.value("n")}
        if c.value("cost_per_conversation_usd") is not None:  # runs with conversations
            row["USD / conversation"] = format_usd(c.value("cost_per_conversation_usd"))
        for r in c.results:
            ci = "" if r.ci_lo is None or r.method == "exact" else \
                f" [{format_metric(r.constraint.metric, r.ci_lo)} – {format_metric(r.constraint.metric, r.ci_hi)}]"
            row[r.constraint.text] = f"{format_metric(r.constraint.metric, r.value)}{ci} {r.verdict}"
        row["why"] = "; ".join(r.reason for r in c.results if r.verdict != "meets")
        rows.append(row)
    return pl.DataFrame(rows) if rows else pl.DataFrame({"candidate": []}, schema={"candidate": pl.String})


def conversation_display(summary: pl.DataFrame) -> pl.DataFrame:
    """``bench.results.conversations.summary_frame`` for ``st.dataframe``: money and rates as text."""
    from bench.results.decide import format_usd

    def pct(v: Any) -> str:
        return "" if v is None else f"{v:.1f} %"

    return pl.DataFrame([{
        "model [provider]": r["group"], "conversations": r["conversations"],
        "complete": r["conversations_complete"], "stopped": r["conversations_stopped"],
        "USD / conversation": format_usd(r["cost_per_conversation_usd"]),
        "no-cache baseline": format_usd(r["baseline_per_conversation_usd"]),
        "cache saved": pct(r["cache_discount_pct"]),
        "cache hit rate": pct(None if r["cache_hit_rate"] is None else 100 * r["cache_hit_rate"]),
        "switches": r["switches"], "conversations switched": r["conversations_switched"],
    } for r in summary.to_dicts()])


def verdict_styled(table: pl.DataFrame) -> Any:
    """The table as a pandas Styler, each row's background by its verdict."""
    frame = table.to_pandas()
    if "verdict" not in frame.columns:
        return frame

    def paint(row: Any) -> list[str]:
        verdict = str(row["verdict"]).split(" ")[-1]
        return [f"background-color: {_VERDICT_BACKGROUND.get(verdict, 'white')}"] * len(row)

    return frame.style.apply(paint, axis=1)


_CONFORMANCE_BACKGROUND = {"conforms": "#e8f5e9", "uncertain": "#fff8e1", "deviates": "#ffebee", "n/a": "#f5f5f5"}


def conformance_styled(table: pl.DataFrame, columns: Sequence[str]) -> Any:
    """The verify matrix as a pandas Styler: each verdict cell (and the provider's verdict) by its colour."""
    frame = table.to_pandas()

    def paint(value: Any) -> str:
        verdict = str(value).split(" ")[0]
        return f"background-color: {_CONFORMANCE_BACKGROUND[verdict]}" if verdict in _CONFORMANCE_BACKGROUND else ""

    return frame.style.map(paint, subset=[c for c in ("verdict", *columns) if c in frame.columns])

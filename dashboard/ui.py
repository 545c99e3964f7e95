"""Layout pieces every page shares: the simulated banner, error messages, run filters, demo button.

Only layout lives here (widgets and messages); data comes from ``dashboard.data``.
``store_errors`` is how every page turns a database problem into a message: a
locked file (``StoreBusy``) is a warning with a Retry button, any other
``BenchError`` an error; both stop the page instead of showing a stack trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import polars as pl
import streamlit as st

from bench.config import Settings
from bench.errors import BenchError, StoreBusy
from dashboard import data, jobs

PROVIDER_BY_LABELS = {"variant": "routing variant (as asked)", "served": "served-by provider"}


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
    return settings, db, runs


def empty_state(settings: Settings, db: str) -> None:
    """No runs yet: say where we looked and offer a demo run on the sandbox."""
    what = "no database file yet" if not data.db_exists(db) else "no runs in it yet"
    st.info(f"`{db}`: {what}. Start a run on the Run page, with `orbench run SUITE`, or try a demo.")
    if st.button("Run a demo on the sandbox", type="primary", icon=":material/play_arrow:",
                 key="demo-run"):
        demo_button_action(settings, db)


def demo_button_action(settings: Settings, db: str) -> None:
    from pathlib import Path

    import os

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
    st.rerun()


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
    """run_id -> "name · id (status, simulated)" for select boxes."""
    labels = {}
    for r in runs.iter_rows(named=True):
        tags = [r.get("status") or ""]
        if r.get("simulated"):
            tags.append("simulated")
        name = r.get("name") or r.get("suite_name") or "run"
        labels[r["run_id"]] = f"{name} · {r['run_id']} ({', '.join(t for t in tags if t)})"
    return labels


def filters(db: str, runs: pl.DataFrame, key: str, where: str = "sidebar") -> Choice:
    """Runs, provider reading, models, providers and cases; returns the picks (stops with no run)."""
    box = st.sidebar if where == "sidebar" else st.container()
    labels = run_labels(runs)
    ids = list(labels)
    with box:
        run_ids = st.multiselect("Runs", ids, default=ids[:1], format_func=labels.__getitem__,
                                 key=f"{key}-runs", placeholder="pick one or more runs")
        provider_by = st.radio("Provider means", list(PROVIDER_BY_LABELS),
                               format_func=PROVIDER_BY_LABELS.__getitem__, key=f"{key}-provider-by",
                               horizontal=True)
        with store_errors():
            opts = data.filter_options(db, tuple(run_ids)) if run_ids else {}
        models = st.multiselect("Models", opts.get("models", []), key=f"{key}-models",
                                placeholder="all models")
        providers = st.multiselect("Providers", opts.get(provider_by, []), key=f"{key}-providers",
                                   placeholder="all providers")
        cases = st.multiselect("Cases", opts.get("cases", []), key=f"{key}-cases", placeholder="all cases")
    if not run_ids:
        st.info("Pick at least one run in the sidebar.")
        st.stop()
    return Choice(tuple(run_ids), tuple(models), tuple(providers), tuple(cases), provider_by)


def refresh_button() -> None:
    if st.sidebar.button("Refresh data", icon=":material/refresh:", key="refresh"):
        data.clear_caches()
        st.rerun()


def money(value: object, digits: int = 6) -> str:
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
    "group": "group", "n": "n", "sent": "sent", "ok": "ok", "error_rate": "error rate",
    "rate_limited_rate": "429 rate", "ttft_median": "TTFT p50 ms", "e2e_median": "e2e p50 ms",
    "decode_median": "decode tok/s p50", "tpot_p50_ms": "TPOT p50 ms",
    "prompt_tokens": "prompt tokens", "completion_tokens": "completion tokens",
    "billed_usd": "billed USD", "list_usd": "list USD", "cost_per_request_usd": "USD / request",
    "cost_per_1k_usd": "USD / 1k requests", "pass_rate": "pass rate",
}


def summary_display(groups: pl.DataFrame) -> pl.DataFrame:
    """The per-group summary with readable headers; money as float for display only."""
    cols = [c for c in SUMMARY_COLUMNS if c in groups.columns]
    out = groups.select(cols).with_columns(
        [pl.col(c).cast(pl.Float64) for c in ("billed_usd", "list_usd", "cost_per_request_usd",
                                                "cost_per_1k_usd") if c in cols]
    )
    if "billed_usd" in cols and "list_usd" in cols:
        out = out.with_columns((pl.col("billed_usd") - pl.col("list_usd")).alias("billed − list USD"))
    if "token_sources" in groups.columns:
        out = out.with_columns(groups["token_sources"].list.join(",").alias("token source"))
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

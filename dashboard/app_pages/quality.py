"""Quality: pass rates with intervals, cost per correct answer, the 3-way frontier, failed answers."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, data, ui

settings, db, runs = ui.page_start("Quality")
run_ids = tuple(ui.run_picker(runs, "q"))  # shared with every page and the URL
provider_by = ui.provider_by_picker("q")
if not run_ids:
    st.info("Pick at least one run.")
    st.stop()
with ui.store_errors():
    groups = data.quality_groups(db, run_ids, provider_by)
if groups.is_empty() or groups["n_checked"].sum() == 0:
    st.info("These runs have no quality checks. Add `checks:` to the suite's cases (see the README), "
            "then re-score a stored run without new requests: `orbench check SUITE --run RUN`.")
    st.stop()

st.altair_chart(charts.quality_chart(groups), width="stretch", key="chart-quality")
st.dataframe(
    groups.select("group", "n_checked", "pass_rate", "pass_rate_ci_lo", "pass_rate_ci_hi",
                  "cost_per_correct_usd", "e2e_p50_correct_ms", "e2e_p50_ms", "ttft_p50_ms", "on_frontier"),
    hide_index=True, key="table-quality",
    column_config={
        "pass_rate": st.column_config.NumberColumn("pass rate", format="percent"),
        "pass_rate_ci_lo": st.column_config.NumberColumn("95% CI lo", format="percent"),
        "pass_rate_ci_hi": st.column_config.NumberColumn("95% CI hi", format="percent"),
        "cost_per_correct_usd": st.column_config.NumberColumn("USD / correct answer", format="$%.8f"),
        "e2e_p50_correct_ms": st.column_config.NumberColumn("p50 e2e of correct (ms)", format="%.1f"),
        "e2e_p50_ms": st.column_config.NumberColumn("p50 e2e (ms)", format="%.1f"),
        "ttft_p50_ms": st.column_config.NumberColumn("p50 TTFT (ms)", format="%.1f"),
    },
)
st.caption("Pass rate over ok answers that were checked, 95 % Wilson interval. Cost per correct answer = "
           "billed cost of every request (failed ones can be billed) / correct answers.")

st.subheader("Answers to one case, side by side")
with ui.store_errors():
    cases = data.cases_with_failures(db, run_ids)
case_id = st.selectbox("Case (most failures first)", cases, key="q-case")
if case_id:
    with ui.store_errors():
        answers = data.case_answers(db, run_ids, case_id, provider_by)
    per_row = 3
    group_names = answers["group"].unique(maintain_order=True).to_list() if answers.height else []
    for start in range(0, len(group_names), per_row):
        cols = st.columns(per_row)
        for col, name in zip(cols, group_names[start:start + per_row]):
            rows = answers.filter(pl.col("group") == name)
            with col:
                passed = int(rows["passed"].fill_null(False).sum())
                st.text(f"{name} · {passed}/{rows.height} passed")  # model ids may come from other machines
                for r in rows.iter_rows(named=True):
                    verdict = "passed" if r["passed"] else "FAILED" if r["passed"] is False else r["outcome"]
                    st.caption(f"repeat {r['repeat']}: {verdict}")
                    if r["reasons"]:
                        st.text(f"why: {r['reasons']}")  # plain text: reasons quote model output
                    st.code(r["output_text"] or r["tool_calls_json"] or "(no answer text)",
                            language=None, wrap_lines=True)  # model output: never markdown or HTML

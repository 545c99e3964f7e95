"""Decide: which model x provider meets your limits, ranked by your objective; the pick in one sentence.

Every number comes from ``bench.results.decide`` (the engine ``orbench decide`` uses) through
``data.decision``; the sentence and the Markdown from ``bench.results.decide_render``. The filters and
the constraints are shared and in the URL (``?min_pass_rate=0.9&max_ttft_p95_ms=1500&objective=cost``);
runs from several origins can be pooled or side by side (``?by_origin=side by side``).
"""

from __future__ import annotations

import streamlit as st

from bench.results import decide
from bench.results.decide_render import decision_markdown, recommendation_sentence
from dashboard import charts, data, ui

settings, db, runs = ui.page_start("Decide")
choice = ui.filters(db, runs, key="decide")
simulated = bool(runs.filter(runs["run_id"].is_in(list(choice.run_ids)))["simulated"].any())
if simulated:
    st.caption(":material/science: The selected runs include **simulated** (sandbox) runs: the pick "
               "below is a rehearsal, not a measurement of real providers.")

st.caption("Limits are judged on 95% intervals: **meets** when the whole interval is on the right side, "
           "**fails** when it is wholly on the wrong side, **uncertain** when it straddles the limit or "
           "there are too few requests. Leave a box empty for no limit.")
mins, maxs = ui.constraint_inputs("decide", sorted(decide.GATE_METRICS))
objective = ui.shared_radio("Objective: rank what fits by", list(decide.OBJECTIVES), "objective",
                            "decide-objective", horizontal=True,
                            format_func=lambda o: f"{o} ({decide.OBJECTIVES[o]})")
skip_failed = ui.shared_radio("Providers that failed the last verify of their model (orbench verify)",
                              ["keep", "leave out"], "skip_failed", "decide-skip-failed", horizontal=True)
picked = runs.filter(runs["run_id"].is_in(list(choice.run_ids)))
by_origin = False
if "origin" in picked.columns and picked["origin"].n_unique() > 1:  # e.g. two regions on a team store
    by_origin = ui.shared_radio("Runs from several origins", ["pooled", "side by side"], "by_origin",
                                "decide-by-origin", horizontal=True) == "side by side"
with ui.store_errors():
    constraints = tuple(decide.parse_constraints(mins, maxs))
    d = data.decision(db, *choice.args, constraints, objective, skip_failed == "leave out", by_origin)

sentence = recommendation_sentence(d)
if d.recommended is not None:
    st.success(sentence, icon=":material/check_circle:")
elif d.ranking:
    st.error(sentence, icon=":material/block:")
else:
    st.info(sentence)
    st.stop()

st.subheader("Ranking")
st.dataframe(ui.verdict_styled(ui.decision_display(d)), hide_index=True, key="table-decide",
             column_config={"why": st.column_config.TextColumn("why (uncertain or failing)", width="large")})
st.caption("Meets every limit first, by the objective; then uncertain; then failing. Candidates are "
           "model × provider variant, pooled over the selected runs. *About N more requests* assumes "
           "the spread stays what it is now.")

# x: the first latency percentile you limited (so its limit line means something), else e2e p50
latency = next((c for c in constraints if c.metric.startswith(("ttft_p", "e2e_p", "tpot_p"))), None)
x_field = latency.metric if latency else "e2e_p50_ms"
cost = next((c.limit for c in constraints if c.metric == "cost_per_request_usd"), None)
st.altair_chart(charts.decide_frontier(data.frontier_points(d, x_field), x_field,
                                       latency.limit if latency else None, cost),
                width="stretch", key="chart-decide-frontier")

st.subheader("Copy as Markdown")
st.caption("For a PR or a design doc: the copy button is at the top right of the block.")
st.code(decision_markdown(d, simulated=simulated), language="markdown")
st.download_button("Download as Markdown", decision_markdown(d, simulated=simulated),
                   file_name="orbench-decision.md", mime="text/markdown", icon=":material/download:",
                   key="dl-decide-md", on_click="ignore")

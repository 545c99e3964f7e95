"""Providers: does each provider serve the model faithfully? The last verify's matrix, and its failing answers.

Every verdict comes from ``bench.results.conformance`` (the engine of ``orbench verify``) through
``data.verify_result``. The view is in the URL: ``?verify=<run_id>&vprovider=<provider>&dimension=<dim>``.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from bench.results.conformance import DIMENSIONS
from dashboard import data, ui

settings, db, runs = ui.page_start("Providers")
with ui.store_errors():
    verifies = data.verify_runs(db)
if verifies.is_empty():
    st.info("No verify yet. Check every provider of a model against a reference, for example on the sandbox: "
            "`orbench verify meta-llama/llama-3.3-70b-instruct --sandbox`.")
    st.stop()

labels = {r["run_id"]: f"{r['model']} · {r['run_id']}" + (" (simulated)" if r["simulated"] else "")
          for r in verifies.iter_rows(named=True)}
run_id = ui.shared_selectbox("Verify", list(labels), "verify", "providers-verify", format_func=labels.get)
with ui.store_errors():
    result = data.verify_result(db, run_id)
    matrix = data.verify_matrix(db, run_id)

deviating = [p.provider for p in result.providers if p.verdict == "deviates"]
if deviating:
    st.error(f"{len(deviating)} of {len(result.providers) - 1} providers deviate from the reference "
             f"**{result.reference}**: {', '.join(deviating)}.", icon=":material/gpp_bad:")
else:
    st.success(f"Every provider conforms to the reference **{result.reference}**.", icon=":material/verified:")
st.caption(f"Reference: {result.reference} — {result.reference_reason}. {result.tests} tests, each at "
           f"{100 * result.level:.2f}% (Bonferroni), so a verify of conforming providers shows a false "
           "'deviates' at most 5% of the time.")

shown = matrix.select("provider", "verdict", *[
    pl.concat_str([pl.col(d), pl.col(f"{d}_value").round(3).cast(pl.String).fill_null("")], separator=" ").alias(d)
    for d in DIMENSIONS], "served_by_other", "requests")
st.dataframe(ui.conformance_styled(shown, DIMENSIONS), hide_index=True, key="table-providers",
             column_config={"served_by_other": st.column_config.NumberColumn("served by another (left out)")})
st.caption("Each cell: the verdict and the provider's value (a rate, or a ratio to the reference for usage). "
           "deviates = worse than the reference beyond the noise; uncertain = more requests needed; "
           "n/a = not measured (a parameter the provider does not list, or the reference itself).")

st.subheader("Drill down")
others = [p.provider for p in result.providers if p.provider != result.reference]
first_bad = deviating[0] if deviating else others[0]
ordered = [first_bad, *[p for p in others if p != first_bad]]
provider = ui.shared_selectbox("Provider", ordered, "vprovider", "providers-provider")
picked = next(p for p in result.providers if p.provider == provider)
dims = sorted(DIMENSIONS, key=lambda d: {"deviates": 0, "uncertain": 1}.get(picked.dimensions[d].verdict, 2))
dimension = ui.shared_selectbox("Dimension", dims, "dimension", "providers-dimension",
                                format_func=lambda d: f"{d} ({picked.dimensions[d].verdict})")
dim = picked.dimensions[dimension]
st.markdown(f"**{provider} · {dimension}: {dim.verdict}**")
if dim.more_requests_needed:
    st.caption(f"About {dim.more_requests_needed:,} more requests would settle it.")
for part in dim.detail.split(" | "):
    st.text(part)  # plain text: details quote numbers, never markup

with ui.store_errors():
    answers = data.failing_answers(db, run_id, provider, dimension)
if answers.is_empty():
    st.info("No failing answers in this dimension.")
    st.stop()
st.markdown(f"{answers.height} failing answer(s), each beside the reference's answer to the same probe:")
for r in answers.head(50).iter_rows(named=True):
    left, right = st.columns(2)
    with left:
        st.caption(f"{provider} · {r['case_id']} · {r['outcome']}, finish {r['finish_reason']}, "
                   f"{r['completion_tokens']} completion / {r['prompt_tokens']} prompt tokens")
        st.code(r["output_text"] or r["tool_calls_json"] or "(no answer text)", language=None, wrap_lines=True)
    with right:
        st.caption(f"reference {result.reference} · prompt tokens {r['reference_prompt_tokens']}")
        st.code(r["reference_output"] or r["reference_tool_calls"] or "(no answer)", language=None,
                wrap_lines=True)

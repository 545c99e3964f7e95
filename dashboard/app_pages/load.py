"""Load: one sweep (``orbench sweep``): throughput against latency, goodput with the knee, the steps.

Every figure is ``bench.sweep.sweep_json``'s through ``data.sweep_result`` (what ``orbench
sweep --json`` prints); ``data.load_points`` only picks fields for ``charts.load_curve`` and
``charts.goodput_chart``. The sweep is shared and in the URL: ``?sweep=<sweep_id>``.
"""

from __future__ import annotations

import streamlit as st

from bench.run.sweep import summary_lines
from dashboard import charts, data, ui

settings = data.current_settings()
db = str(settings.db_path)
st.title("Load")
with ui.store_errors():
    sweeps = data.sweeps(db)
if sweeps.is_empty():
    st.info(f"`{db}`: no sweeps yet. A sweep runs one suite at rising load, one run per step, and finds "
            "where throughput stops growing while latency does (the knee). Make one with:")
    st.code(f'orbench sweep data/suites/sweep.yaml --concurrency 1,2,4,8,16 --requests-per-step 32 \\\n'
            f'    --slo "ttft_p95_ms<=800" --sandbox --db {db}', language="bash")
    st.stop()

labels = ui.sweep_labels(sweeps)
sweep_id = ui.shared_selectbox("Sweep", list(labels), "sweep", "load-sweep", format_func=labels.__getitem__)
picked = sweeps.row(sweeps["sweep_id"].to_list().index(sweep_id), named=True)
if picked["simulated"]:
    st.caption(":material/science: This sweep ran on the **simulated** sandbox: its throughput, latency "
               "and knee are a rehearsal, not a measurement of a real server.")
with ui.store_errors():
    result = data.sweep_result(db, sweep_id)
axis = result["axis"]
slos = ", ".join(f"`{s}`" for s in result["slos"]) or "none (goodput = every ok request)"
reason = f" — {result['status_reason']}" if result["status_reason"] else ""
st.caption(f"{axis} {', '.join(f'{v:g}' for v in result['levels'])} · {len(result['steps'])} step rows · "
           f"SLOs: {slos} · {result['status']}{reason} · suite `{picked['suite_path']}`")
if not result["steps"]:
    st.info("No step of this sweep has finished a request yet.")
    st.stop()
for line in summary_lines(result):
    (st.success if "not reached" not in line else st.info)(line)

left, right = st.columns(2)
throughput = left.radio("Throughput", list(data.LOAD_THROUGHPUT), format_func=data.LOAD_THROUGHPUT.__getitem__,
                        horizontal=True, key="load-throughput")
latency = right.radio("Latency", list(data.LOAD_LATENCY), format_func=data.LOAD_LATENCY.__getitem__,
                      horizontal=True, key="load-latency")
points = data.load_points(result, throughput, latency)
drawn = data.slo_lines(result, latency)
st.altair_chart(charts.load_curve(points, data.LOAD_THROUGHPUT[throughput], data.LOAD_LATENCY[latency], drawn),
                width="stretch", key="chart-load-curve")
other = [s for s in result["slos"] if s not in {text for _, text in drawn}]
if other:
    st.caption(f"SLOs on other metrics (not drawn on this latency): {', '.join(f'`{s}`' for s in other)}")
st.altair_chart(charts.goodput_chart(points, axis), width="stretch", key="chart-load-goodput")
st.caption(f"The knee is the first {axis} after which req/s grows by less than 10 % while TTFT p95 or e2e p95 "
           "grows; goodput counts the ok requests that meet every SLO, over the step's window (first send to "
           "last token). Intervals are 95 % order-statistic intervals, absent when a step has too few requests.")

st.subheader("Steps")
st.dataframe(data.step_table(result), hide_index=True, key="table-load-steps",
             column_config={c: st.column_config.NumberColumn(c, format="%.2f")
                            for c in ("req_per_s", "output_tok_per_s", "goodput_req_per_s", "ttft_p50_ms",
                                      "ttft_p95_ms", "tpot_p50_ms", "e2e_p95_ms")}
             | {c: st.column_config.NumberColumn(c, format="percent") for c in ("error_rate", "rate_limited_rate")})

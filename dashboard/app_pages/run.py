"""Run: pick a suite, models, providers, repeats, concurrency and budget; estimate; start; watch."""

from __future__ import annotations

import streamlit as st

from bench.config import parse_usd
from bench.errors import BenchError
from bench.run.spec import RunSpec
from dashboard import data, jobs, ui

settings = data.current_settings()
db = str(settings.db_path)
st.title("Run a benchmark")
st.caption(f"Same engine as `orbench run`; results go to `{db}` and appear on the Results page.")

suites = data.list_suites()
source = st.radio("Suite", ["bundled", "upload"], horizontal=True, key="run-source",
                  format_func={"bundled": "bundled examples", "upload": "upload a YAML file"}.__getitem__)
path = None
if source == "bundled":
    if suites:
        names = {p.name: p for p in suites}
        default = list(names).index("smoke.yaml") if "smoke.yaml" in names else 0
        path = names[st.selectbox("Suite file", list(names), index=default, key="run-suite")]
    else:
        st.info("No bundled example suites found; upload one.")
else:
    upload = st.file_uploader("Suite YAML", type=["yaml", "yml"], key="run-upload")
    if upload is not None:
        with ui.store_errors():  # a symlink in the way is a message, not a traceback
            path = data.save_upload(upload.name, upload.getvalue())
if path is None:
    st.stop()

with ui.store_errors():
    suite = data.load_suite(path)
st.caption(suite.description or "")
variants = list(suite.providers) or ["default"]
c1, c2 = st.columns(2)
models = c1.multiselect("Models", [m.id for m in suite.models], default=[m.id for m in suite.models],
                        key="run-models")
providers = c2.multiselect("Provider variants", variants, default=variants, key="run-providers",
                           placeholder="all variants of the suite")
extra = c2.text_input("Extra provider object (JSON, optional)", key="run-provider-json",
                      placeholder='{"only": ["groq"], "allow_fallbacks": false}')
c3, c4, c5 = st.columns(3)
repeats = c3.number_input("Repeats per case", min_value=1, max_value=1000, value=suite.repeats,
                          key="run-repeats")
concurrency = c4.number_input("Concurrency (requests in flight)", min_value=1, max_value=256, value=4,
                              key="run-concurrency")
budget_text = c5.text_input("Budget, USD (empty = none)", key="run-budget")
c6, c7 = st.columns([3, 1])
name = c6.text_input("Run name (optional)", key="run-name")
allow_partial = c7.checkbox("Run what fits the budget", key="run-allow-partial",
                            help="Start even if the worst case exceeds the budget; requests that "
                                 "would cross it are skipped.")
if settings.api_key and not settings.sandbox and c7.checkbox("Simulate (sandbox)", key="run-simulate"):
    settings = data.sandbox_settings(settings.db_path)
st.caption("Requests go to the **simulated** sandbox." if settings.sandbox else
           f"Requests go to `{settings.base_url}` and cost real money.")

with ui.store_errors():
    chosen = (list(providers) if suite.providers else []) + ([extra.strip()] if extra.strip() else [])
    spec = RunSpec(suite_path=path, models=list(models), providers=chosen, repeats=int(repeats),
                   concurrency=int(concurrency), budget_usd=parse_usd(budget_text, "budget"),
                   allow_partial=allow_partial, name=name or None)

registry = jobs.registry()  # one per server: every tab and every reload sees the same jobs
busy = bool(registry.active())
b1, b2, _ = st.columns([1, 1, 4])
if b1.button("Estimate", icon=":material/calculate:", key="run-estimate", disabled=not models):
    try:
        with st.spinner("Fetching the catalog and pricing the plan..."):
            prep = jobs.estimate(settings, spec)
        st.session_state["run_estimate"] = jobs.describe_plan(prep)
        st.session_state["last_estimate_usd"] = prep.estimate_usd
    except BenchError as exc:
        st.error(str(exc))
if b2.button("Start run", type="primary", icon=":material/play_arrow:", key="run-start",
             disabled=busy or not models,
             help="One dashboard run at a time; cancel the one in progress to start another."
             if busy else None):
    registry.start(settings, spec, env=data.key_env())
    busy = True

est = st.session_state.get("run_estimate")
if est:
    cost = ("unknown (no price for " + ", ".join(est["unpriced"]) + ")" if est["usd"] is None
            else ui.money(est["usd"], 6))
    st.info(f"**Plan:** {est['requests']} requests (+{est['warmups']} warm-up) over {len(est['targets'])} "
            f"targets. **Worst case** (prompt estimate + max_tokens at list price): {cost}.")
    st.text("\n".join(est["targets"]))
    if est["over_key_limit"]:
        st.warning(f"The worst case is more than the ${est['key_remaining_usd']:,.4f} left on the key; "
                   "the run would be refused.")



SHOWN_JOBS = 3  # the newest dashboard runs shown; older ones are on the Results page


def job_progress(job: jobs.RunJob) -> None:
    s = job.snapshot()
    st.markdown(f"**{ui.md_escape(job.label)}** · `{s.run_id or 'preparing'}`")  # a name is data: escaped
    st.progress(s.done / s.total if s.total else 0.0,
                text=f"{s.phase}: {s.done}/{s.total} done in {s.elapsed_s:.1f} s")
    c = st.columns(5)
    c[0].metric("Done", s.done)
    c[1].metric("In flight", s.in_flight)
    c[2].metric("Errors", s.errors)
    c[3].metric("Rate-limited", s.rate_limited)
    c[4].metric("Spent", ui.money(s.spent_usd, 6))
    if s.active:
        if s.cancel_requested:
            st.caption("Cancelling: what is in flight is being stopped.")
        elif st.button("Cancel the run", icon=":material/stop:", key=f"run-cancel-{job.key}"):
            job.cancel()
        return
    seen = f"run-seen-end-{job.key}"
    if not st.session_state.get(seen):
        st.session_state[seen] = True
        data.clear_caches()  # the new rows should show on Results right away
    if s.phase == "finished":
        st.success(f"Run `{s.run_id}` finished.")
        st.page_link("app_pages/results.py", label="See it on the Results page", icon=":material/monitoring:")
    else:
        st.error(f"Run {s.run_id or ''} ended {s.phase}: {s.message or 'no reason given'}")


@st.fragment(run_every=1.0)
def progress() -> None:
    shown = registry.jobs()[:SHOWN_JOBS]
    if not shown:
        return
    st.subheader("Progress")
    st.caption("Runs started from this dashboard, in any tab; a reload keeps them.")
    for job in shown:
        with st.container(border=True):
            job_progress(job)


def cli_run(run: dict) -> None:
    age = run["heartbeat_age_s"]
    beat = "never" if age is None else f"{age:,.0f} s ago"
    who = f"pid {run['heartbeat_pid']} on {run['heartbeat_host']}" if run["heartbeat_pid"] else "unknown process"
    # a name may come from another machine (a team store): escaped, never read as Markdown
    st.markdown(f"**{ui.md_escape(run['name'] or run['suite_name'] or 'run')}** · `{run['run_id']}`")
    planned = run["planned"] or 0
    st.progress(min(run["done"] / planned, 1.0) if planned else 0.0,
                text=f"running: {run['done']}/{planned or '?'} done")
    st.caption(f"Last heartbeat {beat} from {who}.")
    if not run["alive"]:
        st.warning("Not responding (crashed?): its process stopped beating without ending the run. "
                   "Continue it with:", icon=":material/heart_broken:")
        st.code(jobs.resume_command(run, db), language="bash")


@st.fragment(run_every=3.0)
def cli_runs() -> None:
    try:
        rows = [r for r in data.running_runs(db) if r["run_id"] not in registry.run_ids()]
    except BenchError as exc:
        st.caption(f"Could not read the runs in progress: {exc}")
        return
    st.subheader("Running elsewhere")
    if not rows:
        st.caption(f"No run started from the CLI is in progress on `{db}`.")
        return
    st.caption("Runs of this database in progress in another process (`orbench run`, or another "
               "dashboard server), read from the database; a live one stamps a heartbeat every 5 s.")
    for run in rows:
        with st.container(border=True):
            cli_run(run)


progress()
cli_runs()

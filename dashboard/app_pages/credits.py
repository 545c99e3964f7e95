"""Credits: the key's usage and limit, account credits when allowed, spend per run and model."""

from __future__ import annotations

import streamlit as st

from bench.errors import BenchError
from bench.results import analytics
from dashboard import charts, data, ui

settings = data.current_settings()
db = str(settings.db_path)
st.title("Credits")

key = None
if not settings.api_key and not settings.sandbox:
    st.info("Set OPENROUTER_API_KEY (environment or `.streamlit/secrets.toml`) to see the key's usage.")
else:
    try:
        key = data.key_info(settings.base_url)
    except BenchError as exc:
        st.error(f"Could not read the key's usage: {exc}")
simulated = None
if key is not None and settings.sandbox:
    # The sandbox forgets its spend when its process ends; the database does not.
    with ui.store_errors():
        simulated = data.simulated_spend(db)
    key = data.simulated_key(key, simulated)
if key is not None:
    c = st.columns(4)
    c[0].metric("Key usage (simulated)" if simulated else "Key usage (all time)", ui.money(key.usage, 4))
    c[1].metric("Key limit", ui.money(key.limit, 2) if key.limit is not None else "no limit")
    c[2].metric("Remaining under the limit", ui.money(key.limit_remaining, 4)
                if key.limit_remaining is not None else "—")
    c[3].metric("Usage this month", ui.money(key.usage_monthly, 4))
    if key.limit_reset:
        st.caption(f"The limit resets {key.limit_reset}.")
    if simulated is not None:
        extra = (f" (requests {ui.money(simulated['requests_usd'], 6)}, replaced sends and judge calls "
                 f"{ui.money(simulated['other_usd'], 6)})" if simulated["other_usd"] else "")
        st.caption(f"Simulated: the sandbox key's usage is the simulated spend this database recorded, "
                   f"{ui.money(simulated['usd'], 6)} over {simulated['runs']} simulated runs{extra}, "
                   "whichever process ran them. The limit is the sandbox's.")

credits, why = (None, None)
if key is not None:
    try:
        credits, why = data.account_credits(settings.base_url)
    except BenchError as exc:
        why = f"Could not read account credits: {exc}"
if credits is not None:
    acct = st.columns(3)
    acct[0].metric("Account credits", ui.money(credits.total_credits, 2))
    acct[1].metric("Account usage", ui.money(credits.total_usage, 4))
    acct[2].metric("Balance", ui.money(credits.balance, 4))
elif why:
    st.info(why)

st.subheader("Is there enough left for a planned run?")
last = st.session_state.get("last_estimate_usd")
planned = st.number_input("Worst-case cost of the planned run (USD)", min_value=0.0,
                          value=float(last) if last is not None else 0.0, step=0.01, format="%.4f",
                          key="credits-planned", help="The Run page's estimate fills this in.")
left = analytics.headroom_usd(key.limit_remaining if key else None, credits.balance if credits else None)
if left is None:
    st.caption("No limit or balance is known, so nothing to check against.")
elif planned > float(left):
    st.warning(f"The planned run could cost up to ${planned:,.4f}, more than the ${float(left):,.4f} left. "
               "Lower repeats or max_tokens, or set a budget on the Run page.", icon=":material/warning:")
else:
    st.success(f"${float(left):,.4f} left covers the planned worst case of ${planned:,.4f}.")

st.subheader("Spend recorded in the database")
with ui.store_errors():
    per_run = data.spend(db, "run")
    per_model = data.spend(db, "model")
if per_run.is_empty():
    st.info("No requests stored yet.")
else:
    st.altair_chart(charts.spend_chart(per_run.head(30), "run_id", "Spend per run (30 newest)"),
                    width="stretch", key="chart-spend-run")
    st.altair_chart(charts.spend_chart(per_model, "model", "Spend per model"), width="stretch",
                    key="chart-spend-model")
    money = {c: st.column_config.NumberColumn(format="$%.6f") for c in ("billed_usd", "list_usd")}
    st.dataframe(per_run.with_columns(per_run["billed_usd"].cast(float), per_run["list_usd"].cast(float)),
                 hide_index=True, column_config=money, key="table-spend-run")
    st.caption("Warm-up requests are included: they are billed too. Simulated runs spend simulated money.")

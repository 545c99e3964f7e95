"""Catalog: the live model list with filters, a model's providers, price history, a cost calculator."""

from __future__ import annotations

from decimal import Decimal

import streamlit as st

from bench.api.catalog import ModelEndpoints, filter_models
from bench.errors import BenchError
from dashboard import catalog_view, charts, data, ui

settings = data.current_settings()
db = str(settings.db_path)
st.title("Catalog")

try:
    models = data.catalog(settings.base_url)
except BenchError as exc:
    st.error(f"Could not load the model list from {settings.base_url}: {exc}")
    st.stop()
st.caption(f"{len(models)} models from `{settings.base_url}` (public list; refreshed every 5 minutes). "
           "Prices in USD per 1M tokens.")

authors = sorted({m.id.split("/", 1)[0] for m in models})
modalities = sorted({x for m in models for x in (m.input_modalities or []) + (m.output_modalities or [])})
params = sorted({x for m in models for x in m.supported_parameters or []})
c1, c2, c3 = st.columns(3)
text = c1.text_input("Search id or name", key="cat-search")
picked_authors = c1.multiselect("Provider (model author)", authors, key="cat-authors", placeholder="all")
picked_modalities = c2.multiselect("Modalities, input or output (all of)", modalities, key="cat-modalities",
                                   placeholder="any")
min_context = c2.number_input("Min context length (tokens)", min_value=0, value=0, step=8192,
                              key="cat-context")
max_price = c3.number_input("Max prompt price (USD / 1M tokens, 0 = no limit)", min_value=0.0, value=0.0,
                            step=0.5, key="cat-price")
picked_params = c3.multiselect("Supported parameters (all of)", params, key="cat-params",
                               placeholder="e.g. tools, response_format")
shown = filter_models(models, text=text, modalities=picked_modalities, min_context=int(min_context) or None,
                      max_prompt_usd_per_m=Decimal(str(max_price)) if max_price else None,
                      authors=picked_authors, params=picked_params)
st.dataframe(
    catalog_view.catalog_frame(shown), hide_index=True, key="table-catalog",
    column_config={
        "prompt_usd_per_m": st.column_config.NumberColumn("prompt $/1M", format="$%.4f"),
        "completion_usd_per_m": st.column_config.NumberColumn("completion $/1M", format="$%.4f"),
        "request_usd": st.column_config.NumberColumn("per request $", format="$%.4f"),
        "context_length": st.column_config.NumberColumn("context", format="%d"),
    },
)
st.caption(f"{len(shown)} of {len(models)} models match. An empty price means a variable (router) price.")

st.subheader("A model's providers")
ids = [m.id for m in shown] or [m.id for m in models]
model_id = st.selectbox("Model", ids, key="cat-model")
eps: ModelEndpoints | None
try:
    eps = data.endpoints(settings.base_url, model_id)
except BenchError as exc:
    eps = None
    st.warning(f"Could not load the endpoints of {model_id}: {exc}")
if eps is not None:
    st.dataframe(
        catalog_view.endpoints_frame(eps), hide_index=True, key="table-endpoints",
        column_config={
            "prompt_usd_per_m": st.column_config.NumberColumn("prompt $/1M", format="$%.4f"),
            "completion_usd_per_m": st.column_config.NumberColumn("completion $/1M", format="$%.4f"),
            "latency_p50_ms": st.column_config.NumberColumn("TTFT p50 ms (30 min)", format="%.0f"),
            "throughput_p50_tps": st.column_config.NumberColumn("tokens/s p50 (30 min)", format="%.0f"),
        },
    )
    if all(e.latency_last_30m is None for e in eps.endpoints):
        st.caption("Latency and throughput statistics need an API key; OpenRouter sends none without one.")

with ui.store_errors():
    history = data.price_history(db, model_id)
st.altair_chart(charts.price_history_chart(history, model_id), width="stretch", key="chart-price-history")

st.subheader("Cost calculator")
k1, k2, k3 = st.columns(3)
tokens_in = k1.number_input("Prompt tokens per request", min_value=0, value=1000, step=100, key="calc-in")
tokens_out = k2.number_input("Completion tokens per request", min_value=0, value=300, step=50, key="calc-out")
per_day = k3.number_input("Requests per day", min_value=0, value=10_000, step=1000, key="calc-per-day")
calc_models = st.multiselect("Models", [m.id for m in models], default=ids[:3], key="calc-models")
by_id = {m.id: m for m in models}
costs = catalog_view.monthly_costs([by_id[i] for i in calc_models], int(tokens_in), int(tokens_out),
                                   int(per_day))
st.altair_chart(charts.monthly_cost_chart(costs), width="stretch", key="chart-monthly")
st.dataframe(costs, hide_index=True, key="table-monthly",
             column_config={"usd_per_request": st.column_config.NumberColumn("USD / request", format="$%.6f"),
                            "monthly_usd": st.column_config.NumberColumn("USD / month", format="$%.2f")})
st.caption("List prices × tokens × requests per day × 30 days; no caching discounts, no provider "
           "price differences, no reasoning tokens beyond the completion count you enter.")

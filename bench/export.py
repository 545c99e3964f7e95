"""Exports with polars writers: per-request rows or the summary as CSV, Parquet, JSON, Markdown.

Exported rows never contain a key (none is stored). Money columns are exported as
decimal strings in CSV/JSON/Markdown so no float rounding creeps in, and as
Decimal in Parquet.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import polars as pl

from bench.report import current_rows

REQUIRED_COLUMNS = [
    "run_id", "model", "served_model", "provider", "provider_variant", "case_id", "repeat",
    "outcome", "http_status", "attempts", "ttft_ms", "ttfa_ms", "tpot_ms", "e2e_ms", "decode_tps",
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "token_source",
    "cost_usd", "list_cost_usd", "cost_source", "generation_id", "finish_reason", "error",
]
EXTRA_COLUMNS = [
    "request_idx", "endpoint", "is_warmup", "session", "retries_429", "started_at", "ttfb_ms", "e2e_tps",
    "cache_write_tokens", "native_finish_reason", "error_code", "server_latency_ms",
    "server_generation_ms", "passed", "score", "check_detail", "output_text",
]


def request_frame(frame: pl.DataFrame, include_warmup: bool = False) -> pl.DataFrame:
    rows = current_rows(frame, include_warmup=include_warmup)
    cols = [c for c in REQUIRED_COLUMNS + EXTRA_COLUMNS if c in rows.columns]
    return rows.select(cols)


def summary_frame(summary: list[dict[str, Any]]) -> pl.DataFrame:
    clean = [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in summary]
    return pl.DataFrame(clean, infer_schema_length=None)


def _decimals_to_str(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Decimal):
            exprs.append(pl.col(name).cast(pl.String))
        elif isinstance(dtype, pl.List):
            exprs.append(pl.col(name).map_elements(
                lambda v: json.dumps(list(v)) if v is not None else None, return_dtype=pl.String))
    return frame.with_columns(exprs) if exprs else frame


def render(frame: pl.DataFrame, fmt: str) -> str | bytes:
    if fmt == "parquet":
        buf = io.BytesIO()
        frame.write_parquet(buf)
        return buf.getvalue()
    flat = _decimals_to_str(frame)
    if fmt == "csv":
        return flat.write_csv()
    if fmt == "json":
        return json.dumps(flat.to_dicts(), indent=2, default=str) + "\n"
    if fmt == "md":
        return markdown(flat)
    raise ValueError(fmt)


def markdown(frame: pl.DataFrame) -> str:
    cols = frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.iter_rows():
        cells = ["" if v is None else str(v).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

"""Exports with polars writers: per-request rows or the summary as CSV, Parquet, JSON, Markdown.

Exported rows never contain a key (none is stored). Money columns are exported as
decimal strings in CSV/JSON/Markdown so no float rounding creeps in, and as
Decimal in Parquet. Per-request exports carry every stored column
(``EXPORT_COLUMNS`` covers ``RequestRow``: chunk gaps, ``t_start_ms``, ``done_ms``,
connection timing, money and judge costs). A file on its own must say what it is,
so the run's metadata travels with it (``run_metadata``): as Parquet key-value
metadata, as a ``FILE.meta.json`` sidecar, and optionally as ``#`` lines above a CSV.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from bench import __version__
from bench.records import REQUEST_COLUMNS
from bench.results.report import current_rows

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
    # the timeline, the raw stream and the connection: measured, so exported
    "t_start_ms", "done_ms", "chunk_gaps_ms", "connect_ms", "conn_reused",
    "max_cost_usd", "spend_usd", "judge_calls", "judge_prompt_tokens", "judge_completion_tokens",
    "judge_cost_usd", "tool_calls_json", "rev",
]
EXPORT_COLUMNS = REQUIRED_COLUMNS + EXTRA_COLUMNS + [
    c for c in REQUEST_COLUMNS if c not in REQUIRED_COLUMNS + EXTRA_COLUMNS]
"""Per-request export order: the columns most people want first, then every other stored one."""

META_KEY = "orbench.run"
"""Parquet key-value metadata key holding the metadata JSON."""
_RUN_FIELDS = ("run_id", "name", "suite_name", "suite_path", "suite_hash", "tool_version", "status",
               "status_reason", "simulated", "planned", "created_at", "started_at", "finished_at",
               "catalog_snapshot_id", "settings")


def request_frame(frame: pl.DataFrame, include_warmup: bool = False) -> pl.DataFrame:
    rows = current_rows(frame, include_warmup=include_warmup)
    cols = [c for c in EXPORT_COLUMNS if c in rows.columns]
    return rows.select(cols)


def summary_frame(summary: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    clean = [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in summary]
    return pl.DataFrame(clean, infer_schema_length=None)


def run_metadata(run: Any, *, kind: str, fmt: str, rows: int, include_warmup: bool = False) -> dict[str, Any]:
    """What a reader of the file needs to know: the run's provenance and what was exported.

    ``run`` is a ``store.RunRecord`` (duck-typed). Times are ISO-8601 UTC; ``settings`` as
    stored (never a key). ``tool_version`` is the orbench that measured the run,
    ``exported_by`` the one that wrote the file.
    """
    meta: dict[str, Any] = {}
    for name in _RUN_FIELDS:
        value = getattr(run, name, None)
        meta[name] = value.isoformat() if isinstance(value, datetime) else value
    meta.update({
        "export": kind, "format": fmt, "rows": rows, "include_warmup": include_warmup,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "exported_by": f"orbench {__version__}",
        "schema": "docs/schema.md (table requests)" if kind == "requests" else "orbench show --json",
    })
    return meta


def _decimals_to_str(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Decimal):
            exprs.append(pl.col(name).cast(pl.String))
        elif isinstance(dtype, pl.List):
            exprs.append(pl.col(name).map_elements(
                lambda v: json.dumps(list(v)) if v is not None else None, return_dtype=pl.String))
    return frame.with_columns(exprs) if exprs else frame


def render(frame: pl.DataFrame, fmt: str, meta: dict[str, Any] | None = None,
           csv_header: bool = False) -> str | bytes:
    """The file's bytes. ``meta`` goes into Parquet's key-value metadata, and with
    ``csv_header`` into ``# key: value`` lines above the CSV header."""
    if fmt == "parquet":
        buf = io.BytesIO()
        frame.write_parquet(buf, metadata=None if meta is None else {META_KEY: _json(meta)})
        return buf.getvalue()
    flat = _decimals_to_str(frame)
    if fmt == "csv":
        head = csv_header_lines(meta) if csv_header and meta is not None else ""
        return head + flat.write_csv()
    if fmt == "json":
        return json.dumps(flat.to_dicts(), indent=2, default=str) + "\n"
    if fmt == "md":
        return markdown(flat)
    raise ValueError(fmt)


def csv_header_lines(meta: dict[str, Any]) -> str:
    """One ``# key: value`` line per field (values as JSON, on one line); readers skip them
    with ``comment_prefix='#'`` (polars) or ``comment='#'`` (pandas, DuckDB)."""
    return "".join(f"# {k}: {_json(v)}\n" for k, v in meta.items())


def sidecar_path(output: Path | str) -> Path:
    """``rows.csv`` -> ``rows.csv.meta.json``."""
    return Path(f"{output}.meta.json")


def write_sidecar(output: Path | str, meta: dict[str, Any]) -> Path:
    path = sidecar_path(output)
    path.write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def read_parquet_metadata(path: Path | str) -> dict[str, Any] | None:
    """The orbench metadata of a Parquet export, or None when it has none."""
    found = pl.read_parquet_metadata(path).get(META_KEY)
    return None if found is None else json.loads(found)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True, separators=(",", ":"))


def markdown(frame: pl.DataFrame) -> str:
    cols = frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.iter_rows():
        cells = ["" if v is None else str(v).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

"""OpenRouter's error envelope (API.md section 6) read into one-line messages and retry hints.

``{"error": {"code", "message", "metadata": {provider_name, raw, ...}}}`` plus the
availability block and the ``Retry-After`` header; messages are clipped so a provider's
raw body cannot flood a log line.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

_MAX_MESSAGE = 600


# ---------------------------------------------------------------- helpers
def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date relative to ``now``."""
    if not value:
        return None
    value = value.strip()
    try:
        return non_negative(float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def status_message(status: int, error: Any, availability: dict[str, Any] | None, text: str) -> str:
    if not isinstance(error, dict):
        snippet = " ".join(text.split())[:200]
        return f"HTTP {status}" + (f": {snippet}" if snippet else "")
    message = error.get("message") or error.get("error_type") or "error"
    out = f"HTTP {status}: {message}" + metadata_hint(error.get("metadata"))
    if availability is not None and availability.get("code"):
        out += f" [availability: {availability['code']}]"
    return clip_text(out)


def metadata_hint(metadata: Any) -> str:
    if not isinstance(metadata, dict):
        return ""
    hints = [f"{k} {metadata[k]}" for k in ("provider_name", "error_type", "provider_code") if metadata.get(k)]
    out = f" [{', '.join(hints)}]" if hints else ""
    raw = metadata.get("raw")
    if raw:
        out += f": {raw if isinstance(raw, str) else json.dumps(raw)}"
    return out


def error_availability(error: Any) -> dict[str, Any] | None:
    if not isinstance(error, dict):
        return None
    avail = error.get("availability") or (error.get("metadata") or {}).get("availability")
    return avail if isinstance(avail, dict) else None


def numeric_status(code: object) -> int | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code)
    return None


def clip_text(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def non_negative(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return max(0.0, float(value))

"""Fault injection for the sandbox: which failure a request gets, and how the real API words it.

A fault is ``NAME[;k=v...]``, chosen (first match wins) by the request header
``X-Sandbox-Fault``, by the ``faults`` map given to ``start_sandbox`` (model id or
``"*"``), or by a fault model id ``sandbox/fault-NAME``.

Status faults answer with an HTTP error before any output (API.md 6.1 envelope):
``429`` (``Retry-After``, param ``retry_after``, default 1), ``402``, ``401``, ``500``,
``502``, ``503`` (``Retry-After`` only when ``retry_after`` is given). Stream faults
act on a response that started well: ``stream_error`` (error chunk after ``after``
tokens, then ``[DONE]``; params ``code``, ``message``), ``reset`` (TCP reset after
``after`` tokens), ``stall`` (silence of ``seconds`` after ``after`` tokens, then the
rest), ``slow_headers`` (``seconds`` before the status line). ``seconds`` are wall
seconds, not scaled by ``time_scale``. Every fault takes ``times=N`` (only the first N
requests with the same fingerprint fail; later ones succeed) and ``provider=TAG[,TAG]``
(only attempts on those providers fail, so routing may fall back to others).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from bench.sandbox.catalog import Model

STATUS_FAULTS = ("429", "402", "401", "500", "502", "503")
STREAM_FAULTS = ("stream_error", "reset", "stall", "slow_headers")
FAULT_NAMES = STATUS_FAULTS + STREAM_FAULTS
DEFAULT_AFTER_TOKENS = 3
DEFAULT_STALL_S = 30.0
DEFAULT_SLOW_HEADERS_S = 5.0
USER_ID = "user_sandbox_simulated"

# status -> (message, error_type) as the real API words them (API.md 6.1-6.2)
STATUS_ERRORS = {
    400: ("Bad Request", "invalid_request"),
    401: ("User not found.", "authentication"),
    402: ("Insufficient credits. This simulated account has no credits left.", "payment_required"),
    403: ("Forbidden", "permission_denied"),
    404: ("Not Found", "not_found"),
    429: ("Provider returned error", "rate_limit_exceeded"),
    500: ("Internal Server Error", "server"),
    502: ("Provider returned error", "provider_unavailable"),
    503: ("No available providers could serve this request", "provider_overloaded"),
}


@dataclass(frozen=True)
class Fault:
    """One parsed fault spec."""

    name: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def is_status(self) -> bool:
        return self.name in STATUS_FAULTS

    @property
    def times(self) -> int | None:
        value = self.params.get("times")
        return int(value) if value is not None else None

    def number(self, key: str, default: float) -> float:
        value = self.params.get(key)
        return float(value) if value is not None else default

    def applies_to(self, provider_tag: str) -> bool:
        wanted = [p.strip().lower() for p in self.params.get("provider", "").split(",") if p.strip()]
        tag = provider_tag.lower()
        return not wanted or tag in wanted or tag.split("/")[0] in wanted

    def spec(self) -> str:
        return ";".join([self.name, *(f"{k}={v}" for k, v in self.params.items())])


def parse_fault(spec: str | Fault) -> Fault:
    """``"429;times=2;retry_after=1"`` -> Fault; ValueError on an unknown name."""
    if isinstance(spec, Fault):
        return spec
    name, *pairs = [p.strip() for p in spec.split(";") if p.strip()]
    if name not in FAULT_NAMES:
        raise ValueError(f"unknown sandbox fault {name!r}; known: {', '.join(FAULT_NAMES)}")
    params = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        params[key.strip().lower()] = value.strip()
    return Fault(name, params)


def pick_fault(header: Fault | None, faults: Mapping[str, Fault], model: Model) -> Fault | None:
    """The fault for a request to ``model``: header, then the start-up map, then the model id."""
    if header is not None:
        return header
    chosen = faults.get(model.id) or faults.get("*")
    if chosen is not None:
        return chosen
    return Fault(model.fault) if model.fault else None


def error_payload(status: int, message: str | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The API.md 6.1 error envelope."""
    error: dict[str, Any] = {"code": status, "message": message or STATUS_ERRORS.get(status, ("Error", ""))[0]}
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error, "user_id": USER_ID}


def status_fault_error(fault: Fault, provider_name: str) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """(status, body, headers) for a status fault served as if ``provider_name`` failed."""
    status = int(fault.name)
    message, error_type = STATUS_ERRORS[status]
    if status == 401:
        return status, error_payload(status, message), []
    metadata = {"error_type": error_type, "provider_name": provider_name,
                "raw": f"simulated upstream {status} (orbench sandbox fault)"}
    headers = []
    if status == 429 or "retry_after" in fault.params:
        headers.append(("Retry-After", fault.params.get("retry_after", "1")))
    return status, error_payload(status, message, metadata), headers


def stream_error_object(fault: Fault, provider_name: str) -> dict[str, Any]:
    """The ``error`` of a mid-stream error chunk (API.md 5.6)."""
    code = int(fault.params.get("code", 502))
    message = fault.params.get("message", "Provider disconnected")
    return {"code": code, "message": message,
            "metadata": {"error_type": "provider_unavailable", "provider_name": provider_name}}

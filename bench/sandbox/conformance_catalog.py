"""The five simulated providers of ``SIM_MODEL`` that ``orbench verify``'s demo checks (see conformance.py).

Apart from conformance.py because the catalog loader adds them (``extend_catalog``) and
conformance.py imports the simulated model, which imports the catalog. They serve only
requests that name them (``provider.only`` or ``order``, routing.py): a request routed the
default way never lands on a misbehaving provider, so every other use of the model is unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

SIM_MODEL = "meta-llama/llama-3.3-70b-instruct"

MISBEHAVIOUR = {
    "sim-faithful": None,
    "sim-quantized": "quantized",
    "sim-toolbreak": "tool_arguments",
    "sim-tokenpad": "prompt_tokens",
    "sim-ignoremax": "max_tokens",
}
_NAMES = {"sim-faithful": "Faithful", "sim-quantized": "Quantized", "sim-toolbreak": "ToolBreak",
          "sim-tokenpad": "TokenPad", "sim-ignoremax": "IgnoreMax"}
def extend_catalog(raw: dict[str, Any]) -> dict[str, Any]:
    """The catalog with the five simulated providers added to SIM_MODEL (``raw`` is not changed)."""
    out = copy.deepcopy(raw)
    model = next((m for m in out.get("models", []) if m.get("id") == SIM_MODEL), None)
    if model is None:
        return out
    for i, tag in enumerate(MISBEHAVIOUR):
        out["providers"].setdefault(tag, {
            "name": f"{_NAMES[tag]} (simulated)",
            "quantization": "int4" if tag == "sim-quantized" else "bf16",
            "two_token_event_every": 0, "processing_comments": 0, "usage_chunk": "echo",
            "role_chunk_lead_ms": 0, "uptime": {"last_5m": 100, "last_30m": 99.9, "last_1d": 99.8},
        })
        if not any(e.get("tag") == tag for e in model["endpoints"]):
            model["endpoints"].append({
                "tag": tag, "pricing": {"prompt": "0.00000012", "completion": "0.0000003"},
                "ttft_ms": 300 + 20 * i, "prefill_ms_per_token": 0.05, "decode_tps": 120, "jitter_ms": 30,
            })
    return out

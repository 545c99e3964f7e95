"""The orbench sandbox: a simulated, OpenRouter-compatible server for demos and tests.

It serves the real API's shapes (``/models``, ``/models/{id}/endpoints``, ``/key``,
``/auth/key``, ``/credits``, ``/generation``, ``/chat/completions`` with SSE) on
127.0.0.1 with no key and no network, from the project's own catalog
(bench/sandbox/catalog.json, shipped as package data). Everything it serves is marked simulated: provider names
contain "(simulated)" and every response carries ``X-Orbench-Simulated: true``.
Behaviour is seeded (same seed + same request -> same answer), timed on absolute
deadlines, and can inject faults (faults.py). It is an independent server-side
implementation and imports nothing from bench.api.client.

    with start_sandbox(seed=1, time_scale=0.1) as sb:
        httpx.get(sb.base_url + "/models")
"""

from bench.sandbox.faults import FAULT_NAMES, Fault, parse_fault
from bench.sandbox.scenario import Change, Scenario, load_scenario
from bench.sandbox.server import SandboxHandle, serve_forever, start_sandbox

__all__ = ["FAULT_NAMES", "Change", "Fault", "SandboxHandle", "Scenario", "load_scenario", "parse_fault",
           "serve_forever", "start_sandbox"]

"""The sandbox server: an OpenRouter-compatible HTTP/1.1 server on 127.0.0.1, run in a thread.

Owns the connection loop, the URL routes under ``/api/v1`` and the account endpoints
(``/key``, ``/auth/key``, ``/credits``, ``/generation``); chat completions are
delegated to ``ChatService``. ``start_sandbox`` runs one server on its own event loop
in a daemon thread and returns once it is listening; ``serve_forever`` does the same
and blocks (for ``orbench sandbox``). Auth is keyless, except that any key containing
"rejected" gets 401 on every authenticated endpoint and ``/credits`` needs a
management key (``sk-or-mgmt-...``).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping

from bench.sandbox.catalog import Catalog, endpoints_payload, list_models, load_catalog
from bench.sandbox.chat import ChatService, SandboxConfig
from bench.sandbox.faults import Fault, error_payload, parse_fault
from bench.sandbox.httpwire import MAX_HEAD_BYTES, BadRequestLine, Request, json_response, read_request
from bench.sandbox.state import SandboxState

HOST = "127.0.0.1"
API_PREFIXES = ("/api/v1", "/v1")
MANAGEMENT_KEY_PREFIX = "sk-or-mgmt-"
START_TIMEOUT_S = 10.0
CATALOG_CACHE_HEADERS = [("Cache-Control", "s-maxage=300, stale-while-revalidate=600")]
_FROM_CATALOG: Any = object()

Log = Callable[[str], None]


class SandboxApp:
    """Routes requests of one server to the catalog, the account views and the chat service."""

    def __init__(self, catalog: Catalog, state: SandboxState, config: SandboxConfig, log: Log | None = None) -> None:
        self.catalog = catalog
        self.state = state
        self.chat = ChatService(catalog, state, config)
        self._log = log
        self._writers: set[asyncio.StreamWriter] = set()

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests on one keep-alive connection until either side closes it."""
        self._writers.add(writer)
        loop = asyncio.get_running_loop()
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    break
                req.received_loop_time, req.received_perf_ns = loop.time(), time.perf_counter_ns()
                keep_alive = await self.dispatch(req, reader, writer)
                self._log_request(req)
                await writer.drain()
                if not keep_alive:
                    break
        except (BadRequestLine, ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    async def dispatch(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        path = _api_path(req.path)
        if req.method == "POST" and path == "/chat/completions":
            denied = _auth_error(req)
            if denied is None:
                return await self.chat.handle(req, reader, writer)
            status, payload = denied
        elif req.method == "GET" and path is not None:
            status, payload = self._get(path, req)
        elif path is None:
            status, payload = 404, error_payload(404, "Not Found")
        else:
            status, payload = 405, error_payload(405, "Method Not Allowed")
        req.extra["status"] = status
        headers = CATALOG_CACHE_HEADERS if path and path.startswith("/models") and status == 200 else []
        writer.write(json_response(status, payload, headers, req.keep_alive))
        return req.keep_alive

    def _get(self, path: str, req: Request) -> tuple[int, dict[str, Any]]:
        scenario = self.chat.config.scenario
        if path == "/models":
            catalog = self.catalog if scenario is None else scenario.catalog(self.catalog)
            return 200, list_models(catalog, req.query, "/api/v1")
        if path == "/models/count":
            return 200, {"data": {"count": list_models(self.catalog, req.query, "/api/v1")["total_count"]}}
        if path.startswith("/models/") and path.endswith("/endpoints"):
            model = self.catalog.get(path[len("/models/"):-len("/endpoints")])
            if model is not None and self.chat.config.scenario is not None:
                model = self.chat.config.scenario.model(model)
            return (200, endpoints_payload(model)) if model else (404, error_payload(404, "Model not found"))
        denied = _auth_error(req)
        if denied is not None:
            return denied
        if path == "/key":
            return 200, {"data": key_info(_bearer(req), self.state, self.catalog)}
        if path == "/auth/key":
            return 200, {"data": legacy_key_info(_bearer(req), self.state)}
        if path == "/credits":
            return self._credits(req)
        if path == "/generation":
            return self._generation(req)
        return 404, error_payload(404, "Not Found")

    def _credits(self, req: Request) -> tuple[int, dict[str, Any]]:
        if not (_bearer(req) or "").startswith(MANAGEMENT_KEY_PREFIX):
            return 403, error_payload(403, "Only management keys can fetch credits.")
        return 200, {"data": {"total_credits": self.state.total_credits_usd, "total_usage": self.state.spend_usd}}

    def _generation(self, req: Request) -> tuple[int, dict[str, Any]]:
        gen_id = req.query_value("id")
        if not gen_id:
            return 400, error_payload(400, "id is required")
        generation = self.state.generation(gen_id)
        if generation is None:
            return 404, error_payload(404, f"Generation {gen_id} not found")
        return 200, {"data": generation.to_api()}

    def _log_request(self, req: Request) -> None:
        if self._log is not None:
            served = req.extra.get("served")
            self._log(f"{req.method} {req.path} {req.extra.get('status', '-')}" + (f" {served}" if served else ""))

    async def shutdown(self, server: asyncio.AbstractServer) -> None:
        """Stop listening, drop open connections and end every task of this loop."""
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


# --- auth and account views --------------------------------------------------------------------


def _api_path(path: str) -> str | None:
    for prefix in API_PREFIXES:
        if path.startswith(prefix + "/"):
            return path[len(prefix):].rstrip("/") or "/"
    return None


def _bearer(req: Request) -> str | None:
    value = req.header("authorization") or ""
    if not value.lower().startswith("bearer "):
        return None
    return value[7:].strip() or None


def _auth_error(req: Request) -> tuple[int, dict[str, Any]] | None:
    key = _bearer(req)
    if key and "rejected" in key:
        return 401, error_payload(401, "User not found.")
    return None


def _label(key: str | None) -> str:
    # A fixed text, never derived from the key: the label ends up in credit_snapshots,
    # exports and the dashboard, and any key characters there would be a leak.
    if not key:
        return "sandbox (keyless, simulated)"
    return "sandbox key (simulated)"


def key_info(key: str | None, state: SandboxState, catalog: Catalog) -> dict[str, Any]:
    """``GET /key`` data (API.md 3.1) over the simulated spend (one simulated day/week/month)."""
    spend = state.spend_usd
    daily_limit = int(catalog.account.get("free_model_daily_limit", 1000))
    return {
        "label": _label(key), "limit": state.key_limit_usd, "limit_remaining": state.limit_remaining_usd,
        "limit_reset": None, "include_byok_in_limit": False,
        "usage": spend, "usage_daily": spend, "usage_weekly": spend, "usage_monthly": spend,
        "byok_usage": 0, "byok_usage_daily": 0, "byok_usage_weekly": 0, "byok_usage_monthly": 0,
        "is_free_tier": False, "is_management_key": bool(key and key.startswith(MANAGEMENT_KEY_PREFIX)),
        "is_provisioning_key": False, "creator_user_id": "user_sandbox_simulated", "expires_at": None,
        "rate_limit": {"requests": -1, "interval": "10s", "note": "deprecated"},
        "free_model_daily_requests": {"limit": daily_limit, "remaining": daily_limit, "used": 0},
    }


def legacy_key_info(key: str | None, state: SandboxState) -> dict[str, Any]:
    """``GET /auth/key`` data in its 2025 shape (API.md 3.2)."""
    return {"label": _label(key), "usage": state.spend_usd, "limit": state.key_limit_usd,
            "is_free_tier": False, "is_provisioning_key": False,
            "limit_remaining": state.limit_remaining_usd, "rate_limit": {"requests": -1, "interval": "10s"}}


# --- running ------------------------------------------------------------------------------------


class SandboxHandle:
    """A running sandbox: its URL, its state, and how to stop it (also a context manager)."""

    def __init__(self, app: SandboxApp, loop: asyncio.AbstractEventLoop, thread: threading.Thread,
                 server: asyncio.AbstractServer, port: int, *, tls: bool = False) -> None:
        self._app = app
        self._loop = loop
        self._thread = thread
        self._server = server
        self.port = port
        self.base_url = f"{'https' if tls else 'http'}://{HOST}:{port}/api/v1"
        self.state = app.state
        self.catalog = app.catalog
        self._stopped = False

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and all connections, end the loop and join its thread."""
        if self._stopped:
            return
        self._stopped = True
        if self._loop.is_running():
            done = asyncio.run_coroutine_threadsafe(self._app.shutdown(self._server), self._loop)
            try:
                done.result(timeout)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> "SandboxHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SandboxHandle {self.base_url}{' stopped' if self._stopped else ''}>"


def start_sandbox(
    port: int = 0,
    *,
    seed: int = 0,
    catalog_path: str | Path | None = None,
    time_scale: float = 1.0,
    answers: Mapping[str, Any] | None = None,
    faults: Mapping[str, str | Fault] | None = None,
    key_limit_usd: Decimal | int | str | None = _FROM_CATALOG,
    log: Log | None = None,
    ssl_context: ssl.SSLContext | None = None,
    initial_usage_usd: Decimal | int | str = 0,
    max_concurrent: int | None = None,
    scenario: Any = None,
) -> SandboxHandle:
    """Start a simulated OpenRouter on 127.0.0.1:``port`` (0 = any free port) in a thread.

    ``time_scale`` multiplies every simulated delay (0 = none). ``answers`` maps a model id
    (or ``"*"``) to an answer text or ``callable(request_body) -> str | None``. ``faults``
    maps a model id (or ``"*"``) to a fault spec (see faults.py). ``key_limit_usd`` is the
    simulated key's cap (catalog default; None = uncapped). ``log`` gets one line per request.
    ``ssl_context`` serves HTTPS (tests and benchmarks of TLS; the handle's base_url says https).
    ``initial_usage_usd`` is the simulated key usage it starts with (spend of earlier processes).
    ``max_concurrent`` limits the server's capacity: that many chat requests are served at once
    at full speed, the rest queue (TTFT grows, throughput plateaus); None = unlimited.
    ``scenario`` scripts changes over time (``bench.sandbox.scenario.Scenario``); None = steady.
    """
    if time_scale < 0:
        raise ValueError("time_scale must be >= 0")
    if max_concurrent is not None and max_concurrent < 1:
        raise ValueError("max_concurrent must be at least 1")
    catalog = load_catalog(catalog_path)
    config = SandboxConfig(seed=seed, time_scale=float(time_scale), answers=dict(answers or {}),
                           faults={k: parse_fault(v) for k, v in (faults or {}).items()},
                           max_concurrent=max_concurrent, scenario=scenario)
    usage = Decimal(str(initial_usage_usd))
    if not usage.is_finite() or usage < 0:
        raise ValueError("initial_usage_usd must be a non-negative amount")
    state = SandboxState(_key_limit(key_limit_usd, catalog),
                         Decimal(catalog.account.get("total_credits_usd", "25")), usage)
    app = SandboxApp(catalog, state, config, log)
    return _run_in_thread(app, port, ssl_context)


def _key_limit(value: Any, catalog: Catalog) -> Decimal | None:
    if value is _FROM_CATALOG:
        value = catalog.account.get("key_limit_usd")
    return None if value is None else Decimal(str(value))


def _run_in_thread(app: SandboxApp, port: int, ssl_context: ssl.SSLContext | None = None) -> SandboxHandle:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["server"] = loop.run_until_complete(asyncio.start_server(
                app.handle_connection, HOST, port, backlog=1024, limit=MAX_HEAD_BYTES, ssl=ssl_context))
        except BaseException as exc:  # surfaced to the caller of start_sandbox
            box["error"] = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="orbench-sandbox", daemon=True)
    thread.start()
    if not ready.wait(START_TIMEOUT_S):
        raise RuntimeError("the sandbox did not start listening in time")
    if "error" in box:
        raise box["error"]
    server = box["server"]
    bound_port = server.sockets[0].getsockname()[1]
    return SandboxHandle(app, loop, thread, server, bound_port, tls=ssl_context is not None)


def serve_forever(
    port: int = 0,
    seed: int = 0,
    *,
    catalog_path: str | Path | None = None,
    time_scale: float = 1.0,
    on_ready: Callable[[SandboxHandle], None] | None = None,
    log: Log | None = None,
    stop_event: threading.Event | None = None,
    max_concurrent: int | None = None,
) -> None:
    """Run a sandbox until ``stop_event`` is set or KeyboardInterrupt; prints nothing itself.

    ``on_ready(handle)`` is called once it is listening (e.g. to print ``handle.base_url``).
    """
    handle = start_sandbox(port, seed=seed, catalog_path=catalog_path, time_scale=time_scale, log=log,
                           max_concurrent=max_concurrent)
    try:
        if on_ready is not None:
            on_ready(handle)
        (stop_event or threading.Event()).wait()
    finally:
        handle.stop()

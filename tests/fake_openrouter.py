"""An independent OpenRouter-compatible server for engine tests (not the sandbox).

Built on the stdlib's ThreadingHTTPServer, sharing no code with bench/, so the
engine is proven against a second implementation of the wire format. It records
every chat request it receives and the true moment (perf_counter_ns, same clock
as the client in this process) it wrote each stream's first token, so tests can
compare measured TTFT with the server's truth.

Behaviour per model id (``behaviours``): a list of steps consumed per request
fingerprint (the request's ``X-Test-Attempt-Key`` header or body hash), e.g.
``["429", "ok"]`` fails once with 429 then succeeds. Steps: ok, 429, 500, 502,
401, 402, stream_error, reset, stall, usage_error (the usage chunk, cost included, then an
error event: a failed request that is billed), truncate (tokens, then the stream ends with
no finish_reason, usage or [DONE]).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import defaultdict
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PRICES = {
    "acme/alpha": (Decimal("0.0000004"), Decimal("0.0000016")),
    "acme/beta": (Decimal("0.000001"), Decimal("0.000004")),
    "acme/gamma": (Decimal("0.00000015"), Decimal("0.0000006")),
    "acme/flaky": (Decimal("0.0000004"), Decimal("0.0000016")),
    "acme/broken": (Decimal("0.0000004"), Decimal("0.0000016")),
    "acme/resetter": (Decimal("0.0000004"), Decimal("0.0000016")),
    "acme/staller": (Decimal("0.0000004"), Decimal("0.0000016")),
    "acme/poor": (Decimal("0.0000004"), Decimal("0.0000016")),
    "acme/waived": (Decimal("0.0000004"), Decimal("0.0000016")),  # list-priced, but billed $0
}
WAIVED = {"acme/waived"}
"""Models whose usage reports ``cost: 0`` (a promotion, a free tier): $0 is a cost, not a missing one."""


def model_entry(mid: str) -> dict[str, Any]:
    p, c = PRICES[mid]
    return {
        "id": mid, "canonical_slug": mid + "-2026", "name": mid.title(), "created": 1772323200,
        "description": "test model", "context_length": 32768,
        "architecture": {"modality": "text->text", "input_modalities": ["text"],
                         "output_modalities": ["text"], "tokenizer": "Other", "instruct_type": None},
        "pricing": {"prompt": str(p), "completion": str(c)},
        "top_provider": {"context_length": 32768, "max_completion_tokens": 4096, "is_moderated": False},
        "per_request_limits": None, "supported_parameters": ["max_tokens", "temperature"],
    }


class FakeState:
    def __init__(self, ttft_s: float, token_gap_s: float, behaviours: dict[str, list[str]],
                 tokens: int | None) -> None:
        self.ttft_s = ttft_s
        self.token_gap_s = token_gap_s
        self.behaviours = behaviours
        self.tokens = tokens
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = defaultdict(int)
        self.first_token_ns: dict[str, int] = {}  # generation id -> perf_counter_ns
        self.sent: dict[str, dict[str, Any]] = {}  # generation id -> usage sent
        self.stall_s = 30.0
        self.seq = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each SSE event must leave when written
    server: "FakeServer"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        if path.endswith("/models"):
            self._json(200, {"data": [model_entry(m) for m in PRICES]})
        elif path.endswith("/key"):
            auth = self.headers.get("Authorization", "")
            if "bad" in auth:
                self._json(401, {"error": {"code": 401, "message": "User not found."}})
            else:
                self._json(200, {"data": {"label": "sk-or-v1-tes...t", "limit": None,
                                          "limit_remaining": None, "usage": 0}})
        else:
            self._json(404, {"error": {"code": 404, "message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        if "bad" in auth:
            self._json(401, {"error": {"code": 401, "message": "User not found."}})
            return
        fp = self.headers.get("X-Test-Attempt-Key") or hashlib.sha256(
            json.dumps(body["messages"], sort_keys=True).encode() + body["model"].encode()
        ).hexdigest()
        model = body["model"]
        with st.lock:
            st.received.append({"model": model, "fp": fp, "headers": dict(self.headers)})
            n = st.attempts[fp]
            st.attempts[fp] += 1
            st.seq += 1
            gen_id = f"gen-{int(time.time())}-{st.seq:020d}"
        steps = st.behaviours.get(model, ["ok"])
        step = steps[min(n, len(steps) - 1)]
        if step in ("429", "500", "502", "401", "402"):
            code = int(step)
            headers = {"Retry-After": "0"} if code == 429 else {}
            self._json(code, {"error": {"code": code, "message": f"simulated {code}"}}, headers)
            return
        self._stream(body, gen_id, step)

    def _chunk(self, payload: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.flush()

    def _event(self, obj: Any) -> None:
        self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _stream(self, body: dict[str, Any], gen_id: str, step: str) -> None:
        st = self.server.state
        model = body["model"]
        n_tokens = st.tokens or int(body.get("max_tokens") or 16)
        prompt_tokens = sum(len(str(m.get("content", ""))) // 4 + 1 for m in body["messages"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": gen_id, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "provider": "FakeCloud"}
        self._chunk(b": OPENROUTER PROCESSING\n\n")
        self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]})
        deadline = time.perf_counter() + st.ttft_s
        while (rest := deadline - time.perf_counter()) > 0:
            time.sleep(rest)
        for i in range(n_tokens):
            if i > 0:
                time.sleep(st.token_gap_s)
            if i == 0:
                st.first_token_ns[gen_id] = time.perf_counter_ns()
            self._event({**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "},
                                              "finish_reason": None}]})
            if i == 1 and step == "reset":
                # SO_LINGER 0 + shutdown: the kernel sends a RST mid-stream
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.shutdown(socket.SHUT_RDWR)
                self.connection.close()
                self.close_connection = True
                return
            if i == 1 and step == "stall":
                time.sleep(st.stall_s)
                return
        if step == "truncate":
            self._chunk(b"")
            return
        p, c = PRICES[model]
        cost = Decimal(0) if model in WAIVED else p * prompt_tokens + c * n_tokens
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens,
                 "total_tokens": prompt_tokens + n_tokens, "cost": float(cost)}
        st.sent[gen_id] = usage
        if step == "usage_error":
            self._event({**base, "choices": [], "usage": usage})
            self._event({**base, "error": {"code": 502, "message": "Provider disconnected after usage"},
                         "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})
        elif step == "stream_error":
            self._event({**base, "error": {"code": 502, "message": "Provider disconnected"},
                         "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})
        else:
            self._event({**base, "choices": [{"index": 0, "delta": {"content": ""},
                                              "finish_reason": "length"}]})
            self._event({**base, "choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, state: FakeState) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1"


def start_fake(ttft_s: float = 0.05, token_gap_s: float = 0.002,
               behaviours: dict[str, list[str]] | None = None,
               tokens: int | None = None) -> FakeServer:
    server = FakeServer(FakeState(ttft_s, token_gap_s, behaviours or {}, tokens))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

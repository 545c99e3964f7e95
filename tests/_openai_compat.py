"""A loopback OpenAI-compatible server shaped like vLLM / llama.cpp, for generic-server tests.

Stdlib only, sharing no code with bench/. ``GET /v1/models`` lists ids without any
OpenRouter ``pricing``; ``POST /v1/chat/completions`` streams a few tokens and sends a
final usage chunk only when the request asked for it (``stream_options.include_usage``),
as vLLM does. Every other path is a 404. Every request is recorded (method, path,
headers, body) so tests can prove what was and was not sent, keys included.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = ["Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OpenAICompatServer

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _record(self, body: Any) -> None:
        with self.server.lock:
            self.server.requests.append({"method": self.command, "path": self.path.split("?")[0],
                                         "headers": dict(self.headers), "body": body})

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._record(None)
        if self.path.split("?")[0] == "/v1/models":
            self._json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1772323200, "owned_by": "vllm", "max_model_len": 4096}
                for m in MODELS]})
        else:
            self._json(404, {"error": {"message": "Not Found", "type": "NotFoundError", "code": 404}})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record(body)
        if self.path.split("?")[0] != "/v1/chat/completions":
            self._json(404, {"error": {"message": "Not Found", "code": 404}})
            return
        if body.get("model") not in MODELS:
            self._json(404, {"error": {"message": f"model {body.get('model')!r} not found", "code": 404}})
            return
        self._stream(body)

    def _chunk(self, payload: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.flush()

    def _event(self, obj: Any) -> None:
        self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _stream(self, body: dict[str, Any]) -> None:
        n = int(body.get("max_tokens") or 4)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-local", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body["model"]}
        self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]})
        for i in range(n):
            time.sleep(0.002)
            self._event({**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "},
                                              "finish_reason": None}]})
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": n,
                                                          "total_tokens": 7 + n}})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")


class OpenAICompatServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def paths(self) -> list[str]:
        with self.lock:
            return [f"{r['method']} {r['path']}" for r in self.requests]

    def authorizations(self) -> set[str]:
        with self.lock:
            return {r["headers"].get("Authorization", "") for r in self.requests}

    def __enter__(self) -> OpenAICompatServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

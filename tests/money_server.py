"""A loopback OpenRouter-compatible server that keeps the books: what it streamed and billed.

For the money tests (tests/test_money.py). Stdlib only, no code shared with bench/.
It records every chat attempt and bills like a provider would: at the end of a
complete answer (``bill="end"``), or the moment a stream starts (``bill="start"``:
the worst case, the way a provider that bills on admission behaves). Knobs, all
settable while it runs:

- ``ttft_s``, ``token_gap_s``, ``tokens``: stream timing and length;
- ``headers_delay_s``: wait before the status line (the "sending" phase);
- ``stall_after_headers``: send headers and a comment, then nothing (a stall);
- ``truncate_after``: end the chunked body cleanly after N tokens, with no
  ``finish_reason``, usage or ``[DONE]``;
- ``generation_delay_s``: how long ``GET /generation`` takes;
- ``judge_delay_s``: how long a non-streaming (judge) completion takes;
- ``judge_fail_first``: refuse the next N judge calls with 503 and ``Retry-After: 0`` (not billed);
- ``bytes_per_token``: how densely the model's "tokenizer" counts the prompt.
"""

from __future__ import annotations

import json
import math
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PROMPT_PRICE = Decimal("0.000002")  # USD per token
COMPLETION_PRICE = Decimal("0.000008")
MODELS = ("acme/dense", "acme/judge")


def model_entry(mid: str) -> dict[str, Any]:
    return {
        "id": mid, "canonical_slug": mid, "name": mid, "created": 1772323200, "context_length": 32768,
        "architecture": {"modality": "text->text", "input_modalities": ["text"],
                         "output_modalities": ["text"], "tokenizer": "Other"},
        "pricing": {"prompt": str(PROMPT_PRICE), "completion": str(COMPLETION_PRICE)},
        "top_provider": {"context_length": 32768, "max_completion_tokens": 4096},
        "supported_parameters": ["max_tokens"],
    }


class Books:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ttft_s = 0.02
        self.token_gap_s = 0.002
        self.tokens: int | None = None
        self.headers_delay_s = 0.0
        self.stall_after_headers = False
        self.truncate_after: int | None = None
        self.generation_delay_s = 0.0
        self.judge_delay_s = 0.0
        self.judge_fail_first = 0
        self.bytes_per_token = 4.0
        self.bill = "end"
        self.attempts = 0  # chat requests received (streams and judge calls)
        self.stream_requests = 0  # streamed (benchmarked) requests received
        self.streams_started = 0
        self.open_streams = 0
        self.answers = 0  # benchmarked answers streamed to the end
        self.judge_calls = 0
        self.judges_open = 0
        self.generation_lookups = 0
        self.billed = Decimal(0)
        self.generations: dict[str, Decimal] = {}  # generation id -> billed
        self.completed_ids: list[str] = []  # answers streamed to the end
        self.seq = 0

    def next_id(self) -> str:
        with self.lock:
            self.seq += 1
            return f"gen-{self.seq:08d}"

    def charge(self, gen_id: str, usd: Decimal) -> None:
        with self.lock:
            self.billed += usd
            self.generations[gen_id] = self.generations.get(gen_id, Decimal(0)) + usd


def prompt_tokens(body: dict[str, Any], bytes_per_token: float) -> int:
    text = "".join(str(m.get("content", "")) for m in body.get("messages", []))
    return max(1, math.ceil(len(text.encode()) / bytes_per_token)) + 3 * len(body.get("messages", []))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: MoneyServer

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        books = self.server.books
        url = urlsplit(self.path)
        if url.path.endswith("/models"):
            self._json(200, {"data": [model_entry(m) for m in MODELS]})
        elif url.path.endswith("/key"):
            self._json(200, {"data": {"label": "test key", "limit": None, "limit_remaining": None,
                                      "usage": float(books.billed)}})
        elif url.path.endswith("/generation"):
            gen_id = parse_qs(url.query).get("id", [""])[0]
            with books.lock:
                books.generation_lookups += 1
            time.sleep(books.generation_delay_s)
            cost = books.generations.get(gen_id)
            if cost is None:
                self._json(404, {"error": {"code": 404, "message": "generation not found"}})
            else:
                self._json(200, {"data": {"id": gen_id, "total_cost": float(cost), "usage": float(cost),
                                          "provider_name": "MoneyCloud", "latency": 10,
                                          "generation_time": 20}})
        else:
            self._json(404, {"error": {"code": 404, "message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802
        books = self.server.books
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        with books.lock:
            books.attempts += 1
            books.stream_requests += bool(body.get("stream"))
        if books.headers_delay_s:
            time.sleep(books.headers_delay_s)
        gen_id = books.next_id()
        n_prompt = prompt_tokens(body, books.bytes_per_token)
        max_tokens = int(body.get("max_tokens") or 16)
        n_out = min(books.tokens or max_tokens, max_tokens)
        cost = PROMPT_PRICE * n_prompt + COMPLETION_PRICE * n_out
        usage = {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                 "total_tokens": n_prompt + n_out, "cost": float(cost)}
        if not body.get("stream"):
            self._judge(books, gen_id, cost, usage)
            return
        with books.lock:
            books.streams_started += 1
            books.open_streams += 1
        try:
            self._stream(books, body, gen_id, n_prompt, max_tokens, n_out, cost, usage)
        finally:
            with books.lock:
                books.open_streams -= 1

    def _judge(self, books: Books, gen_id: str, cost: Decimal, usage: dict[str, Any]) -> None:
        with books.lock:
            refuse = books.judge_fail_first > 0
            books.judge_fail_first -= refuse
        if refuse:  # refused before any work: a provider does not bill it
            self._json(503, {"error": {"code": 503, "message": "judge overloaded"}}, {"Retry-After": "0"})
            return
        with books.lock:
            books.judges_open += 1
        try:
            time.sleep(books.judge_delay_s)
        finally:
            with books.lock:
                books.judges_open -= 1
        books.charge(gen_id, cost)
        with books.lock:
            books.judge_calls += 1
        self._json(200, {"id": gen_id, "model": "acme/judge", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": '{"score": 1, "reason": "fine"}'},
             "finish_reason": "stop"}], "usage": usage})

    def _chunk(self, payload: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.flush()

    def _event(self, obj: Any) -> None:
        self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _stream(self, books: Books, body: dict[str, Any], gen_id: str, n_prompt: int,
                max_tokens: int, n_out: int, cost: Decimal, usage: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if books.bill == "start":  # billed on admission, at the most the request can cost
            books.charge(gen_id, PROMPT_PRICE * n_prompt + COMPLETION_PRICE * max_tokens)
        self._chunk(b": OPENROUTER PROCESSING\n\n")
        if books.stall_after_headers:
            time.sleep(30)
            return
        base = {"id": gen_id, "object": "chat.completion.chunk", "model": body["model"],
                "provider": "MoneyCloud"}
        time.sleep(books.ttft_s)
        for i in range(n_out):
            if i:
                time.sleep(books.token_gap_s)
            self._event({**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]})
            if books.truncate_after is not None and i + 1 >= books.truncate_after:
                if books.bill == "end":
                    books.charge(gen_id, PROMPT_PRICE * n_prompt + COMPLETION_PRICE * (i + 1))
                self._chunk(b"")  # a clean end of the body: no finish_reason, no usage, no [DONE]
                return
        if books.bill == "end":
            books.charge(gen_id, cost)
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        self._event({**base, "choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")
        with books.lock:
            books.answers += 1
            books.completed_ids.append(gen_id)


class MoneyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.books = Books()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1"


def start_money_server(**knobs: Any) -> MoneyServer:
    server = MoneyServer()
    for k, v in knobs.items():
        if not hasattr(server.books, k):
            raise TypeError(f"unknown knob {k}")
        setattr(server.books, k, v)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

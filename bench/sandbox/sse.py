"""SSE event bytes for one streamed chat completion, in the real chunk shapes (API.md 5.6).

Owns the byte layout only. The per-generation constant part of every chunk (id,
provider, model, created) is rendered once, so a content event costs one
``json.dumps`` of the token text and a few concatenations; the server streams
thousands of these a second.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bench.sandbox.httpwire import dumps

PROCESSING_COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
_OPEN_CHOICE = '"choices":[{"index":0,"delta":'
_NULL_FINISH = ',"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}'


_NEEDS_ESCAPE = re.compile(r'[^\x20-\x7e]|["\\]')


def _s(text: str | None) -> str:
    """JSON string literal; the common plain-ASCII token skips json.dumps."""
    if text is not None and not _NEEDS_ESCAPE.search(text):
        return '"' + text + '"'
    return json.dumps(text, ensure_ascii=False)


class ChunkEncoder:
    """Builds the ``data: ...`` events of one generation."""

    def __init__(self, gen_id: str, created: int, model: str, provider: str, reasoning_format: str) -> None:
        self.base = {"id": gen_id, "provider": provider, "model": model,
                     "object": "chat.completion.chunk", "created": created}
        self._head = (f'{{"id":{_s(gen_id)},"provider":{_s(provider)},"model":{_s(model)},'
                      f'"object":"chat.completion.chunk","created":{created},{_OPEN_CHOICE}')
        self._reasoning_format = _s(reasoning_format)

    def _delta(self, delta_json: str) -> bytes:
        return ("data: " + self._head + delta_json + _NULL_FINISH + "\n\n").encode()

    def role(self) -> bytes:
        return self._delta('{"role":"assistant","content":""}')

    def content(self, text: str) -> bytes:
        return self._delta('{"role":"assistant","content":' + _s(text) + "}")

    def reasoning(self, text: str) -> bytes:
        t = _s(text)
        details = f'[{{"type":"reasoning.text","text":{t},"format":{self._reasoning_format},"index":0}}]'
        return self._delta(f'{{"role":"assistant","content":"","reasoning":{t},"reasoning_details":{details}}}')

    def tool_head(self, index: int, call_id: str, name: str) -> bytes:
        call = (f'{{"index":{index},"id":{_s(call_id)},"type":"function",'
                f'"function":{{"name":{_s(name)},"arguments":""}}}}')
        return self._delta('{"role":"assistant","content":null,"tool_calls":[' + call + "]}")

    def tool_args(self, index: int, piece: str) -> bytes:
        return self._delta(f'{{"tool_calls":[{{"index":{index},"function":{{"arguments":{_s(piece)}}}}}]}}')

    def finish(self, finish_reason: str, native: str | None) -> bytes:
        return self._event({**self.base, "choices": [{
            "index": 0, "delta": {"role": "assistant", "content": ""},
            "finish_reason": finish_reason, "native_finish_reason": native, "logprobs": None}]})

    def usage(self, usage: dict[str, Any], shape: str, extra: dict[str, Any]) -> bytes:
        """The final usage chunk: ``choices: []`` ("empty") or one echoing choice ("echo")."""
        choices = [] if shape == "empty" else [{
            "index": 0, "delta": {"role": "assistant", "content": ""},
            "finish_reason": None, "native_finish_reason": None, "logprobs": None}]
        return self._event({**self.base, "choices": choices, "usage": usage, **extra})

    def error(self, error: dict[str, Any], usage: dict[str, Any]) -> bytes:
        """A mid-stream error chunk: top-level ``error`` inside an HTTP 200 stream."""
        return self._event({**self.base, "error": error, "choices": [{
            "index": 0, "delta": {"content": ""}, "finish_reason": "error", "native_finish_reason": None}],
            "usage": usage})

    @staticmethod
    def _event(payload: dict[str, Any]) -> bytes:
        return b"data: " + dumps(payload) + b"\n\n"

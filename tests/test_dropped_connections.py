"""A server that closes kept-alive connections without a word (llama.cpp does): no backoff, rows say why.

Real sockets on 127.0.0.1 (tests/_loopback.py); the run goes through the CLI and the rows are read
back from DuckDB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.api.transport import CLOSES_BEFORE_NO_REUSE
from bench.records import RETRY_REASONS
from bench.store.store import Store
from tests._loopback import LoopbackServer, sse
from tests.conftest import invoke

USAGE = sse('{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}')
STEPS = [(0.0, sse('{"choices":[{"delta":{"content":"hi"}}]}')), (0.0, sse(
    '{"choices":[{"delta":{"content":"!"},"finish_reason":"stop"}]}')), (0.0, USAGE), (0.0, b"data: [DONE]\n\n")]


def endpoint_suite(tmp_path: Path, base_url: str, repeats: int) -> Path:
    p = tmp_path / "loop.yaml"
    p.write_text(f"name: loop\nendpoints:\n  loop: {{base_url: '{base_url}', prices: {{prompt: 0, completion: 0}}}}\n"
                 f"models: [loop/m]\nrepeats: {repeats}\nwarmup: false\ndefaults: {{max_tokens: 5}}\n"
                 "cases:\n  - {id: a, prompt: hello}\n")
    return p


@pytest.mark.parametrize(("server_kw", "reason"), [
    ({"keep_alive": False}, "closed_idle"),  # closed after each response: seen before reuse
    ({"drop_reused": "unread"}, "dropped_unsent"),  # closed on the next request, unread: a reset
    ({"drop_reused": "read"}, "dropped"),  # read, then closed with no answer: may have been read
])
def test_a_server_closing_every_kept_alive_connection_costs_no_backoff_and_each_row_says_why(
        tmp_path: Path, cli_db: Path, server_kw: dict[str, Any], reason: str) -> None:
    with LoopbackServer(STEPS, **server_kw) as server:
        code, out, err = invoke("run", str(endpoint_suite(tmp_path, server.base_url.replace("/api/v1", "/v1"), 12)),
                                "--concurrency", "1", "--json")
        assert code == 0, err
    run_id = json.loads(out)["run_id"]
    rows = sorted(Store(cli_db).requests_frame(run_id).to_dicts(), key=lambda r: r["t_start_ms"])
    assert len(rows) == 12 and {r["outcome"] for r in rows} == {"ok"}
    learned = 1 + CLOSES_BEFORE_NO_REUSE
    for r in rows[1:learned]:
        # the next requests found their pooled connection closed (before or after sending) and
        # went out on a fresh one: the row says so, and it is flagged cold
        reasons = (r["retry_reasons"] or "").split(",")
        assert reasons and set(reasons) <= set(RETRY_REASONS), r["retry_reasons"]
        assert r["conn_reused"] is False and r["connect_ms"] is not None
        assert r["attempts"] == 1 + reasons.count("dropped")
    for r in rows[learned:]:
        # then the transport knows this server closes its connections: no pooling, no race, no resend;
        # each request opens its own connection, flagged cold as before
        assert r["retry_reasons"] is None and r["attempts"] == 1, r
        assert r["conn_reused"] is False and r["connect_ms"] is not None
    # concurrency 1: the next request starts when the previous one ends; a backoff (>= 0.25 s) would show
    gaps = [b["t_start_ms"] - (a["t_start_ms"] + a["e2e_ms"]) for a, b in zip(rows, rows[1:])]
    assert max(gaps) < 150, gaps
    total = next(g for g in json.loads(out)["groups"] if g["group"] == "TOTAL")
    # the first request used a prewarmed connection; every other one opened its own
    assert total["fresh_connections"] == CLOSES_BEFORE_NO_REUSE and total["cold_connections"] == 11
    seen = {r["retry_reasons"] for r in rows[1:learned]}
    if reason == "closed_idle":
        # the server's FIN races the next send: on a busy machine the poll before reuse can miss it,
        # and the send then dies unread (a reset, "dropped_unsent"); either way no retry, no backoff
        assert "closed_idle" in seen and seen <= {"closed_idle", "dropped_unsent"}, seen
    else:
        assert seen == {reason}

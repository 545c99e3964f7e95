"""Connections are opened before the measured phase, warm-up request or not; --cold-connections on purpose.

End to end through the CLI against the sandbox; rows read back from DuckDB.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.store.store import Store
from tests.conftest import invoke


def suite(tmp_path: Path) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text("name: conns\nmodels: [openai/gpt-4o-mini]\nrepeats: 16\ndefaults: {max_tokens: 4}\n"
                 "cases:\n  - {id: a, prompt: hello}\n")
    return p


@pytest.mark.parametrize(("flags", "cold", "mode"), [
    ((), False, "prewarmed"),
    (("--cold-connections",), True, "cold"),
])
def test_no_warmup_still_opens_connections_unless_cold_connections(
        tmp_path: Path, cli_db: Path, flags: tuple[str, ...], cold: bool, mode: str) -> None:
    code, out, err = invoke("run", str(suite(tmp_path)), "--sandbox", "--no-warmup", "--concurrency", "8",
                            "--json", *flags)
    assert code == 0, err
    assert ("connections: cold (--cold-connections)" in err) == (mode == "cold")
    assert ("connections: 8 per endpoint opened before the measured phase" in err) == (mode != "cold")
    summary = json.loads(out)
    assert summary["connections"] == mode
    rows = Store(cli_db).requests_frame(summary["run_id"]).to_dicts()
    assert len(rows) == 16 and not any(r["is_warmup"] for r in rows)
    opened = [r for r in rows if r["conn_reused"] is False]
    # cold: each connection's first request opens it (up to 8; a fast sandbox may free one first)
    assert (1 <= len(opened) <= 8) if cold else not opened
    assert all(r["connect_ms"] is not None for r in opened)
    total = next(g for g in summary["groups"] if g["group"] == "TOTAL")
    assert total["cold_connections"] == len(opened)

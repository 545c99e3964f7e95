"""Paths to the real OpenRouter captures in ../shared (read in place, never copied)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SNAPSHOTS = SHARED / "openrouter" / "snapshots"


def snapshot(*parts: str) -> Path:
    path = SNAPSHOTS.joinpath(*parts)
    assert path.is_file(), f"missing capture {path}"
    return path


def load_json(*parts: str) -> Any:
    return json.loads(snapshot(*parts).read_text(encoding="utf-8"))


def sse_bytes(name: str) -> bytes:
    return snapshot("streaming", name).read_bytes()


def cassette_interactions(*parts: str) -> list[dict[str, Any]]:
    interactions: list[dict[str, Any]] = yaml.safe_load(snapshot(*parts).read_text(encoding="utf-8"))["interactions"]
    return interactions


def response_body(interaction: dict[str, Any]) -> Any:
    """A cassette response body: ``parsed_body``, or ``body.string`` decoded as JSON."""
    response = interaction["response"]
    if "parsed_body" in response:
        return response["parsed_body"]
    return json.loads(response["body"]["string"])

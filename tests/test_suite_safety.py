"""Suites cannot make orbench fetch from outside or expand without bound.

- A json_schema check's $ref resolves only inside its schema or to JSON files in the
  suite's folder; http://, file:// and ../ are refused at load time in one line naming
  the file and the $ref. A loopback server proves nothing is fetched.
- YAML aliases that expand far beyond what was written (the billion-laughs bomb) fail in
  well under a second.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench.errors import SuiteError
from bench.quality.checks import evaluate_checks
from bench.suites.parse import load_suite, parse_suite
from tests._loopback import LoopbackServer


def bomb(levels: int) -> str:
    """The classic billion laughs as a suite: level n is ten aliases of level n-1."""
    lines = ["name: lol", "models: [openai/gpt-4o-mini]", "cases:",
             "  - id: a", "    prompt: hi", "    vars:", '      l0: &a0 "lol"']
    for i in range(1, levels):
        lines.append(f"      l{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [9, 10])
def test_alias_bomb_fails_fast_in_one_line(tmp_path: Path, levels: int) -> None:
    text = bomb(levels)
    assert len(text.encode()) < 600  # the bomb was 484 bytes
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ") and "YAML aliases expand" in msg


def test_shared_defaults_through_aliases_still_load(tmp_path: Path) -> None:
    cases = "\n".join(f"  - {{id: c{i}, prompt: 'q{i}', <<: *common}}" for i in range(50))
    text = ("name: ok\nmodels: [openai/gpt-4o-mini]\ndefaults: &common {max_tokens: 8, temperature: 0}\n"
            f"cases:\n{cases}\n")
    suite = parse_suite(text, tmp_path / "ok.yaml")
    assert len(suite.cases) == 50


def schema_suite(tmp_path: Path, schema: dict[str, object]) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmodels: [openai/gpt-4o-mini]\ncases:\n  - id: a\n    prompt: json please\n"
                    f"    checks:\n      - json_schema: {json.dumps(schema)}\n")
    return path


def test_remote_ref_is_refused_at_load_and_never_fetched(tmp_path: Path) -> None:
    with LoopbackServer([(0.0, b"{}")], content_type="application/json") as server:
        url = server.base_url.replace("/api/v1", "/schema.json")
        path = schema_suite(tmp_path, {"$ref": url})
        with pytest.raises(SuiteError) as info:
            load_suite(path)
        time.sleep(0.1)
        assert server.connections == 0
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ") and f"$ref {url!r}" in msg and "refused" in msg


@pytest.mark.parametrize("ref", ["file:///etc/passwd", "../outside.json", "/etc/hostname",
                                 "https://json-schema.org/draft/2020-12/schema"])
def test_refs_outside_the_suite_folder_are_refused(tmp_path: Path, ref: str) -> None:
    (tmp_path / "outside.json").write_text('{"type": "string"}')
    inner = tmp_path / "suite"
    inner.mkdir()
    path = schema_suite(inner, {"type": "object", "properties": {"n": {"$ref": ref}}})
    with pytest.raises(SuiteError, match="refused"):
        load_suite(path)


def test_relative_refs_in_the_suite_folder_resolve_once_at_load(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "defs.json").write_text('{"$defs": {"name": {"type": "string", "minLength": 2}}}')
    (tmp_path / "schemas" / "person.json").write_text(json.dumps(
        {"type": "object", "required": ["name"], "properties": {"name": {"$ref": "../defs.json#/$defs/name"}}}))
    path = schema_suite(tmp_path, {"$ref": "schemas/person.json"})
    suite = load_suite(path)
    assert set(suite.files) == {"schemas/person.json", "defs.json"}  # part of the suite's hash
    checks = suite.cases[0].checks
    (tmp_path / "defs.json").unlink()  # evaluation reads nothing from disk
    assert evaluate_checks(checks, output_text='{"name": "Ada"}').passed is True
    failed = evaluate_checks(checks, output_text='{"name": "A"}')
    assert failed.passed is False and "too short" in (failed.results[0].reason or "")


def test_ref_to_a_missing_pointer_is_a_load_error(tmp_path: Path) -> None:
    path = schema_suite(tmp_path, {"$defs": {}, "$ref": "#/$defs/nope"})
    with pytest.raises(SuiteError, match=r"\$ref '#/\$defs/nope' does not resolve"):
        load_suite(path)

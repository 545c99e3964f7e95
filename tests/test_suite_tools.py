"""``orbench suite validate`` and ``orbench suite schema``: offline checks of suite files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import invoke
from test_suites import MALFORMED

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "data" / "suites").glob("*.yaml"))
# Malformed suites a JSON Schema cannot see (invalid YAML, duplicates, cross-field and
# file rules): only `suite validate` catches these. Every other MALFORMED entry must
# also fail the schema, so a loosened schema fails this test.
BEYOND_SCHEMA = {
    "syntax", "syntax-colon", "model-duplicate", "model-param-reserved", "model-param-typo",
    "model-reasoning-effort", "case-duplicate-id", "message-no-content", "message-tool-no-id",
    "system-twice", "vars-unknown-placeholder", "image-missing", "tools-bad-parameters",
    "tool-choice-without-tools", "tool-choice-unknown-tool", "response-format-bad-schema",
    "duplicate-yaml-key",
}  # fmt: skip


def schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "docs" / "suite.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# ----------------------------------------------------------------- schema
def test_schema_command_prints_the_docs_file_exactly() -> None:
    code, out, _ = invoke("suite", "schema")
    assert code == 0
    assert out == (ROOT / "docs" / "suite.schema.json").read_text(encoding="utf-8")
    assert json.loads(out)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_suite_matches_the_schema(path: Path) -> None:
    errors = list(schema_validator().iter_errors(yaml.safe_load(path.read_text(encoding="utf-8"))))
    assert errors == []


@pytest.mark.parametrize(("name", "text"), [(m[0], m[1]) for m in MALFORMED if m[0] not in BEYOND_SCHEMA],
                         ids=[m[0] for m in MALFORMED if m[0] not in BEYOND_SCHEMA])
def test_schema_rejects_malformed_suites(name: str, text: str) -> None:
    data = yaml.safe_load(textwrap.dedent(text))
    assert list(schema_validator().iter_errors(data)), f"{name} passes the schema"


def test_schema_covers_most_of_the_malformed_catalogue() -> None:
    known = {m[0] for m in MALFORMED}
    assert BEYOND_SCHEMA <= known
    assert len(known - BEYOND_SCHEMA) >= 40


def test_schema_knows_every_check_kind() -> None:
    from bench.suites.checks import KINDS

    titles = {c["title"] for c in json.loads(invoke("suite", "schema")[1])["$defs"]["check"]["anyOf"]}
    assert titles == set(KINDS)


# ----------------------------------------------------------------- validate
def test_validate_every_example_suite_is_ok(cli_db: Path) -> None:
    code, out, err = invoke("suite", "validate", *map(str, EXAMPLES))
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == len(EXAMPLES)
    for path, line in zip(EXAMPLES, lines):
        assert line.startswith(f"{path}: ok (")
    assert not cli_db.exists()  # offline: no database either


@pytest.mark.parametrize(("text", "fragments"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_validate_malformed_suite_is_one_line_and_exit_1(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    code, out, err = invoke("suite", "validate", str(path))
    assert code == 1
    assert len(out.splitlines()) == 1 and out.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in out
    assert "1 of 1 suite files failed" in err


def test_validate_reports_every_file_and_fails_if_any_does(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodels: [a/b]\ncases: []\n", encoding="utf-8")
    code, out, err = invoke("suite", "validate", str(EXAMPLES[0]), str(bad), str(tmp_path / "missing.yaml"))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{EXAMPLES[0]}: ok")
    assert lines[1].startswith(f"{bad}: cases (line 3): expected at least one case")
    assert lines[2].startswith(f"{tmp_path / 'missing.yaml'}: cannot read the suite file")
    assert "2 of 3 suite files failed" in err


def test_validate_needs_no_catalog_key_or_network(tmp_path: Path, cli_db: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A model no catalog has, with the API pointed at a closed port: still ok."""
    monkeypatch.setenv("OPENROUTER_BASE_URL", "http://127.0.0.1:9/api/v1")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmodels: [nobody/no-such-model]\ncases:\n  - {id: a, prompt: hi}\n", encoding="utf-8")
    code, out, _ = invoke("suite", "validate", str(path))
    assert (code, out) == (0, f"{path}: ok (1 models, 1 cases)\n")

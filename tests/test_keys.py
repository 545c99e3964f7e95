"""Keys go only where they should, and nothing orbench writes ever contains one.

Each mode (sandbox, --base-url to a loopback fake, suite endpoints with api_key_env, the
dashboard) runs with canary keys in the environment, then every byte orbench wrote (the
DuckDB file and a text dump of every table, the journal, exports, reports, stdout and
stderr) is searched for the canary and for pieces of it. The servers record the
Authorization headers they received, so the tests also prove where each key went.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bench.api import keys
from bench.errors import ConfigError, SuiteError
from bench.sandbox import start_sandbox
from bench.suites.parse import parse_suite
from tests._openai_compat import MODELS, OpenAICompatServer
from tests.conftest import invoke
from tests.fake_openrouter import start_fake

CANARY = "sk-or-v1-QXJZKWPVC4N4RY7e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8"
ENDPOINT_CANARY = "vllm-tok-MRXWQZ81Y0PLKJHG5544332211aabbccddeeff"
APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def fragments(secret: str) -> list[str]:
    """The secret, its head and tail (what a 'sk-or-v1-abc...wxyz' label keeps), and every
    8-character window of it."""
    body = secret.removeprefix("sk-or-v1-")  # the public prefix is in every OpenRouter key
    out = {secret, secret[:12], secret[-6:]}
    out |= {body[i:i + 8] for i in range(len(body) - 7)}
    return sorted(out)


def db_text(db: Path) -> str:
    """Every row of every table as text (DuckDB compresses strings, so bytes alone could miss one)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()]
        return "\n".join(repr(con.sql(f'SELECT * FROM "{t}"').fetchall()) for t in tables)
    finally:
        con.close()


def assert_nothing_written_contains(root: Path, *texts: str, secrets: tuple[str, ...] = (CANARY,)) -> int:
    """Search every file under ``root`` and the given texts; returns how many files were read."""
    blobs: list[tuple[str, bytes]] = [(f"text[{i}]", t.encode()) for i, t in enumerate(texts)]
    files = [p for p in root.rglob("*") if p.is_file()]
    blobs += [(str(p), p.read_bytes()) for p in files]
    blobs += [(f"{p} (rows)", db_text(p).encode()) for p in files if p.suffix == ".duckdb"]
    for secret in secrets:
        for piece in fragments(secret):
            for name, data in blobs:
                assert piece.encode() not in data, f"{piece!r} found in {name}"
    return len(files)


def suite_file(tmp_path: Path, models: list[str], extra: str = "") -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(f"name: canary\n{extra}models: {json.dumps(models)}\nrepeats: 2\n"
                 "defaults: {max_tokens: 6}\ncases:\n  - {id: a, prompt: hello}\n"
                 "  - id: j\n    prompt: give json\n    checks: [{json_valid: true}]\n")
    return p


def run_everything(tmp_path: Path, *run_args: str) -> tuple[str, str]:
    """A run plus every command that writes a report or export; all output concatenated."""
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    code, out, err = invoke("run", *run_args, "--json", "--summary-md", str(out_dir / "s.md"),
                            "--junit", str(out_dir / "j.xml"), "--fail-on", "error_rate>0.9")
    assert code == 0, err
    outs, errs = [out], [err]
    for fmt in ("csv", "json", "md", "parquet"):
        code, o, e = invoke("export", "latest", "--format", fmt, "-o", str(out_dir / f"rows.{fmt}"))
        assert code == 0, e
        outs.append(o), errs.append(e)
    for args in (("show", "latest", "--json"), ("runs", "--json"),
                 ("export", "latest", "--summary", "--format", "json")):
        code, o, e = invoke(*args)
        assert code == 0, e
        outs.append(o), errs.append(e)
    return "\n".join(outs), "\n".join(errs)


@pytest.fixture
def db(cli_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENROUTER_API_KEY", CANARY)
    return cli_db


def snapshot_labels(db: Path) -> set[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT label FROM credit_snapshots").fetchall()}
    finally:
        con.close()


# ------------------------------------------------------------------- the modes
def test_sandbox_never_sees_the_real_key(db: Path, tmp_path: Path) -> None:
    out, err = run_everything(tmp_path, str(suite_file(tmp_path, ["openai/gpt-4o-mini"])), "--sandbox")
    code, o, e = invoke("credits", "--sandbox", "--json")
    assert code == 0, e
    assert json.loads(o)[0]["label"] == "sandbox (keyless, simulated)"  # no key reached it
    assert snapshot_labels(db) == {"sandbox (keyless, simulated)"}
    assert assert_nothing_written_contains(tmp_path, out, err, o, e) >= 8


def test_sandbox_label_never_contains_key_characters() -> None:
    """Even a key that does reach the sandbox (named for a --base-url) is not echoed by /key."""
    import httpx

    with start_sandbox(time_scale=0) as sb:
        for key in (CANARY, "short-key-123"):
            label = httpx.get(f"{sb.base_url}/key", headers={"Authorization": f"Bearer {key}"}).json()["data"]["label"]
            assert not any(piece in label for piece in fragments(key)), label


def test_base_url_to_a_loopback_fake_gets_no_openrouter_key(db: Path, tmp_path: Path) -> None:
    server = start_fake(ttft_s=0.001, token_gap_s=0.0)
    out, err = run_everything(tmp_path, str(suite_file(tmp_path, ["acme/alpha"])), "--base-url", server.base_url)
    sent = {r["headers"].get("Authorization", "") for r in server.state.received}
    assert sent == {""}
    assert "openrouter: no key" in err
    assert_nothing_written_contains(tmp_path, out, err)


def test_a_named_key_reaches_the_base_url_but_is_never_written(db: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORBENCH_BASE_URL_KEY_ENV", "OPENROUTER_API_KEY")
    server = start_fake(ttft_s=0.001, token_gap_s=0.0)
    out, err = run_everything(tmp_path, str(suite_file(tmp_path, ["acme/alpha"])), "--base-url", server.base_url)
    assert {r["headers"].get("Authorization") for r in server.state.received} == {f"Bearer {CANARY}"}
    assert f"openrouter: key from $OPENROUTER_API_KEY → {server.base_url}" in err
    assert_nothing_written_contains(tmp_path, out, err)


def test_a_rejected_key_is_not_in_the_error(cli_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = CANARY.replace("QXJZ", "bad0")  # the fake rejects keys containing "bad"
    monkeypatch.setenv("OPENROUTER_API_KEY", bad)
    monkeypatch.setenv("ORBENCH_BASE_URL_KEY_ENV", "OPENROUTER_API_KEY")
    server = start_fake()
    code, out, err = invoke("run", str(suite_file(tmp_path, ["acme/alpha"])), "--base-url", server.base_url)
    assert code == 1 and "401" in err
    assert_nothing_written_contains(tmp_path, out, err, secrets=(bad,))


def test_suite_endpoint_gets_only_its_own_key(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_BASE_URL", "http://127.0.0.1:9/api/v1")  # nothing listens
    monkeypatch.setenv("VLLM_API_KEY", ENDPOINT_CANARY)
    with OpenAICompatServer() as server:
        extra = f"endpoints:\n  vllm: {{base_url: '{server.base_url}', api_key_env: VLLM_API_KEY}}\n"
        suite = suite_file(tmp_path, [f"vllm/{MODELS[0]}"], extra)
        out, err = run_everything(tmp_path, str(suite))
        assert server.authorizations() == {f"Bearer {ENDPOINT_CANARY}"}
    assert f"endpoint vllm: key from $VLLM_API_KEY → {server.base_url}" in err
    assert_nothing_written_contains(tmp_path, out, err, secrets=(CANARY, ENDPOINT_CANARY))


def test_dashboard_run_with_keys_in_env_and_secrets(cli_db: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The Run page against a sandbox URL: neither key goes there, none is shown or stored."""
    secret_canary = CANARY.replace("QXJZKWPV", "SECRETSS")
    db = tmp_path / "dash" / "orbench.duckdb"
    db.parent.mkdir()
    monkeypatch.setenv("ORBENCH_DB", str(db))
    monkeypatch.setenv("OPENROUTER_API_KEY", CANARY)
    monkeypatch.setenv("ORBENCH_DEMO_LOCAL", "0")
    with start_sandbox(seed=2, time_scale=0.05) as sb:
        monkeypatch.setenv("OPENROUTER_BASE_URL", sb.base_url)
        st.cache_data.clear()
        at = AppTest.from_file(APP, default_timeout=60)
        at.secrets["OPENROUTER_API_KEY"] = secret_canary
        at.switch_page("app_pages/run.py").run()
        assert not at.exception, [e.message for e in at.exception]
        at.number_input(key="run-repeats").set_value(1).run()
        at.button(key="run-start").click().run()
        from dashboard import jobs

        state = jobs.registry().jobs()[0].wait(60)  # the server's job registry holds the run
        assert state.phase == "finished", state
        at.run()
        at.switch_page("app_pages/credits.py").run()
        shown = repr(at.main) + repr(at.sidebar) + " ".join(
            str(e.value) for kind in ("markdown", "text", "info", "warning", "error", "caption", "metric", "success")
            for e in getattr(at, kind))
    st.cache_data.clear()
    assert snapshot_labels(db) == {"sandbox (keyless, simulated)"}
    assert_nothing_written_contains(tmp_path, shown, secrets=(CANARY, secret_canary))


# ------------------------------------------------------------------- the rules
def test_plain_http_key_to_a_remote_endpoint_is_refused_in_one_line(
        cli_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_API_KEY", ENDPOINT_CANARY)
    url = "http://192.0.2.10:8000/v1"  # TEST-NET: refused before any connection (and --dry-run)
    extra = f"endpoints:\n  remote: {{base_url: '{url}', api_key_env: REMOTE_API_KEY}}\n"
    code, out, err = invoke("run", str(suite_file(tmp_path, ["remote/m"], extra)), "--dry-run")
    assert code == 1 and err.strip().splitlines() == [
        f"Error: refusing to send an API key over plain http to {url}: use https (or a loopback address)"]
    assert_nothing_written_contains(tmp_path, out, err, secrets=(ENDPOINT_CANARY,))


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8000/v1", True), ("http://127.9.9.9/v1", True), ("http://[::1]:80/v1", True),
    ("http://localhost:8080", True), ("http://10.0.0.1/v1", False), ("http://example.com/v1", False),
    ("http://127.0.0.1.example.com/v1", False),
])
def test_require_safe_allows_plain_http_only_to_loopback(url: str, loopback: bool) -> None:
    keys.require_safe(url, None)  # no key: nothing to protect
    keys.require_safe(url.replace("http://", "https://"), "k")
    if loopback:
        keys.require_safe(url, "k")
    else:
        with pytest.raises(ConfigError, match="plain http"):
            keys.require_safe(url, "k")


@pytest.mark.parametrize(("url", "ours"), [
    ("https://openrouter.ai/api/v1", True), ("https://eu.openrouter.ai/api/v1", True),
    ("https://openrouter.ai.evil.example/api/v1", False), ("https://evil.example/openrouter.ai/v1", False),
    ("https://notopenrouter.ai/v1", False), ("http://127.0.0.1:8765/api/v1", False),
])
def test_the_openrouter_key_goes_only_to_openrouter_hosts(url: str, ours: bool) -> None:
    env = {"OPENROUTER_API_KEY": CANARY}
    assert keys.base_url_key(url, env) == (CANARY if ours else None)


def test_base_url_key_env_must_name_a_key_variable() -> None:
    env = {"HOME": "/root", "ORBENCH_BASE_URL_KEY_ENV": "HOME"}
    with pytest.raises(ConfigError, match="ORBENCH_BASE_URL_KEY_ENV='HOME': "
                                          "expected an environment variable name ending in _KEY or _TOKEN"):
        keys.base_url_key("http://127.0.0.1:1/v1", env)
    with pytest.raises(ConfigError, match=r"names \$VLLM_TOKEN, which is not set"):
        keys.base_url_key("http://127.0.0.1:1/v1", {"ORBENCH_BASE_URL_KEY_ENV": "VLLM_TOKEN"})
    env = {"ORBENCH_BASE_URL_KEY_ENV": "VLLM_TOKEN", "VLLM_TOKEN": "t"}
    assert keys.base_url_key("http://127.0.0.1:1/v1", env) == "t"


@pytest.mark.parametrize("name", ["HOME", "AWS_SECRET", "DATABASE_URL", "KEY", "1_KEY", "MY-KEY"])
def test_suite_api_key_env_must_end_in_key_or_token(name: str) -> None:
    text = (f"name: s\nendpoints:\n  v: {{base_url: 'http://127.0.0.1:1/v1', api_key_env: '{name}'}}\n"
            "models: [v/m]\ncases:\n  - {id: a, prompt: hi}\n")
    with pytest.raises(SuiteError) as info:
        parse_suite(text, "data/suites/s.yaml")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("data/suites/s.yaml: endpoints.v.api_key_env (line 3):")
    assert "ending in _KEY or _TOKEN" in msg


def test_streamlit_secrets_file_is_git_ignored() -> None:
    import subprocess

    root = Path(__file__).resolve().parent.parent
    res = subprocess.run(["git", "check-ignore", "-q", ".streamlit/secrets.toml"], cwd=root)
    assert res.returncode == 0

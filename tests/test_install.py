"""orbench installed like any library: the built wheel holds every run-time file and works from any folder.

The wheel is built with pip from this checkout and unpacked with ``pip install --target``
(no dependencies: the test venv has them), then the real CLI runs from an empty folder
with only that copy of ``bench`` and ``dashboard`` importable. scripts/ci_wheel.sh does the
same with a fresh venv and every dependency, in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from bench import examples
from bench.cli.results import _streamlit_flags
from bench.sandbox.catalog import DEFAULT_CATALOG_PATH
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the files git knows, so no build/ is left in (or taken from) the checkout."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        source, dest = ROOT / rel, src / rel
        if not source.is_symlink() and not source.exists():
            continue  # deleted in the work tree, not yet in git
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), dest)
        else:
            shutil.copy2(source, dest)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(src)],
                   check=True, timeout=300, capture_output=True)
    (found,) = out.glob("orbench-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(target), str(wheel)], check=True, timeout=300, capture_output=True)
    return target


def _tracked(*folders: str) -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--", *folders], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode().split("\0")
    return {p for p in out if p}


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    env["PYTHONPATH"] = str(site)  # only the installed copy: the checkout is not on the path
    return env


def _orbench(site: Path, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=_env(site), text=True,
                          capture_output=True, timeout=timeout)


def test_the_wheel_ships_every_file_of_its_packages(wheel: Path) -> None:
    """Every tracked file under bench/ and dashboard/ is in the wheel (data files included)."""
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {p for p in _tracked("bench", "dashboard") if "__pycache__" not in p}
    assert wanted - names == set()
    assert {"bench/sandbox/catalog.json", "bench/examples/suites/smoke.yaml", "bench/examples/images/red-square.png",
            "dashboard/app.py", "dashboard/streamlit_config.toml"} <= names


def test_installed_copy_runs_the_sandbox_and_examples_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run([sys.executable, "-c", "import bench.sandbox.catalog as c, dashboard; "
                            "print(c.DEFAULT_CATALOG_PATH); print(dashboard.__file__)"],
                           cwd=empty, env=_env(installed), text=True, capture_output=True, check=True)
    assert all(line.startswith(str(installed)) for line in where.stdout.splitlines())
    res = _orbench(installed, empty, "models", "--sandbox", "--json")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)) > 10
    res = _orbench(installed, empty, "suite", "examples", "--copy", "data")
    assert res.returncode == 0, res.stderr
    assert (empty / "data" / "suites" / "vision.yaml").exists() and (empty / "data" / "images").is_dir()
    res = _orbench(installed, empty, "run", "data/suites/vision.yaml", "--sandbox", "--no-warmup", "--repeat", "1",
                   "--json", timeout=180)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["run_id"]
    assert (empty / "data" / "orbench.duckdb").exists()  # the default database, relative to the folder


def test_installed_dashboard_finds_its_app_and_answers_health(installed: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bench", "dashboard", "--port", str(port),
                             "--db", str(tmp_path / "d.duckdb")], cwd=tmp_path, env=_env(installed),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        body, deadline = b"", time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.25)
        assert body.strip() == b"ok", proc.stderr.read() if proc.poll() is not None else "no answer"
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")  # it became the server
        assert str(installed / "dashboard" / "app.py").encode() in cmdline
        assert b"--theme.base" in cmdline and b"--client.showErrorDetails" in cmdline
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_checkout_paths_link_to_the_one_packaged_copy() -> None:
    """data/suites, data/images and .streamlit/config.toml are links, so nothing can drift."""
    assert (ROOT / "data" / "suites").resolve() == examples.SUITES_DIR
    assert (ROOT / "data" / "images").resolve() == examples.IMAGES_DIR
    assert (ROOT / ".streamlit" / "config.toml").resolve() == ROOT / "dashboard" / "streamlit_config.toml"
    assert DEFAULT_CATALOG_PATH == ROOT / "bench" / "sandbox" / "catalog.json"
    assert not (ROOT / "data" / "sandbox").exists()


def test_streamlit_settings_become_flags() -> None:
    flags = _streamlit_flags(ROOT / "dashboard")
    pairs = dict(zip(flags[::2], flags[1::2]))
    assert pairs["--server.address"] == "127.0.0.1" and pairs["--browser.gatherUsageStats"] == "false"
    assert pairs["--server.fileWatcherType"] == "none" and pairs["--theme.base"] == "light"


def test_suite_examples_lists_and_copies_without_clobbering(tmp_path: Path) -> None:
    code, out, err = invoke("suite", "examples", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert {e["file"] for e in listed} == {p.name for p in examples.SUITES_DIR.glob("*.yaml")}
    assert {"smoke", "vision"} <= {e["name"] for e in listed}
    code, out, err = invoke("suite", "examples", "--copy", str(tmp_path / "x"))
    assert code == 0, err
    copied = sorted(Path(p).relative_to(tmp_path / "x").as_posix() for p in out.split())
    assert "suites/smoke.yaml" in copied and "images/red-square.png" in copied
    code, out, err = invoke("suite", "examples", "--copy", str(tmp_path / "x"))
    assert code == 0 and out == "", err  # identical files are left alone
    (tmp_path / "x" / "suites" / "smoke.yaml").write_text("name: mine\n")
    code, _, err = invoke("suite", "examples", "--copy", str(tmp_path / "x"))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "smoke.yaml exists and differs" in err
    assert (tmp_path / "x" / "suites" / "smoke.yaml").read_text() == "name: mine\n"

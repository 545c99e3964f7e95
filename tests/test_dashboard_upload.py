"""Uploaded suites land in a private folder (0700, made by the process), never written through a symlink."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import pytest

from bench.errors import ConfigError
from dashboard import data


@pytest.fixture(autouse=True)
def own_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's private folder is made under this test's tmp_path (and forgotten after)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    data._upload_folder.clear()


def test_uploads_go_to_a_private_folder_not_the_shared_fixed_name() -> None:
    path = data.save_upload("my suite.yaml", b"name: a\n")
    folder = path.parent
    assert folder != Path(tempfile.gettempdir()) / "orbench-uploaded-suites"
    st_ = os.lstat(folder)
    assert stat.S_ISDIR(st_.st_mode) and stat.S_IMODE(st_.st_mode) == 0o700 and st_.st_uid == os.getuid()
    assert path.read_bytes() == b"name: a\n" and stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_a_symlink_planted_at_the_upload_path_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    folder = data.save_upload("first.yaml", b"name: first\n").parent
    content = b"name: planted\n"
    planted = folder / f"evil-{hashlib.sha256(content).hexdigest()[:10]}.yaml"
    planted.symlink_to(victim)
    try:
        with pytest.raises(ConfigError, match="symlink"):
            data.save_upload("evil.yaml", content)
    finally:
        planted.unlink()
    assert victim.read_text() == "keep me"


def test_a_folder_that_lost_its_privacy_is_replaced() -> None:
    folder = data.save_upload("a.yaml", b"name: a\n").parent
    os.chmod(folder, 0o777)
    try:
        again = data.save_upload("b.yaml", b"name: b\n").parent
        assert again != folder and stat.S_IMODE(os.lstat(again).st_mode) == 0o700
    finally:
        os.chmod(folder, 0o700)

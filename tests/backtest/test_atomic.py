"""backtest.atomic: files and folders written all or nothing."""
from __future__ import annotations

import os

import pytest

from backtest.atomic import StagedFiles, staged_dir, write_text_atomic


def test_staged_dir_replaces_the_folder_only_when_complete(tmp_path):
    target = tmp_path / "model"
    with staged_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
        assert not target.exists()  # nothing visible until the block ends
    assert (target / "config.json").read_text() == "{}"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~mask  # as mkdir makes it, not mkdtemp's 0o700
    with pytest.raises(RuntimeError), staged_dir(target) as tmp:  # a failed rewrite leaves the old folder
        (tmp / "config.json").write_text('{"half": ')
        raise RuntimeError("disk full")
    assert (target / "config.json").read_text() == "{}"
    with staged_dir(target) as tmp:  # a complete rewrite replaces it whole (no stale files)
        (tmp / "other.json").write_text("[]")
    assert sorted(p.name for p in target.iterdir()) == ["other.json"]
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary or .old folders left


def test_staged_files_commit_or_nothing(tmp_path):
    out = tmp_path / "a.txt"
    write_text_atomic(out, "one")
    with pytest.raises(ValueError), StagedFiles() as stage:
        stage.write_text(out, "two")
        stage.write_text(tmp_path / "b.txt", "b")
        raise ValueError("boom")
    assert out.read_text() == "one" and sorted(os.listdir(tmp_path)) == ["a.txt"]

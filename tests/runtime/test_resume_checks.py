"""One resume rule for every stage kind (SFT, reward model, RL): other data refuses, another
config warns; and one reader of the `latest` pointer for the launcher and the engine."""

from __future__ import annotations

import json

import pytest

from cascade import fileio
from cascade.runtime.skeleton import DataChangedError, check_resume
from cascade.runtime.stage_dirs import StageDirs

DATA = {"fingerprint": "abc", "prompts": 10, "seed": 1}


def test_same_data_and_config_resume_silently():
    said: list[str] = []
    check_resume({"data": DATA, "config_hash": "h"}, dict(DATA), "h", False, "ckpt", said.append)
    assert said == []


def test_other_data_refuses_unless_allowed():
    other = {**DATA, "fingerprint": "xyz"}
    with pytest.raises(DataChangedError, match="resume_on_changed_data"):
        check_resume({"data": DATA}, other, "h", False, "ckpt", print)
    said: list[str] = []
    check_resume({"data": DATA}, other, "h", True, "ckpt", said.append)
    assert len(said) == 1 and said[0].startswith("WARNING")


def test_another_config_warns():
    said: list[str] = []
    check_resume({"data": DATA, "config_hash": "old"}, dict(DATA), "new", False, "ckpt", said.append)
    assert len(said) == 1 and "old -> new" in said[0]


def _commit(root, step):
    d = root / f"iter_{step:07d}"
    d.mkdir(parents=True)
    (d / fileio.CKPT_META).write_text(json.dumps({"step": step}))
    return d


def test_latest_pointer_one_rule(tmp_path):
    root = tmp_path / "checkpoints"
    dirs = StageDirs(tmp_path)
    assert fileio.read_latest(root) is None and dirs.latest_step() is None  # nothing committed: fresh start
    _commit(root, 1)
    d2 = _commit(root, 2)
    fileio.write_latest(root, d2)
    assert fileio.read_latest(root) == d2 and dirs.latest_step() == 2
    (root / fileio.LATEST).write_text("iter_0000009\n")  # names a step that is gone: newest committed wins
    assert fileio.read_latest(root) == d2 and dirs.latest_step() == 2
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / fileio.LATEST).write_text("iter_0000001\n")
    with pytest.raises(FileNotFoundError):
        fileio.read_latest(tmp_path / "empty")


def test_record_checkpoint_commits_what_it_points_at(tmp_path):
    dirs = StageDirs(tmp_path)
    (dirs.checkpoints / "iter_0000003").mkdir(parents=True)
    dirs.record_checkpoint(3)
    assert fileio.read_latest(dirs.checkpoints) == dirs.checkpoints / "iter_0000003"

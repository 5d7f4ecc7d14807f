"""A checkpoint save that fails on a full filesystem says so (free space, the previous
checkpoint's size, how to resume) instead of the writer's `unexpected pos 704 vs 598`."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from cascade.engine import checkpoint as ckpt

Usage = namedtuple("Usage", "total used free")


def test_a_save_failure_on_a_full_disk_names_the_free_space_and_the_checkpoint_size(tmp_path: Path, monkeypatch):
    prev = tmp_path / "iter_0000005"
    prev.mkdir()
    (prev / "shard.distcp").write_bytes(b"x" * (3 << 20))
    partial = tmp_path / "iter_0000010.partial"
    partial.mkdir()
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(100 << 30, 100 << 30, 724 << 10))
    err = ckpt._explain_save_failure(partial, RuntimeError("unexpected pos 704 vs 598"))
    assert isinstance(err, OSError)
    text = str(err)
    assert "saving checkpoint iter_0000010" in text and "only 1 MiB free" in text
    assert "the previous checkpoint took 0.0 GiB" in text and "resumes from its last committed checkpoint" in text
    assert "unexpected pos 704 vs 598" in text


def test_other_save_failures_pass_through(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(100 << 30, 1 << 30, 50 << 30))
    original = RuntimeError("some other failure")
    assert ckpt._explain_save_failure(tmp_path / "iter_0000001.partial", original) is original


@pytest.mark.parametrize("free", [0, ckpt.LOW_DISK_BYTES - 1])
def test_below_the_threshold_counts_as_full(tmp_path: Path, monkeypatch, free: int):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(1, 1, free))
    assert isinstance(ckpt._explain_save_failure(tmp_path / "iter_0000001.partial", RuntimeError()), OSError)

"""Packing: several conversations per row with per-sequence boundaries (the engine's segment_ids
path) must train exactly like one conversation per row, and the trainer reports its efficiency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade.engine.launch import run_local
from sft_harness import REPO, job_env

WORKER = str(Path(__file__).resolve().parent / "sft_worker.py")


@pytest.fixture(scope="module")
def packing(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("packing")
    [res] = run_local(1, [WORKER, "packing", str(out)], timeout=300, log_dir=out / "logs", env=job_env(2), cwd=REPO)
    assert res.returncode == 0, res.output[-6000:]
    return json.loads((out / "packing_rank0.json").read_text())


def test_packed_rows_hold_several_conversations(packing: dict) -> None:
    assert packing["sequences"] == packing["rows_unpacked"] == 12
    assert packing["rows_packed"] < packing["rows_unpacked"] and packing["max_per_row"] >= 2


def test_packed_and_unpacked_batches_give_the_same_loss_and_gradient(packing: dict) -> None:
    assert packing["loss_packed"] == pytest.approx(packing["loss_unpacked"], rel=1e-5, abs=1e-6)
    assert packing["grad_maxdiff"] <= 1e-5 * max(1.0, packing["grad_scale"])
    assert packing["heldout_packed"] == pytest.approx(packing["loss_packed"], rel=1e-5)
    assert packing["heldout_unpacked"] == pytest.approx(packing["loss_unpacked"], rel=1e-5)


def test_without_boundaries_the_loss_differs(packing: dict) -> None:
    """The check can fail: attending across conversations changes the loss."""
    same = abs(packing["loss_packed"] - packing["loss_unpacked"])
    leaky = abs(packing["loss_no_boundaries"] - packing["loss_unpacked"])
    assert leaky > 1e-5 and leaky > 20 * same, (leaky, same)
    assert packing["grad_maxdiff_no_boundaries"] > 20 * packing["grad_maxdiff"]


def test_packing_efficiency_is_reported(packing: dict) -> None:
    assert 0 < packing["efficiency_unpacked"] < packing["efficiency_packed"] <= 1
    assert "efficiency" in packing["summary"]

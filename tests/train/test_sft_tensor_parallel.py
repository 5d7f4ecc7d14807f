"""The SFT loss path under tensor parallelism: the tiny stage on 2 gloo ranks with TP=2 (packed
rows, vocab-parallel loss, held-out loss) follows the TP=1 run step for step."""

from __future__ import annotations

from pathlib import Path

import pytest

from sft_harness import TINY_STEPS, SFTRun, run_sft


@pytest.mark.slow
def test_tp2_losses_equal_tp1(sft_inputs: dict[str, Path], tiny_run: SFTRun, tmp_path: Path) -> None:
    tp2 = run_sft(sft_inputs, tmp_path / "tp2", "parallel.tensor=2", nprocs=2, timeout=500).check_ok()
    assert tp2.manifest()["layout"]["tp"] == 2
    got, want = tp2.metrics(), tiny_run.metrics()
    assert [r["step"] for r in got] == list(range(0, TINY_STEPS + 1))
    for a, b in zip(got[1:], want[1:]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), a["step"]
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3), a["step"]
        assert a["lr"] == pytest.approx(b["lr"])
    assert got[0]["val/loss"] == pytest.approx(want[0]["val/loss"], rel=1e-5)
    assert got[-1]["val/loss"] == pytest.approx(want[-1]["val/loss"], rel=1e-4)
    assert tp2.manifest()["extra"]["parameters"] == tiny_run.manifest()["extra"]["parameters"]

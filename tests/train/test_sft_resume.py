"""Preemption and resume of the SFT stage: SIGTERM to the real process mid-run -> it finishes the
step, saves and exits 75 (requeue); the restart logs RESUMING, continues from that step and ends
with the same losses as an uninterrupted run; metrics.jsonl holds every step exactly once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from sft_harness import TINY_STEPS, SFTRun, run_sft, start_sft, steps_logged

REQUEUE = 75
pytestmark = pytest.mark.slow  # two runs of a few minutes on a loaded 2-core machine


@pytest.fixture(scope="module")
def killed_and_resumed(sft_inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("resume") / "stage"
    job = start_sft(sft_inputs, out, log_name="logs_killed")
    try:
        reached = job.wait_for(lambda: max(steps_logged(out), default=0) >= 2, timeout=300)
        assert reached, f"the run never logged step 2:\n{job.output(0)[-4000:]}"
        job.signal(signal.SIGTERM)
        [first] = job.wait(timeout=300)
    finally:
        job.kill()
    assert first.returncode == REQUEUE, f"exit {first.returncode}, wanted {REQUEUE}:\n{first.output[-4000:]}"
    saved = int((out / "checkpoints" / "latest").read_text().strip().split("_")[1])
    manifest = json.loads((out / "stage_manifest.json").read_text())
    lines_after_kill = steps_logged(out)
    resumed = run_sft(sft_inputs, out).check_ok()
    return {"first": first, "saved": saved, "manifest": manifest, "lines_after_kill": lines_after_kill,
            "resumed": resumed}


def test_sigterm_saves_and_exits_for_requeue(killed_and_resumed: dict) -> None:
    saved = killed_and_resumed["saved"]
    assert 2 <= saved < TINY_STEPS
    assert "stop requested: saved step" in killed_and_resumed["first"].output
    m = killed_and_resumed["manifest"]
    assert (m["status"], m["steps_done"]) == ("preempted", saved)
    assert killed_and_resumed["lines_after_kill"] == list(range(0, saved + 1))


def test_restart_resumes_from_the_saved_step(killed_and_resumed: dict) -> None:
    run: SFTRun = killed_and_resumed["resumed"]
    assert f"RESUMING from step {killed_and_resumed['saved']}" in run.log
    assert "FRESH START" not in run.log
    assert run.manifest()["status"] == "complete"


def test_metrics_hold_each_step_exactly_once(killed_and_resumed: dict) -> None:
    assert [r["step"] for r in killed_and_resumed["resumed"].metrics()] == list(range(0, TINY_STEPS + 1))


def test_resumed_losses_match_an_uninterrupted_run(killed_and_resumed: dict, tiny_run: SFTRun) -> None:
    resumed, reference = killed_and_resumed["resumed"].losses(), tiny_run.losses()
    assert resumed.keys() == reference.keys()
    for step in reference:
        assert resumed[step] == pytest.approx(reference[step], rel=1e-6), step
    val = lambda run: run.metrics()[-1]["val/loss"]  # noqa: E731
    assert val(killed_and_resumed["resumed"]) == pytest.approx(val(tiny_run), rel=1e-6)

"""Preemption and resume of the RM stage: SIGTERM saves and exits 75, SIGKILL after a
checkpoint loses nothing committed, and the resumed run continues the uninterrupted loss curve.

One-layer SmolLM2 backbone (real weights) so that four runs fit a 2-core budget; slow anyway.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from test_reward_model_fixtures import RMRun, make_pairs, rm_argv, run_rm, start_rm, truncated_smollm2

pytestmark = pytest.mark.slow

STEPS = 6
OVERRIDES = ("model.num_layers=1", f"train.steps={STEPS}", "train.global_batch_size=4", "train.micro_batch_size=2",
             "train.eval_at_start=false", "data.max_val_pairs=8", "checkpoint.save_interval=2",
             "checkpoint.keep_last=2", "optim.lr=5.0e-5", "scheduler.warmup_steps=1")
REQUEUE = 75  # cascade.runtime.preemption.REQUEUE_EXIT_CODE


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rm_resume")
    return {"root": root, "data": make_pairs(root / "data", n_train=40, n_val=8),
            "model": truncated_smollm2(root / "smollm2-1layer", 1)}


def _argv(inputs: dict[str, Path], out: Path) -> list[str]:
    return rm_argv(inputs["model"], inputs["data"], out, *OVERRIDES)


def _latest(out: Path) -> str:
    p = out / "checkpoints" / "latest"
    return p.read_text().strip() if p.is_file() else ""


def _logged_steps(out: Path) -> list[int]:
    p = out / "metrics.jsonl"
    if not p.is_file():
        return []
    steps = []
    for line in p.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass
    return steps


@pytest.fixture(scope="module")
def reference(inputs: dict[str, Path]) -> RMRun:
    out = inputs["root"] / "reference"
    return run_rm(_argv(inputs, out), out, timeout=900).check_ok()


@pytest.fixture(scope="module")
def interrupted(inputs: dict[str, Path]) -> dict:
    """SIGTERM after the first step, then SIGKILL once step 4 is committed, then run to the end."""
    out = inputs["root"] / "interrupted"
    first = start_rm(_argv(inputs, out), out, "first")
    try:
        assert first.wait_for(lambda: 1 in _logged_steps(out), timeout=900), first.output(0)[-4000:]
        first.signal(signal.SIGTERM)
        rc_term = first.wait(timeout=600)[0]
    finally:
        first.kill()
    after_term = {"rc": rc_term.returncode, "latest": _latest(out), "log": rc_term.output,
                  "manifest": json.loads((out / "stage_manifest.json").read_text())}

    second = start_rm(_argv(inputs, out), out, "second")
    try:
        ok = second.wait_for(lambda: _latest(out) == "iter_0000004", timeout=900)
        second.kill()  # SIGKILL to the whole process group: no chance to save
        second_log = second.output(0)
    finally:
        second.kill()
    assert ok, second_log[-4000:]
    final = run_rm(_argv(inputs, out), out, timeout=900, log_name="final")
    return {"term": after_term, "second_log": second_log, "final": final}


def test_sigterm_saves_and_asks_for_requeue(interrupted: dict) -> None:
    term = interrupted["term"]
    assert term["rc"] == REQUEUE, term["log"][-4000:]
    step = int(term["latest"].split("_")[1])
    assert step >= 1 and "stop requested: saved step" in term["log"]
    assert term["manifest"]["status"] == "preempted" and term["manifest"]["steps_done"] == step


def test_second_run_resumed_from_the_sigterm_checkpoint(interrupted: dict) -> None:
    step = int(interrupted["term"]["latest"].split("_")[1])
    assert f"RESUMING from step {step}" in interrupted["second_log"]


def test_resume_after_kill_continues_the_same_curve(interrupted: dict, reference: RMRun) -> None:
    final: RMRun = interrupted["final"].check_ok()
    assert "RESUMING from step 4" in final.log
    ref, got = reference.losses(), final.losses()
    assert sorted(got) == list(range(1, STEPS + 1)) == sorted(ref)  # every step logged exactly once
    assert [s for s in _logged_steps(final.out) if s > 0] == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert got[step] == pytest.approx(ref[step], abs=1e-5), (step, got, ref)
    assert final.eval()["val/loss"] == pytest.approx(reference.eval()["val/loss"], abs=1e-5)
    assert final.eval()["val/accuracy"] == reference.eval()["val/accuracy"]
    assert final.manifest()["status"] == "complete" and (final.out / "hf" / "reward_head.safetensors").is_file()

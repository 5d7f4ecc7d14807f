"""Without Slurm the generated scripts run the stage on this machine: one process directly,
several under torchrun. A signal makes the stage save and stop (exit 75), and running the same
command again resumes it. A failing stage ends with its own error, its log and its exit code, not
torchrun's traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launch_scaffold import StageSpec, write_cascade


@pytest.mark.timeout(180)
def test_local_run_stops_on_signal_and_resumes(tmp_path: Path) -> None:
    steps = 40
    c = write_cascade(tmp_path / "local", [StageSpec("sft", steps=steps)])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CASCADE_RECIPE_", "CASCADE_EVAL_"))}
    env.update(c.env, CASCADE=str(c.yaml), CASCADE_PYTHON=sys.executable, LAUNCH_TEST_STEP_S="0.1")
    script = str(c.launcher("stage_01_sft.sh"))
    rows = c.run_dir / "01_sft" / "metrics.jsonl"
    first = subprocess.Popen(["bash", script], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 90
        while not (rows.exists() and len(rows.read_text().splitlines()) >= 3):
            assert first.poll() is None and time.time() < deadline, first.stdout.read() if first.poll() else "slow"
            time.sleep(0.1)
        first.send_signal(signal.SIGUSR1)
        out, _ = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 75, out
    assert "running locally, one process;" in out and "FRESH START" in out  # no torchrun for one rank
    assert "stopped after saving a checkpoint: run the same command again to resume" in out
    done_before = len(rows.read_text().splitlines())
    assert done_before < steps

    second = subprocess.run(["bash", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"RESUMING from step {done_before}" in second.stdout
    assert [json.loads(ln)["step"] for ln in rows.read_text().splitlines()] == list(range(1, steps + 1))
    assert (c.run_dir / "01_sft" / "COMPLETE").is_file()


def _local_env(c) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CASCADE_RECIPE_", "CASCADE_EVAL_"))}
    return {**env, **c.env, "CASCADE_PYTHON": sys.executable}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("nproc", [1, 2])
def test_local_failure_ends_with_the_stages_error_its_log_and_its_exit_code(tmp_path: Path, nproc: int) -> None:
    c = write_cascade(tmp_path / "fails", [StageSpec("sft", steps=3)])
    env = {**_local_env(c), "LAUNCH_TEST_FAIL_STAGE": "sft", "NPROC": str(nproc)}
    proc = subprocess.run(["bash", str(c.launcher("stage_01_sft.sh"))], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=100)
    log = c.run_dir / "logs" / "01_sft-local.out"
    assert proc.returncode == 3, proc.stdout + proc.stderr  # the recipe's code, not torchrun's 1
    assert ("torchrun --nproc-per-node=2" if nproc == 2 else "one process") in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert "ERROR: stage sft failed (exit 3): training failed (exit 3)" in last, proc.stdout
    assert last.endswith(f"log: {log}")
    assert "ChildFailedError" not in proc.stdout + proc.stderr
    if nproc == 2:
        assert "ChildFailedError" in log.read_text()  # torchrun's full report stays in the log


@pytest.mark.timeout(120)
def test_local_stage_that_cannot_start_exits_2_with_its_reason(tmp_path: Path) -> None:
    c = write_cascade(tmp_path / "blocked", [StageSpec("sft"), StageSpec("rlhf", kind="rl")])
    proc = subprocess.run(["bash", str(c.launcher("stage_02_rlhf.sh"))], env=_local_env(c), cwd=tmp_path,
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "starts from stage 'sft'" in proc.stdout.strip().splitlines()[-1]

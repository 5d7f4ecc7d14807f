"""Through a real single-node Slurm (marker `slurm`): the afterok chain runs in order, a failed
stage cancels its dependents and `status` says so, and `scancel -b --signal=USR1` makes a
running stage save, requeue and finish with every step trained exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascade.runtime.stage_dirs import StageDirs
from cascade.stages import REPO_ROOT
from launch_scaffold import LocalSlurm, ScaffoldCascade, StageSpec, run_cli, write_cascade

pytestmark = pytest.mark.slurm


def _env(c: ScaffoldCascade, slurm: LocalSlurm, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CASCADE_RECIPE_", "CASCADE_EVAL_"))}
    return {**env, **c.env, **slurm.env, "CASCADE_PYTHON": sys.executable, **extra}


def submit(c: ScaffoldCascade, slurm: LocalSlurm, **extra: str) -> dict:
    proc = subprocess.run(["bash", str(REPO_ROOT / "launchers" / "cascade.sh"), str(c.yaml)], cwd=REPO_ROOT,
                          env=_env(c, slurm, **extra), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"status: python -m cascade.launch status {c.run_dir}" in proc.stdout
    jobs = json.loads((c.run_dir / "jobs.json").read_text())
    for entry in jobs["stages"]:
        assert f"submitted {entry['stage']:<16} job {entry['job_id']}" in proc.stdout
    return jobs


def status(c: ScaffoldCascade, slurm: LocalSlurm, wait: float) -> subprocess.CompletedProcess[str]:
    return run_cli(["status", str(c.run_dir), "--wait", str(wait)], env=_env(c, slurm), timeout=wait + 30)


def metrics(c: ScaffoldCascade, out: str) -> list[dict]:
    return [json.loads(ln) for ln in (c.run_dir / out / "metrics.jsonl").read_text().splitlines()]


def logs(c: ScaffoldCascade) -> str:
    return "\n".join(p.read_text() for p in sorted((c.run_dir / "logs").glob("*.out")))


def chain_cascade(root: Path) -> ScaffoldCascade:
    return write_cascade(
        root,
        [StageSpec("sft", steps=3), StageSpec("rlhf", kind="rl", steps=3, uses={"reward_model": "reward_model"}),
         StageSpec("if_rl", kind="rl", steps=3)],
        side=[StageSpec("reward_model", kind="reward_model", steps=2)],
    )


@pytest.mark.timeout(120)
def test_chain_runs_to_the_end_in_order(local_slurm: LocalSlurm, tmp_path: Path) -> None:
    c = chain_cascade(tmp_path / "chain")
    jobs = submit(c, local_slurm)
    assert [e["stage"] for e in jobs["stages"]] == ["reward_model", "sft", "rlhf", "if_rl"]
    st = status(c, local_slurm, wait=90)
    assert st.returncode == 0, st.stdout + st.stderr + logs(c)
    assert "all stages COMPLETE" in st.stdout
    outs = {"reward_model": "side_reward_model", "sft": "01_sft", "rlhf": "02_rlhf", "if_rl": "03_if_rl"}
    done = {name: StageDirs(c.run_dir / out).read_marker() for name, out in outs.items()}
    started = {name: metrics(c, out)[0]["time"] for name, out in outs.items()}
    for entry in jobs["stages"]:  # each stage started after every stage it depends on had finished
        for dep in entry["depends_on"]:
            assert started[entry["stage"]] > done[dep]["time"], (entry["stage"], dep)
    # the input checkpoint of each chain stage is the previous stage's output
    assert [r["value"] for r in metrics(c, "02_rlhf")] == [4.0, 5.0, 6.0]
    assert {r["init_from"] for r in metrics(c, "03_if_rl")} == {str(c.run_dir / "02_rlhf")}
    assert all(json.loads((c.run_dir / out / "evals" / "result.json").read_text()) for out in outs.values())
    again = subprocess.run(["bash", str(REPO_ROOT / "launchers" / "cascade.sh"), str(c.yaml)], cwd=REPO_ROOT,
                           env=_env(c, local_slurm), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to submit" in again.stdout


@pytest.mark.timeout(90)
def test_a_failed_stage_cancels_its_dependents_and_status_says_so(local_slurm: LocalSlurm, tmp_path: Path) -> None:
    c = chain_cascade(tmp_path / "fail")
    submit(c, local_slurm, LAUNCH_TEST_FAIL_STAGE="sft")
    st = status(c, local_slurm, wait=60)
    assert st.returncode == 1, st.stdout + st.stderr
    lines = {ln.split()[0]: ln for ln in st.stdout.splitlines() if ln.startswith("  ") and len(ln.split()) > 2}
    assert "COMPLETE" in lines["reward_model"]
    assert "FAILED" in lines["sft"] and "exit 3:0" in lines["sft"]
    for victim in ("rlhf", "if_rl"):
        assert "CANCELLED" in lines[victim] and "because sft failed" in lines[victim], st.stdout
        assert not (c.run_dir / ("02_rlhf" if victim == "rlhf" else "03_if_rl") / "metrics.jsonl").exists()
    assert "FAILED: sft" in st.stdout and "cancelled because of it: rlhf, if_rl" in st.stdout


@pytest.mark.timeout(120)
def test_usr1_saves_requeues_and_resumes_without_losing_or_repeating_a_step(local_slurm: LocalSlurm,
                                                                             tmp_path: Path) -> None:
    steps = 25
    c = write_cascade(tmp_path / "preempt", [StageSpec("sft", steps=steps, procs=2), StageSpec("rlhf", kind="rl", steps=2)])
    jobs = submit(c, local_slurm, LAUNCH_TEST_STEP_S="0.2")
    job = jobs["stages"][0]["job_id"]
    rows = c.run_dir / "01_sft" / "metrics.jsonl"
    deadline = time.time() + 60
    while not (rows.exists() and len(rows.read_text().splitlines()) >= 3):
        assert time.time() < deadline, "the stage never got going:\n" + logs(c)
        time.sleep(0.1)
    sig = local_slurm.run("scancel", "-b", "--signal=USR1", job)
    assert sig.returncode == 0, sig.stderr
    st = status(c, local_slurm, wait=90)
    assert st.returncode == 0, st.stdout + st.stderr + logs(c)
    got = metrics(c, "01_sft")
    assert [r["step"] for r in got] == list(range(1, steps + 1)), "a step was trained twice or lost"
    assert sorted({r["restart"] for r in got}) == [0, 1] and {r["job"] for r in got} == {job}
    assert {r["world_size"] for r in got} == {2}
    log = logs(c)
    assert "got SIGUSR1: asking the stage to save a checkpoint and stop" in log
    assert f"checkpoint saved: requeueing job {job}" in log
    assert "RESUMING from step" in log and log.index("FRESH START") < log.index("RESUMING from step")
    info = local_slurm.run("scontrol", "show", "job", "-o", job).stdout
    assert "Restarts=1" in info and "JobState=COMPLETED" in info

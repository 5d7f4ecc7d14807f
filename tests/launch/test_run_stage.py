"""`python -m cascade.launch run-stage` without Slurm: skip when COMPLETE, refuse missing inputs,
name a missing recipe module, log FRESH START vs RESUMING, eval then COMPLETE."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cascade.runtime.stage_dirs import StageDirs, atomic_write_text
from launch_scaffold import ScaffoldCascade, StageSpec, run_cli, write_cascade


@pytest.fixture
def cascade(tmp_path: Path) -> ScaffoldCascade:
    return write_cascade(tmp_path / "c", [StageSpec("sft", steps=4), StageSpec("rlhf", kind="rl", steps=2)])


def _env(c: ScaffoldCascade, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CASCADE_RECIPE_", "CASCADE_EVAL_"))}
    return {**env, **c.env, **extra}


def run_stage(c: ScaffoldCascade, stage: str, *overrides: str, **env: str):
    return run_cli(["run-stage", str(c.yaml), stage, *overrides], env=_env(c, **env))


def metrics(c: ScaffoldCascade, out: str) -> list[dict]:
    path = c.run_dir / out / "metrics.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


def test_fresh_run_trains_evaluates_and_marks_complete_then_skips(cascade: ScaffoldCascade) -> None:
    proc = run_stage(cascade, "sft")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FRESH START from" in proc.stdout
    assert [m["step"] for m in metrics(cascade, "01_sft")] == [1, 2, 3, 4]
    done = StageDirs(cascade.run_dir / "01_sft")
    assert done.read_marker()["eval"] == "ok" and done.read_marker()["step"] == 4
    assert json.loads((done.evals / "result.json").read_text()) == {"step": 4}
    again = run_stage(cascade, "sft")
    assert again.returncode == 0 and "ALREADY COMPLETE" in again.stdout
    assert len(metrics(cascade, "01_sft")) == 4  # nothing trained twice
    nxt = run_stage(cascade, "rlhf")
    assert nxt.returncode == 0, nxt.stdout + nxt.stderr
    rows = metrics(cascade, "02_rlhf")
    assert {r["init_from"] for r in rows} == {str(cascade.run_dir / "01_sft")}
    assert [r["value"] for r in rows] == [5.0, 6.0]  # continues from sft's final checkpoint


def test_resume_from_the_latest_checkpoint(cascade: ScaffoldCascade) -> None:
    dirs = StageDirs(cascade.run_dir / "01_sft")
    atomic_write_text(dirs.checkpoints / "iter_0000002" / "state.json", json.dumps({"value": 2.0}))
    atomic_write_text(dirs.root / "metrics.jsonl", '{"step": 1}\n{"step": 2}\n{"step": 3}\n')  # 3 was not saved
    dirs.record_checkpoint(2)
    proc = run_stage(cascade, "sft")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RESUMING from step 2" in proc.stdout and "FRESH START" not in proc.stdout
    assert [m["step"] for m in metrics(cascade, "01_sft")] == [1, 2, 3, 4]


def test_a_stage_whose_input_is_not_complete_refuses_to_start(cascade: ScaffoldCascade) -> None:
    proc = run_stage(cascade, "rlhf")
    assert proc.returncode == 2
    assert "stage 'rlhf' starts from stage 'sft'" in proc.stdout and "no COMPLETE marker" in proc.stdout
    assert "launchers/stage_01_sft.sh" in proc.stdout
    assert not (cascade.run_dir / "02_rlhf").exists()


def test_missing_recipe_module_is_named(cascade: ScaffoldCascade) -> None:
    env = _env(cascade)
    env["CASCADE_RECIPE_SFT"] = "recipes.no_such_recipe"  # every shipped kind has its recipe now
    proc = run_cli(["run-stage", str(cascade.yaml), "sft"], env=env)
    assert proc.returncode == 2
    assert "no recipe for stage kind 'sft': module 'recipes.no_such_recipe'" in proc.stdout
    assert "recipes/no_such_recipe.py" in proc.stdout and "does not exist yet" in proc.stdout


def test_unknown_stage_lists_the_cascades_stages(cascade: ScaffoldCascade) -> None:
    proc = run_stage(cascade, "sft_16k")
    assert proc.returncode == 2
    assert "stage 'sft_16k' is not in the cascade" in proc.stdout and "sft, rlhf" in proc.stdout


def test_overrides_reach_the_stage_config_and_bad_keys_are_errors(cascade: ScaffoldCascade) -> None:
    proc = run_stage(cascade, "sft", "train.steps=2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [m["step"] for m in metrics(cascade, "01_sft")] == [1, 2]
    bad = run_stage(cascade, "rlhf", "train.stepz=2")
    assert bad.returncode == 2 and "train.stepz" in bad.stdout


def test_a_failed_eval_is_recorded_but_the_stage_completes(cascade: ScaffoldCascade, tmp_path: Path) -> None:
    lib = tmp_path / "evallib"
    lib.mkdir()
    (lib / "broken_eval.py").write_text("def run(ctx):\n    raise RuntimeError('benchmark missing')\n")
    env = {"CASCADE_EVAL_SFT": "broken_eval", "PYTHONPATH": f"{lib}{os.pathsep}{cascade.env['PYTHONPATH']}"}
    proc = run_stage(cascade, "sft", **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "benchmark missing" in proc.stdout + proc.stderr
    assert StageDirs(cascade.run_dir / "01_sft").read_marker()["eval"] == "failed (exit 1)"


def test_a_failing_recipe_leaves_no_marker(cascade: ScaffoldCascade) -> None:
    proc = run_stage(cascade, "sft", LAUNCH_TEST_FAIL_STAGE="sft")
    assert proc.returncode == 3
    assert not StageDirs(cascade.run_dir / "01_sft").is_complete()

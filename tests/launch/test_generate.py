"""The committed launchers are exactly what the generator renders from the stage graph: one
directory per cascade, each script with its own cascade and job shape."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from cascade.launch import generate as gen
from cascade.launch.generate import drift, existing_scripts, expected_scripts, shipped_cascades
from cascade.launch.shape import job_shape
from cascade.stages import REPO_ROOT, load_cascade

LAUNCHERS = REPO_ROOT / "launchers"


@pytest.fixture(scope="module")
def expected() -> dict:
    return expected_scripts()


def test_committed_launchers_equal_generator_output(expected: dict) -> None:
    problems = drift(expected)
    assert not problems, "launchers/ drifted from the stage graph:\n  " + "\n  ".join(problems) + \
        "\nregenerate with: python -m cascade.launch generate"


def test_every_stage_has_an_executable_launcher_in_its_cascades_directory(expected: dict) -> None:
    for cascade in shipped_cascades():
        for stage in load_cascade(cascade).stages:
            assert stage.launcher.parent == LAUNCHERS / cascade.parent.name, stage.launcher
            assert stage.launcher in expected, (cascade, stage.name)
            assert stage.launcher.is_file() and os.access(stage.launcher, os.X_OK), stage.launcher
    assert set(existing_scripts()) == set(expected)
    assert not list(LAUNCHERS.glob("stage_*.sh")) and not list(LAUNCHERS.glob("side_*.sh"))  # old flat layout
    assert (LAUNCHERS / "local_slurm" / "start.sh").is_file() and (LAUNCHERS / "cascade.sh").is_file()


def test_scripts_are_valid_bash_without_machine_paths(expected: dict) -> None:
    for path, text in expected.items():
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{path}: {proc.stderr}"
        assert str(REPO_ROOT) not in text, f"{path} embeds this checkout's path"
        assert "{{" not in text, f"{path}: unrendered placeholder"


def _sbatch_lines(text: str) -> list[str]:
    return re.findall(r"^#SBATCH (\S+)$", text, flags=re.M)


def test_sbatch_headers_carry_the_own_cascades_job_shape(expected: dict) -> None:
    for path, text in expected.items():
        own = re.search(r"^OWN_CASCADE=(\S+)$", text, flags=re.M).group(1)
        assert own == f"nemo_configs/{path.parent.name}/cascade.yaml"
        stage_name = re.search(r"^STAGE=(\S+)$", text, flags=re.M).group(1)
        stage = load_cascade(REPO_ROOT / own).stage(stage_name)
        assert stage.launcher == path
        shape = job_shape(stage)
        lines = _sbatch_lines(text)
        for arg in shape.sbatch_args():
            assert arg in lines, (path, arg)
        assert f"#   job shape {' '.join(shape.sbatch_args())}" in text  # the header names it too
        assert f"# Cascade {own} (" in text
        for arg in ("--requeue", "--open-mode=append"):
            assert arg in lines, (path, arg)
        assert any(a.startswith("--job-name=") for a in lines) and any(a.startswith("--output=") for a in lines)
        # sbatch reads #SBATCH lines only before the first command
        body = text.split("\n")
        first_cmd = next(i for i, ln in enumerate(body[1:], 1) if ln.strip() and not ln.startswith("#"))
        assert all(i < first_cmd for i, ln in enumerate(body) if ln.startswith("#SBATCH")), path


def test_same_stage_name_in_two_cascades_gets_two_scripts_with_their_own_shapes(expected: dict) -> None:
    b8 = expected[LAUNCHERS / "qwen3_8b" / "stage_09_code_rl_44k.sh"]
    b14 = expected[LAUNCHERS / "qwen3_14b" / "stage_08_code_rl.sh"]
    toy = expected[LAUNCHERS / "tiny" / "stage_05_code_rl.sh"]
    assert "OWN_CASCADE=nemo_configs/qwen3_14b/cascade.yaml" in b14 and "qwen3_8b" not in b14
    assert "#SBATCH --gpus-per-node=0" in toy and "#SBATCH --gpus-per-node=8" in b8
    rlhf = expected[LAUNCHERS / "qwen3_8b" / "stage_03_rlhf.sh"]
    assert "starts from output of stage sft_32k; uses reward_model=reward_model" in rlhf


def test_old_flat_scripts_and_stages_no_cascade_has_are_stale(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(gen, "LAUNCHERS", tmp_path)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "stage_01_sft.sh").write_text("#!/bin/bash\n")
    (tmp_path / "tiny" / "stage_09_gone.sh").write_text("OWN_CASCADE=nemo_configs/tiny/cascade.yaml\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "stage_01_sft.sh").write_text("OWN_CASCADE=/home/me/mine/cascade.yaml\n")
    problems = drift({})
    assert any(p.startswith("stale (old flat layout") and p.endswith("stage_01_sft.sh") for p in problems)
    assert any(p.startswith("stale (no cascade has this stage)") and "stage_09_gone" in p for p in problems)
    assert not any("mine" in p for p in problems)  # a user's own cascade's launchers are left alone


def test_generate_check_cli_passes() -> None:
    proc = subprocess.run([os.sys.executable, "-m", "cascade.launch", "generate", "--check"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

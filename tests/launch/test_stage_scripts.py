"""Each generated stage script runs its own cascade with its own job shape, with no environment
variable (CASCADE_DRY_RUN=1 prints what it would run), and refuses another cascade. A user's
cascade gets its launchers from `generate --cascade`; without them submit and run-local say so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cascade.launch.generate import generate_one
from cascade.launch.shape import job_shape
from cascade.stages import REPO_ROOT, launcher_dir, load_cascade
from launch_scaffold import StageSpec, run_cli, write_cascade

DRY = re.compile(r"dry run: (?P<what>cascade|job shape|would run:) (?P<rest>.*)$")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "CASCADE"}
    return {**env, "CASCADE_PYTHON": sys.executable, **extra}


def dry(script: str, *args: str, cwd: Path = REPO_ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", script, *args], cwd=cwd, env=_env(CASCADE_DRY_RUN="1", **env),
                          capture_output=True, text=True, timeout=60)


def parsed(out: str) -> dict[str, str]:
    return {m["what"]: m["rest"] for ln in out.splitlines() if (m := DRY.search(ln))}


@pytest.mark.parametrize("script,cascade,stage", [
    ("launchers/qwen3_8b/stage_03_rlhf.sh", "nemo_configs/qwen3_8b/cascade.yaml", "rlhf"),
    ("launchers/tiny/stage_02_rlhf.sh", "nemo_configs/tiny/cascade.yaml", "rlhf"),
])
def test_dry_run_resolves_its_own_cascade_and_job_shape(script: str, cascade: str, stage: str,
                                                        tmp_path: Path) -> None:
    shape = job_shape(load_cascade(REPO_ROOT / cascade).stage(stage))
    # from the repo root as documented, and from elsewhere by absolute path
    for proc in (dry(script, "train.steps=2"), dry(str(REPO_ROOT / script), "train.steps=2", cwd=tmp_path)):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        got = parsed(proc.stdout)
        assert got["cascade"].startswith(f"{cascade} (") and f"launcher {script}" in got["cascade"]
        assert got["job shape"] == (f"nodes={shape.nodes} tasks_per_node={shape.tasks_per_node} "
                                    f"gpus_per_node={shape.gpus_per_node} time={shape.time}")
        cmd = got["would run:"]
        assert f"'run-stage' '{REPO_ROOT / cascade}' '{stage}' 'train.steps=2'" in cmd
        if shape.tasks_per_node > 1:
            assert f"'--nproc-per-node={shape.tasks_per_node}'" in cmd
        else:  # one process needs no torchrun
            assert "torch.distributed.run" not in cmd and cmd.startswith("'") and "'-m' 'cascade.launch'" in cmd


def test_the_two_rlhf_scripts_differ_in_shape() -> None:
    big = parsed(dry("launchers/qwen3_8b/stage_03_rlhf.sh").stdout)["job shape"]
    toy = parsed(dry("launchers/tiny/stage_02_rlhf.sh").stdout)["job shape"]
    assert "nodes=8" in big and "gpus_per_node=8" in big
    assert "nodes=1" in toy and "gpus_per_node=0" in toy


def test_a_script_refuses_a_foreign_cascade() -> None:
    proc = dry("launchers/qwen3_8b/stage_03_rlhf.sh", CASCADE="nemo_configs/tiny/cascade.yaml")
    assert proc.returncode == 2
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    assert "belongs to cascade nemo_configs/qwen3_8b/cascade.yaml, not CASCADE=nemo_configs/tiny/cascade.yaml" \
        in lines[0]
    assert "python -m cascade.launch generate" in lines[0]
    # its own cascade, spelled another way, is fine
    same = dry("launchers/tiny/stage_02_rlhf.sh", CASCADE=str(REPO_ROOT / "nemo_configs/tiny/../tiny/cascade.yaml"))
    assert same.returncode == 0, same.stdout + same.stderr


def test_a_user_cascade_defaults_to_launchers_named_after_its_directory(tmp_path: Path) -> None:
    assert launcher_dir(tmp_path / "my_model" / "cascade.yaml") == REPO_ROOT / "launchers" / "my_model"
    assert launcher_dir(tmp_path / "x.yaml", "custom/dir") == REPO_ROOT / "custom" / "dir"


def test_a_user_cascade_in_a_directory_named_like_a_shipped_one_is_refused(tmp_path: Path, capsys) -> None:
    c = write_cascade(tmp_path / "tiny", [StageSpec("sft")], launchers=False)
    raw = yaml.safe_load(c.yaml.read_text())
    del raw["launcher_dir"]  # launchers/tiny/ holds the shipped toy cascade's scripts
    c.yaml.write_text(yaml.safe_dump(raw))
    assert generate_one(c.yaml) == 2
    assert "launchers/tiny/ holds the launchers of nemo_configs/tiny/cascade.yaml" in capsys.readouterr().out
    assert "OWN_CASCADE=nemo_configs/tiny/cascade.yaml" in (REPO_ROOT / "launchers/tiny/stage_01_sft.sh").read_text()


def test_generate_cascade_cli_writes_a_user_cascades_launchers(tmp_path: Path) -> None:
    c = write_cascade(tmp_path / "mine", [StageSpec("sft"), StageSpec("rlhf", kind="rl")], launchers=False)
    proc = run_cli(["generate", "--cascade", str(c.yaml)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in c.launcher_dir.iterdir()) == ["stage_01_sft.sh", "stage_02_rlhf.sh"]
    got = parsed(dry(str(c.launcher("stage_02_rlhf.sh")), cwd=tmp_path).stdout)
    assert got["cascade"].startswith(f"{c.yaml} (") and "gpus_per_node=0" in got["job shape"]
    assert run_cli(["generate", "--cascade", str(c.yaml), "--check"]).returncode == 0


def test_submit_and_run_local_without_launchers_point_at_the_generate_command(tmp_path: Path) -> None:
    c = write_cascade(tmp_path / "nolaunchers", [StageSpec("sft")], launchers=False)
    fix = f"python -m cascade.launch generate --cascade {c.yaml}"
    sub = subprocess.run(["bash", str(REPO_ROOT / "launchers" / "cascade.sh"), str(c.yaml), "--dry-run"],
                         cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert sub.returncode == 2 and "do not exist" in sub.stderr and fix in sub.stderr, sub.stderr
    local = run_cli(["run-local", str(c.yaml)], env={"CASCADE_PYTHON": sys.executable})
    assert local.returncode == 2 and fix in local.stderr, local.stderr

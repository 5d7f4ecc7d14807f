"""Issue 20 item 7: a stage script runs only its own cascade, a cascade without launchers is
refused at the dry run (not at sbatch), and a script given where a cascade YAML goes is named."""

from __future__ import annotations

from cli_helpers import REPO, Shell, assert_one_line_error


def test_a_stage_script_refuses_another_cascade_and_points_at_generate(sh: Shell) -> None:
    proc = sh("CASCADE=nemo_configs/tiny/cascade.yaml CASCADE_DRY_RUN=1 bash launchers/qwen3_8b/stage_03_rlhf.sh")
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "belongs to cascade nemo_configs/qwen3_8b/cascade.yaml" in out
    assert "python -m cascade.launch generate --cascade nemo_configs/tiny/cascade.yaml" in out


def test_a_users_own_cascade_without_launchers_fails_at_the_dry_run(sh: Shell) -> None:
    mine = sh.home / "mycas" / "cascade.yaml"
    mine.parent.mkdir()
    text = (REPO / "nemo_configs/tiny/cascade.yaml").read_text()
    mine.write_text(text.replace("config: ", f"config: {REPO}/nemo_configs/tiny/"))
    proc = sh(f"bash launchers/cascade.sh {mine} --dry-run")
    assert_one_line_error(proc, "do not exist", f"python -m cascade.launch generate --cascade {mine}")
    assert sh.sbatch_calls() == []


def test_a_script_where_the_cascade_yaml_goes_is_named(sh: Shell) -> None:
    proc = sh("bash launchers/cascade.sh launchers/qwen3_8b/stage_03_rlhf.sh --dry-run")
    assert_one_line_error(proc, "stage_03_rlhf.sh", "not a YAML")


def test_a_local_stage_that_cannot_start_ends_with_its_own_error_log_and_code(sh: Shell) -> None:
    missing = sh.home / "no-data"
    proc = sh(f"CASCADE_TOY_DATA={missing} python -m cascade.launch run-local nemo_configs/tiny/cascade.yaml")
    assert proc.returncode == 2, proc.stderr  # run-stage's "cannot start", not torchrun's 1
    assert "Traceback" not in proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "reward_model" in last and "FAILED with exit code 2" in last and "side_reward_model-local.out" in last
    assert f"ERROR: stage reward_model failed (exit 2): data.train_files {missing}/rm/train.parquet" in proc.stdout

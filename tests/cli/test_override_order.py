"""Issue 20 item 2: key=value overrides are accepted in any order relative to flags, by every
CLI (one parser helper); Hydra's `+key=` / `++key=` work, `~key` gets our syntax."""

from __future__ import annotations

import json
import re

from cli_helpers import Shell, assert_one_line_error

from cascade.config.cli import split_overrides

CASCADE_8B = "nemo_configs/qwen3_8b/cascade.yaml"


def test_plan_takes_an_override_after_its_flags(sh: Shell) -> None:
    proc = sh(f"python -m cascade plan {CASCADE_8B} --include-side run_dir=/x")
    assert proc.returncode == 0, proc.stderr
    assert "run_dir /x" in proc.stdout and "reward_model (side)" in proc.stdout


def test_cascade_sh_takes_overrides_after_dry_run_as_its_help_prints(sh: Shell) -> None:
    proc = sh(f"bash launchers/cascade.sh {CASCADE_8B} --dry-run train.steps=2")
    assert proc.returncode == 0, proc.stderr
    jobs = re.findall(r"^JOB_\w+=\$\((.*)\)$", proc.stdout, re.M)
    assert len(jobs) == 13 and all(j.endswith(".sh train.steps=2") for j in jobs)


def test_overrides_between_flags_and_before_the_file(sh: Shell) -> None:
    proc = sh(f"python -m cascade plan run_dir=/x {CASCADE_8B} --json train.steps=3 --include-side")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[-1]["output_dir"].startswith("/x/")
    proc = sh("python -m cascade config show rollout.temperature=0.5 nemo_configs/qwen3_8b/rlhf.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "temperature: 0.5" in proc.stdout


def test_hydra_plus_prefixes_work(sh: Shell) -> None:
    proc = sh("python -m cascade config show nemo_configs/qwen3_8b/rlhf.yaml ++rollout.temperature=0.5 "
              "+train.steps=7")
    assert proc.returncode == 0, proc.stderr
    assert "temperature: 0.5" in proc.stdout and "steps: 7" in proc.stdout


def test_hydra_delete_gets_our_syntax(sh: Shell) -> None:
    proc = sh("python -m cascade config show nemo_configs/qwen3_8b/rlhf.yaml ~rollout.temperature")
    assert_one_line_error(proc, "'~rollout.temperature'", "rollout.temperature=VALUE")


def test_a_stray_word_is_one_line_naming_it_and_our_syntax(sh: Shell) -> None:
    proc = sh(f"bash launchers/cascade.sh {CASCADE_8B} --dry-run steps2")
    assert_one_line_error(proc, "steps2", "overrides are key=value; sbatch options go after `--`")


def test_one_splitter_leaves_options_and_passthrough_alone() -> None:
    assert split_overrides(["--from", "sft", "a.b=1", "--x=3", "++c=d=e", "f"]) == (
        ["--from", "sft", "--x=3", "f"], ["a.b=1", "c=d=e"])

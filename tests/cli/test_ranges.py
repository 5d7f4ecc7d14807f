"""Issue 20 item 6: ranges and divisibility are checked at load time, naming the key and the
rule, so a dry run no longer passes a run that would train nothing."""

from __future__ import annotations

import pytest
from cli_helpers import Shell, assert_one_line_error

MATH = "nemo_configs/qwen3_8b/math_rl_24k.yaml"


@pytest.mark.parametrize("override, rule", [
    ("train.steps=-5", "must be >= 1"),
    ("train.steps=0", "must be >= 1"),
    ("rollout.temperature=-1", "must be >= 0"),
    ("parallel.tensor=3", "must divide model.num_attention_heads=32"),
    ("train.micro_batch_size=0", "must be >= 1"),
])
def test_out_of_range_values_are_refused_naming_key_and_rule(sh: Shell, override: str, rule: str) -> None:
    key = override.split("=")[0]
    proc = sh(f"python -m cascade config show {MATH} {override}")
    assert_one_line_error(proc, f"command-line override {override!r}", f"{key!r}", rule)


def test_the_dry_run_refuses_them_too(sh: Shell) -> None:
    proc = sh("bash launchers/cascade.sh nemo_configs/qwen3_8b/cascade.yaml --dry-run math_rl_24k.train.steps=0")
    assert_one_line_error(proc, "stage 'math_rl_24k'", "'train.steps'", "must be >= 1")
    assert sh.sbatch_calls() == []


def test_sft_keeps_steps_zero_meaning_epochs(sh: Shell) -> None:
    proc = sh("python -m cascade config show nemo_configs/qwen3_8b/sft_stage1_16k.yaml train.steps=0")
    assert proc.returncode == 0, proc.stderr


def test_a_tensor_parallel_size_dividing_heads_and_groups_passes(sh: Shell) -> None:
    assert sh(f"python -m cascade config show {MATH} parallel.tensor=2").returncode == 0


def test_zero_keeps_its_documented_meanings(sh: Shell) -> None:
    """checkpoint.save_interval=0 (only the final save) and keep_last=0 (keep all) stay valid."""
    proc = sh(f"python -m cascade config show {MATH} checkpoint.save_interval=0 checkpoint.keep_last=0")
    assert proc.returncode == 0, proc.stderr

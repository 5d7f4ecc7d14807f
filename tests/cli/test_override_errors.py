"""Issue 20 item 5: an override error names the override (not the YAML it overrides) and hints
by meaning where NeMo-RL / verl users bring their own names."""

from __future__ import annotations

import pytest
from cli_helpers import REPO, Shell, assert_one_line_error

MATH = "nemo_configs/qwen3_8b/math_rl_24k.yaml"


@pytest.mark.parametrize("override, ours", [
    ("grpo.num_prompts_per_step=128", "rollout.prompts_per_step"),
    ("rollout.n=16", "rollout.num_generations"),
    ("cluster.num_nodes=2", "launch.nodes"),
    ("actor_rollout_ref.rollout.n=16", "rollout.num_generations"),
    ("trainer.total_training_steps=10", "train.steps"),
    ("policy.optimizer.kwargs.lr=1e-6", "optim.lr"),
])
def test_foreign_names_are_blamed_on_the_override_and_get_ours(sh: Shell, override: str, ours: str) -> None:
    proc = sh(f"python -m cascade config show {MATH} {override}")
    line = assert_one_line_error(proc, f"command-line override {override!r}", f"did you mean {ours!r}")
    assert "math_rl_24k.yaml" not in line


def test_a_typo_is_blamed_on_the_override_with_the_closest_key(sh: Shell) -> None:
    proc = sh(f"python -m cascade config show {MATH} optim.lrr=1")
    assert_one_line_error(proc, "command-line override 'optim.lrr=1'", "did you mean 'optim.lr'")


def test_a_bad_value_in_a_file_still_names_the_file(sh: Shell) -> None:
    bad = sh.home / "bad.yaml"
    bad.write_text(f"defaults: [{REPO / MATH}]\n"
                   "rollout:\n  temperature: hot\n")
    proc = sh(f"python -m cascade config show {bad}")
    assert_one_line_error(proc, str(bad), "'rollout.temperature'", "expected a number")

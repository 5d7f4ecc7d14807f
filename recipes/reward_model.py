"""Reward-model stage entry point (Bradley-Terry, C1 §4.2; the hooks are
cascade.reward_model.trainer, the loop is the stage runtime's).

Through the launcher (what the Slurm scripts and the toy cascade run; the protocol is in
cascade/launch/registry.py)::

    python -m cascade.launch run-stage nemo_configs/qwen3_8b/cascade.yaml reward_model [key=value ...]

Standalone, one stage from its YAML (torchrun/srun for several ranks)::

    python -m recipes.reward_model nemo_configs/tiny/reward_model.yaml --init-from HF_DIR --output-dir runs/rm [key=value ...]

Both resume from ``<output-dir>/checkpoints`` when it holds a checkpoint and exit 75
(``cascade.runtime.preemption.REQUEUE_EXIT_CODE``) after saving on SIGTERM/SIGUSR1. The finished
stage leaves ``<output-dir>/hf`` in the format the reward-model scorer loads (the RLHF stage's
``reward_model`` checkpoint) and ``rm_eval.json`` with the held-out accuracy.
"""

from __future__ import annotations

import sys
from typing import Any

from recipes.standalone import run_from_launcher, run_standalone


def hooks() -> tuple[Any, Any]:
    from cascade.reward_model.trainer import RewardModelHooks, check_supported

    return RewardModelHooks(), check_supported


def run(ctx: Any) -> int:
    return run_from_launcher(ctx, hooks)


def main(argv: list[str] | None = None) -> int:
    return run_standalone(argv, kind="reward_model", description="Train one Bradley-Terry reward model from its YAML.",
                          make_hooks=hooks, init_help="HF model dir of the backbone, or an earlier stage's output dir")


if __name__ == "__main__":
    sys.exit(main())

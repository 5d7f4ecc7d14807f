"""Reward-model stage entry point (Bradley-Terry, C1 §4.2; the loop is cascade.train.reward_model).

Through the launcher (what the Slurm scripts and the toy cascade run; the protocol is in
cascade/launch/registry.py)::

    python -m cascade.launch run-stage nemo_configs/qwen3_8b/cascade.yaml reward_model [key=value ...]

Standalone, one stage from its YAML (torchrun/srun for several ranks)::

    python -m recipes.reward_model nemo_configs/tiny/reward_model.yaml --init-from HF_DIR --output-dir runs/rm [key=value ...]

Both resume from ``<output-dir>/checkpoints`` when it holds a checkpoint and exit 75
(``cascade.launch.preemption.REQUEUE_EXIT_CODE``) after saving on SIGTERM/SIGUSR1. The finished
stage leaves ``<output-dir>/hf`` in the format ``cascade.rewards.reward_model`` loads (the RLHF
stage's ``reward_model`` checkpoint) and ``rm_eval.json`` with the held-out accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cascade.launch.registry import StageRun
from recipes.standalone import run_standalone, stage_name


def run(ctx: StageRun) -> int:
    """The recipe protocol: train the stage ``ctx`` describes."""
    from cascade.train.reward_model import RewardModelJob, train_reward_model

    return train_reward_model(RewardModelJob(
        config=ctx.config, init_from=ctx.stage.init_from, output_dir=ctx.dirs.root, stage_name=ctx.stage.name,
        config_path=str(ctx.stage.config), overrides=tuple(ctx.overrides)))


def main(argv: list[str] | None = None) -> int:
    return run_standalone(argv, kind="reward_model", description="Train one Bradley-Terry reward model from its YAML.",
                          train=_train, init_help="HF model dir of the backbone, or an earlier stage's output dir")


def _train(a: argparse.Namespace, cfg: Any) -> int:
    from cascade.train.reward_model import RewardModelJob, train_reward_model

    return train_reward_model(RewardModelJob(
        config=cfg, init_from=a.init_from, output_dir=Path(a.output_dir), stage_name=stage_name(a),
        config_path=str(a.config), overrides=tuple(a.overrides)))


if __name__ == "__main__":
    sys.exit(main())

"""RL stage entry point (every Cascade RL stage: RLHF, IF-RL, Math RL, Code RL, SWE RL).

Through the launcher (what the Slurm scripts and the toy cascade run; the protocol is in
cascade/launch/registry.py)::

    python -m cascade.launch run-stage nemo_configs/tiny/cascade.yaml math_rl [key=value ...]

Standalone, one stage from its YAML (torchrun/srun for several ranks)::

    python -m recipes.rl nemo_configs/tiny/math_rl.yaml --init-from HF_OR_STAGE_DIR --output-dir runs/x \
        [--reward-model RM_DIR] [key=value ...]

Both resume from ``<output-dir>/checkpoints`` when it holds a checkpoint and exit 75
(``cascade.launch.preemption.REQUEUE_EXIT_CODE``) after saving on SIGTERM/SIGUSR1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cascade.launch.registry import StageRun
from recipes.standalone import run_standalone, stage_name


def run(ctx: StageRun) -> int:
    """The recipe protocol: train the RL stage ``ctx`` describes (see cascade.train.rl)."""
    from cascade.train.rl import RLJob, train_rl

    return train_rl(RLJob(config=ctx.config, init_from=ctx.stage.init_from, output_dir=ctx.dirs.root,
                          stage_name=ctx.stage.name, config_path=str(ctx.stage.config),
                          overrides=tuple(ctx.overrides), uses=dict(ctx.stage.uses)))


def main(argv: list[str] | None = None) -> int:
    def add_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--reward-model", default=None, help="reward model dir (side stage output or HF dir)")

    return run_standalone(argv, kind="rl", description="Run one RL stage from its YAML.", train=_train,
                          add_args=add_args)


def _train(a: argparse.Namespace, cfg: Any) -> int:
    from cascade.train.rl import RLJob, train_rl

    uses = {"reward_model": Path(a.reward_model)} if a.reward_model else {}
    return train_rl(RLJob(config=cfg, init_from=a.init_from, output_dir=Path(a.output_dir), stage_name=stage_name(a),
                          config_path=str(a.config), overrides=tuple(a.overrides), uses=uses))


if __name__ == "__main__":
    sys.exit(main())

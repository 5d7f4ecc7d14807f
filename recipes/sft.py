"""SFT stage entry point.

Through the launcher (what the Slurm scripts and the toy cascade run; the protocol is in
cascade/launch/registry.py)::

    python -m cascade.launch run-stage nemo_configs/qwen3_8b/cascade.yaml sft_stage1 [key=value ...]

Standalone, one stage from its YAML (torchrun/srun for several ranks)::

    python -m recipes.sft nemo_configs/tiny/sft.yaml --init-from HF_OR_STAGE_DIR --output-dir runs/x [key=value ...]

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
    """The recipe protocol: train the stage ``ctx`` describes (see cascade.train.sft)."""
    from cascade.train.sft import SFTJob, train_sft

    return train_sft(SFTJob(config=ctx.config, init_from=ctx.stage.init_from, output_dir=ctx.dirs.root,
                            stage_name=ctx.stage.name, config_path=str(ctx.stage.config),
                            overrides=tuple(ctx.overrides)))


def main(argv: list[str] | None = None) -> int:
    return run_standalone(argv, kind="sft", description="Run one SFT stage from its YAML.", train=_train)


def _train(a: argparse.Namespace, cfg: Any) -> int:
    from cascade.train.sft import SFTJob, train_sft

    return train_sft(SFTJob(config=cfg, init_from=a.init_from, output_dir=Path(a.output_dir), stage_name=stage_name(a),
                            config_path=str(a.config), overrides=tuple(a.overrides)))


if __name__ == "__main__":
    sys.exit(main())

"""SFT stage entry point (the hooks are cascade.sft.trainer; the loop is the stage runtime's).

Through the launcher (what the Slurm scripts and the toy cascade run; the protocol is in
cascade/launch/registry.py)::

    python -m cascade.launch run-stage nemo_configs/qwen3_8b/cascade.yaml sft_stage1 [key=value ...]

Standalone, one stage from its YAML (torchrun/srun for several ranks)::

    python -m recipes.sft nemo_configs/tiny/sft.yaml --init-from HF_OR_STAGE_DIR --output-dir runs/x [key=value ...]

Both resume from ``<output-dir>/checkpoints`` when it holds a checkpoint and exit 75
(``cascade.runtime.preemption.REQUEUE_EXIT_CODE``) after saving on SIGTERM/SIGUSR1.
"""

from __future__ import annotations

import sys
from typing import Any

from recipes.standalone import run_from_launcher, run_standalone


def hooks() -> tuple[Any, Any]:
    from cascade.sft.trainer import SFTHooks, check_supported

    return SFTHooks(), check_supported


def run(ctx: Any) -> int:
    return run_from_launcher(ctx, hooks)


def main(argv: list[str] | None = None) -> int:
    return run_standalone(argv, kind="sft", description="Run one SFT stage from its YAML.", make_hooks=hooks)


if __name__ == "__main__":
    sys.exit(main())

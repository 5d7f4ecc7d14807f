"""RL stage entry point (every Cascade RL stage: RLHF, IF-RL, Math RL, Code RL, SWE RL; the hooks
are cascade.rl.trainer, the loop is the stage runtime's).

Through the launcher (what the Slurm scripts and the toy cascade run; the protocol is in
cascade/launch/registry.py)::

    python -m cascade.launch run-stage nemo_configs/tiny/cascade.yaml math_rl [key=value ...]

Standalone, one stage from its YAML (torchrun/srun for several ranks)::

    python -m recipes.rl nemo_configs/tiny/math_rl.yaml --init-from HF_OR_STAGE_DIR --output-dir runs/x \
        [--reward-model RM_DIR] [key=value ...]

Both resume from ``<output-dir>/checkpoints`` when it holds a checkpoint and exit 75
(``cascade.runtime.preemption.REQUEUE_EXIT_CODE``) after saving on SIGTERM/SIGUSR1.
"""

from __future__ import annotations

import sys
from typing import Any

from recipes.standalone import run_from_launcher, run_standalone


def hooks() -> tuple[Any, Any]:
    from cascade.rl.trainer import RLHooks

    return RLHooks(), None


def run(ctx: Any) -> int:
    return run_from_launcher(ctx, hooks)


def main(argv: list[str] | None = None) -> int:
    return run_standalone(argv, kind="rl", description="Run one RL stage from its YAML.", make_hooks=hooks,
                          uses={"reward_model": "reward model dir (side stage output or HF dir)"})


if __name__ == "__main__":
    sys.exit(main())

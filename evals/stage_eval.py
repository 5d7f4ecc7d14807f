"""The launcher's eval hook (cascade.launch.registry.EVAL_HOOKS): evaluate a finished stage.

`run(ctx)` follows the recipe protocol: 0 when done, the requeue code after a preemption signal
(the cache keeps every finished sample; the requeued job resumes). The suite comes from
$CASCADE_EVAL_SUITE, else from the suite whose `cascades:` lists the cascade's name (so adding a
cascade needs no code here), else `paper`. Rank 0 evaluates; other ranks return at once.
Reward-model stages are not generators: nothing to run.
"""

from __future__ import annotations

import os
from typing import Any

from cascade.config.errors import ConfigError
from cascade.config.loader import load_raw
from cascade.config.schema.kinds import StageKind

SUITE_ENV = "CASCADE_EVAL_SUITE"
DEFAULT_SUITE = "paper"  # a cascade no suite names is evaluated under the paper's protocol


def suites_by_cascade() -> dict[str, str]:
    """Cascade name -> suite name, from the `cascades:` lists of evals/suites/*.yaml."""
    from evals.suite import SUITES_DIR

    found: dict[str, str] = {}
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        for cascade in load_raw(path).data.get("cascades") or ():
            if cascade in found:
                raise ConfigError(f"cascade {cascade!r} is claimed by suites {found[cascade]!r} and {path.stem!r}")
            found[cascade] = path.stem
    return found


def suite_for(cascade_name: str) -> str:
    """The suite a stage of `cascade_name` is evaluated with."""
    return os.environ.get(SUITE_ENV) or suites_by_cascade().get(cascade_name, DEFAULT_SUITE)


def run(ctx: Any) -> int:
    from cascade.runtime import preemption
    from evals.runner import EvalInterrupted, evaluate_stage
    from evals.suite import load_suite

    if ctx.rank != 0:
        return 0
    if ctx.stage.kind is StageKind.REWARD_MODEL:
        print(f"[evals] {ctx.stage.name}: a reward model is not evaluated on generation benchmarks")
        return 0
    suite = load_suite(suite_for(ctx.plan.name))
    try:
        evaluate_stage(ctx.dirs.root, suite, model_path=ctx.dirs.hf, stage_name=ctx.stage.name,
                       progress=False, stop_check=preemption.stop_requested)
    except EvalInterrupted as e:
        print(f"[evals] {e}")
        return preemption.REQUEUE_EXIT_CODE
    return 0

"""TEST SCAFFOLDING, not a recipe: a stand-in that does real but trivial work so the launcher
tests can drive the run-stage protocol end to end before recipes/sft.py etc. exist.

The conftest copies this file onto a temporary PYTHONPATH as `launch_test_recipe` and registers
it with CASCADE_RECIPE_<KIND>=launch_test_recipe. Per step it sleeps, appends a metrics line,
writes a checkpoint-like iter_N/state.json and moves the `latest` pointer; it honours
preemption.should_stop() (a MAX all-reduce over gloo with more than one rank) and resumes
from `latest`.

Knobs (environment): LAUNCH_TEST_STEP_S (seconds per step), LAUNCH_TEST_FAIL_STAGE (stage name
that exits 3 at once).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cascade.launch.registry import StageRun
from cascade.runtime import preemption
from cascade.runtime.stage_dirs import StageDirs, atomic_write_text


def _init_dist(ctx: StageRun) -> None:
    if ctx.world_size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", rank=ctx.rank, world_size=ctx.world_size)


def _barrier(ctx: StageRun) -> None:
    if ctx.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def _load_value(dirs: StageDirs, step: int | None) -> float:
    if step is None:
        return 0.0
    return json.loads((dirs.checkpoints / f"iter_{step:07d}" / "state.json").read_text())["value"]


def run(ctx: StageRun) -> int:
    if os.environ.get("LAUNCH_TEST_FAIL_STAGE") == ctx.stage.name:
        print(f"[test recipe] {ctx.stage.name}: failing on purpose", flush=True)
        return 3
    _init_dist(ctx)
    dirs, main = ctx.dirs, ctx.rank == 0
    steps = ctx.config.train.steps
    step_s = float(os.environ.get("LAUNCH_TEST_STEP_S", "0.05"))
    metrics = dirs.root / "metrics.jsonl"
    start = ctx.resume_step or 0
    # the input checkpoint: the upstream stage's final value (proves the hand-off)
    upstream = StageDirs(Path(ctx.stage.init_from))
    value = _load_value(dirs, ctx.resume_step) if start else (
        _load_value(upstream, upstream.latest_step()) if ctx.stage.init_stage else 0.0)
    if main:
        dirs.checkpoints.mkdir(parents=True, exist_ok=True)
        if metrics.exists():  # drop lines past the checkpoint: those steps are trained again
            keep = [ln for ln in metrics.read_text().splitlines() if json.loads(ln)["step"] <= start]
            atomic_write_text(metrics, "".join(k + "\n" for k in keep))
    for step in range(start + 1, steps + 1):
        time.sleep(step_s)
        value += 1.0
        if main:
            with open(metrics, "a") as f:
                f.write(json.dumps({"step": step, "value": value, "time": time.time(), "init_from": ctx.stage.init_from,
                                    "job": os.environ.get("SLURM_JOB_ID"),
                                    "restart": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
                                    "world_size": ctx.world_size}) + "\n")
            atomic_write_text(dirs.checkpoints / f"iter_{step:07d}" / "state.json", json.dumps({"value": value}))
        _barrier(ctx)  # every rank finished "saving" before `latest` moves
        if main:
            dirs.record_checkpoint(step)
        if step < steps and preemption.should_stop():
            print(f"[test recipe] {ctx.stage.name}: stop requested, saved step {step}", flush=True)
            _barrier(ctx)
            return preemption.REQUEUE_EXIT_CODE
    _barrier(ctx)
    return 0

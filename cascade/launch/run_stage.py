"""`python -m cascade.launch run-stage CASCADE STAGE [key=value ...]`: what every rank runs.

Order of business, the same on every rank (they read the same files):
  1. resolve the plan; an unknown stage is an error that lists the cascade's stages;
  2. COMPLETE marker present -> exit 0 at once, so re-submitting a chain is safe;
  3. every stage this one depends on (init_from, uses) must be COMPLETE, an external
     init_from must exist; on a GPU, the stage's memory plan (cascade/engine/memory_plan.py)
     must fit the GPU (CPU runs skip it: the toy stages use host RAM);
  4. log loudly FRESH START or RESUMING from step N;
  5. the recipe registered for the stage kind trains (registry.py); it returns
     REQUEUE_EXIT_CODE after saving when preemption.should_stop() said so;
  6. TRAINED marker, then the eval hook (if any) on the finished checkpoint, then COMPLETE.
Markers are written by rank 0 only.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from cascade.config import ConfigError, load_stage_config
from cascade.launch.dist_env import DistEnv
from cascade.launch.inputs import missing_inputs
from cascade.launch.overrides import load_with_overrides
from cascade.launch.registry import RecipeMissing, StageRun, load_eval_hook, load_recipe
from cascade.launch.shape import shape_from_config
from cascade.runtime import preemption
from cascade.runtime.stage_dirs import StageDirs
from cascade.runtime.stage_timing import CLOCK, process_age_s, write_attempt
from cascade.stages import REPO_ROOT, CascadePlan, ResolvedStage

EXIT_CANNOT_START = 2  # config error, missing input, missing recipe: resubmitting will not help
RULE = "=" * 78


class LaunchError(RuntimeError):
    """The stage cannot start; the message says what to do."""


class _Log:
    def __init__(self, stage: str, env: DistEnv):
        self.stage, self.env = stage, env

    def __call__(self, msg: str, *, all_ranks: bool = False) -> None:
        if all_ranks or self.env.is_main:
            rank = f" rank {self.env.rank}" if all_ranks and self.env.world_size > 1 else ""
            print(f"[cascade {time.strftime('%H:%M:%S')} {self.stage}{rank}] {msg}", flush=True)

    def banner(self, msg: str) -> None:
        if self.env.is_main:
            print(f"{RULE}\n[cascade] {self.stage}: {msg}\n{RULE}", flush=True)


def find_stage(plan: CascadePlan, name: str) -> ResolvedStage:
    for stage in plan.stages:
        if stage.name == name:
            return stage
    raise LaunchError(
        f"stage {name!r} is not in the cascade {plan.source} (stages: {', '.join(s.name for s in plan.stages)}). "
        "Pick the cascade with CASCADE=nemo_configs/<model>/cascade.yaml."
    )


def check_inputs(plan: CascadePlan, stage: ResolvedStage) -> None:
    """Every upstream stage must be COMPLETE; an external init_from must exist."""
    for dep in stage.depends_on:
        up = plan.stage(dep)
        if not StageDirs(up.output_dir).is_complete():
            role = "starts from" if dep == stage.init_stage else "uses"
            raise LaunchError(
                f"stage {stage.name!r} {role} stage {dep!r}, whose output {up.output_dir} has no "
                f"COMPLETE marker. Run {up.to_json()['launcher']} first "
                f"(or launchers/cascade.sh {plan.source} --from {dep})."
            )
    if stage.init_stage is None and not Path(stage.init_from).exists():
        raise LaunchError(
            f"stage {stage.name!r} starts from {stage.init_from}, which does not exist: fetch the base "
            "model first (README: models), or point the cascade YAML's env variable at it."
        )


def _check_world(config: Any, stage: ResolvedStage, env: DistEnv, log: _Log) -> None:
    shape = shape_from_config(config, str(stage.config))
    if env.world_size % shape.model_parallel_size:
        raise LaunchError(
            f"{env.world_size} ranks cannot hold TP*PP*CP = {shape.model_parallel_size}: "
            f"submit with {shape.sbatch_args()}"
        )
    if env.world_size != shape.world_size:
        log(f"WARNING: {env.world_size} ranks, the config's launch section asks for {shape.world_size} "
            f"({shape.nodes} node(s) x {shape.tasks_per_node}); data parallelism changes with it")


def _check_memory(config: Any, stage: ResolvedStage, env: DistEnv, log: _Log) -> None:
    """Refuse a layout whose per-GPU memory plan does not fit this GPU (skipped without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return
    from cascade.engine.memory_plan import GIB, plan_memory

    gib = torch.cuda.get_device_properties(env.local_rank % torch.cuda.device_count()).total_memory / GIB
    try:
        plan = plan_memory(config, gib, world_size=env.world_size, source=str(stage.config))
    except ValueError as e:
        raise LaunchError(f"memory plan: {e}") from e
    if not plan.fits:
        raise LaunchError(f"memory plan: {plan.reason}; fix the layout (`python -m cascade.engine memory "
                          f"{stage.config} --gpu-memory-gib {gib:.0f}` shows the table)")
    log(f"memory plan: {plan.reason}")


def _run_hook(name: str, fn: Any, ctx: StageRun, log: _Log) -> tuple[int, str]:
    """(exit code, the cause in one line when it raised)."""
    try:
        return int(fn(ctx)), ""
    except Exception as e:  # the traceback is the diagnosis; the launcher only maps it to a code
        import traceback

        traceback.print_exc()
        cause = " ".join(f"{name} raised {type(e).__name__}: {e}".split())
        log(f"ERROR: {cause}", all_ranks=True)
        return 1, cause


def _preempted(log: _Log, what: str, dirs: StageDirs) -> int:
    preemption.flag_requeue()
    sig = preemption.received_signal()
    log.banner(f"PREEMPTED during {what} ({sig.name if sig else 'stop requested'}): checkpoint at step "
               f"{dirs.latest_step()} saved; exiting {preemption.REQUEUE_EXIT_CODE} so the job requeues")
    return preemption.REQUEUE_EXIT_CODE


def run_stage(cascade: str | Path, stage_name: str, overrides: list[str]) -> int:
    env = DistEnv.from_environ()
    env.export()
    log = _Log(stage_name, env)
    try:
        plan, routed = load_with_overrides(cascade, overrides)  # run_dir=..., STAGE.key=..., key=...
        stage = find_stage(plan, stage_name)
        overrides = routed.for_stage(stage_name)
        dirs = StageDirs(stage.output_dir)
        if dirs.is_complete():
            log.banner(f"ALREADY COMPLETE ({dirs.root}/COMPLETE): nothing to do")
            return 0
        check_inputs(plan, stage)
        config = load_stage_config(stage.config, [*stage.overrides, *overrides])
        if config.kind != stage.kind:
            raise LaunchError(f"{stage.config} says kind {config.kind.value!r}, the cascade says {stage.kind.value!r}")
        if missing := [w for w in missing_inputs(plan, {stage.name: config}) if " data." in w]:
            raise LaunchError(f"{missing[0].removeprefix('WARNING: ')}; write it with data_prep "
                              f"(data_prep/README.md) or point {stage.config} at it")
        _check_world(config, stage, env, log)
        trained = dirs.is_trained()
        recipe = None if trained else load_recipe(stage.kind)
        if recipe is not None:
            _check_memory(config, stage, env, log)
        eval_name, eval_fn = load_eval_hook(stage.kind)
    except (ConfigError, LaunchError, RecipeMissing) as e:
        log(f"ERROR: {e}", all_ranks=True)
        return EXIT_CANNOT_START

    preemption.install()
    CLOCK.add("startup", process_age_s())  # interpreter, imports, config and recipe loading
    try:
        return _train_and_eval(plan, stage, config, overrides, dirs, env, log, recipe, eval_name, eval_fn)
    finally:
        if env.is_main and dirs.root.is_dir():  # where this attempt's time went (evals.report shows it)
            write_attempt(dirs.root, process_age_s())


def _train_and_eval(plan: CascadePlan, stage: ResolvedStage, config: Any, overrides: list[str], dirs: StageDirs,
                    env: DistEnv, log: _Log, recipe: Any, eval_name: str, eval_fn: Any) -> int:
    resume = dirs.latest_step()
    ctx = StageRun(plan=plan, stage=stage, config=config, overrides=tuple(overrides), dirs=dirs,
                   resume_step=resume, rank=env.rank, local_rank=env.local_rank, world_size=env.world_size)
    job = os.environ.get("SLURM_JOB_ID")
    where = f"job {job} (restart {os.environ.get('SLURM_RESTART_COUNT', '0')})" if job else "local run"
    log(f"{where} on {socket.gethostname()}, {env.world_size} rank(s); cascade {plan.source}")
    log(f"config {stage.config}; overrides {list(overrides) or 'none'}; output {dirs.root}")

    if recipe is not None:
        if resume is None:
            log.banner(f"FRESH START from {stage.init_from} (no checkpoint in {dirs.checkpoints})")
        else:
            log.banner(f"RESUMING from step {resume} ({dirs.checkpoints})")
        rc, cause = _run_hook(f"recipe for kind {stage.kind.value!r}", recipe, ctx, log)
        if rc == preemption.REQUEUE_EXIT_CODE:
            return _preempted(log, "training", dirs)
        if rc != 0:  # the last ERROR line is what the launcher shows: it carries the cause
            log(f"ERROR: training failed (exit {rc}){': ' + cause if cause else ''}; the last checkpoint "
                "stays for a resume", all_ranks=True)
            return rc
        if env.is_main:
            dirs.mark_trained({"stage": stage.name, "step": dirs.latest_step(), "job": job})
        log(f"training finished (step {dirs.latest_step()})")
    else:
        log("training already finished (TRAINED marker): evaluating only")

    eval_status = f"skipped: {eval_name}"
    if eval_fn is None:
        log(f"no eval hook: {eval_name}")
    else:
        log(f"evaluating the finished checkpoint with {eval_name}")
        with CLOCK.phase("eval"):
            rc, _ = _run_hook(f"eval hook {eval_name}", eval_fn, ctx, log)
        if rc == preemption.REQUEUE_EXIT_CODE:
            return _preempted(log, "eval", dirs)
        eval_status = "ok" if rc == 0 else f"failed (exit {rc})"
        if rc != 0:  # the trained checkpoint is good; a broken eval must not stop the cascade
            log(f"ERROR: eval {eval_status}; the stage still completes (see {dirs.evals})", all_ranks=True)
    if env.is_main:
        dirs.mark_complete({"stage": stage.name, "kind": stage.kind.value, "step": dirs.latest_step(),
                            "job": job, "eval": eval_status, "cascade": str(plan.source)})
    log.banner(f"COMPLETE ({dirs.root}); eval {eval_status}")
    return 0


def main(cascade: str, stage: str, overrides: list[str]) -> int:
    # one path rule: a relative path in a config (run_dir, init_path, data.*) is relative to the
    # repository root, wherever the command was started (the launchers cd there too)
    cascade = str(Path(cascade).resolve())
    os.chdir(REPO_ROOT)
    rc = run_stage(cascade, stage, overrides)
    sys.stdout.flush()
    return rc

"""The one training-stage skeleton: every stage kind runs `run_training_stage(job, hooks)`.

    start distributed -> resolve init_from -> hooks.setup -> resume (checks) or initialise
    -> hooks.ready -> optional step-0 evaluation -> loop: hooks.step -> metrics line -> save if due (interval,
       stop request, last step) -> on a stop request: manifest "preempted", REQUEUE_EXIT_CODE
    -> hooks.finish (final evaluation) -> HF export -> manifest "complete"

A kind (SFT, reward model, RL, MOPD) supplies only its hooks (`StageHooks`): how to build its
data and model, run one step, evaluate, export. Resume checks are the same for every kind: the
checkpoint records the data fingerprint (`hooks.data_state()`) and the config hash; other data
refuses to resume unless `train.resume_on_changed_data`, another config warns. Every (re)start
trains at least one step before it honours a stop request, so a job that is signalled early in
every allocation still makes progress. A kill between a metrics line and its save leaves lines
past the checkpoint; the metrics logger drops them on restart, so each step is logged once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cascade.config import to_dict
from cascade.engine.init_source import InitSource, resolve_init
from cascade.runtime import preemption
from cascade.runtime.manifest import StageManifest, config_hash, write_config
from cascade.runtime.metrics_logger import METRICS_FILE, MetricsLogger, check_sinks_available, read_metrics
from cascade.runtime.stage_dirs import StageDirs
from cascade.runtime.stage_timing import CLOCK


class DataChangedError(RuntimeError):
    """A resume would continue on data other than the checkpoint's."""


@dataclass(frozen=True)
class StageJob:
    """One stage to run: its validated config, what it starts from and where it writes."""

    config: Any  # a stage schema (SFTStageConfig, RewardModelStageConfig, RLStageConfig, ...)
    init_from: str
    output_dir: Path
    stage_name: str
    config_path: str | None = None
    overrides: tuple[str, ...] = ()
    uses: Mapping[str, Path] = field(default_factory=dict)  # side inputs, e.g. {"reward_model": dir}


@dataclass
class StageContext:
    """What hooks may read: the job, the parallel layout, the resolved init source."""

    job: StageJob
    layout: Any
    init: InitSource
    dirs: StageDirs
    resuming: bool  # a committed checkpoint of this stage exists: weights come from it
    say: Callable[[str], None]

    def history(self) -> list[dict[str, Any]]:
        """This stage's metrics lines so far (rank 0; empty elsewhere)."""
        return read_metrics(self.dirs.root / METRICS_FILE) if self.main else []

    @property
    def main(self) -> bool:
        return self.layout.rank == 0


class StageHooks(Protocol):
    """A stage kind. After `setup`, `model`, `optimizer` and `scheduler` are set. `position`,
    `restore`, `ready`, `evaluate_at_start`, `finish` and `close` are optional (`OPTIONAL`)."""

    prefix: str
    model: Any
    optimizer: Any
    scheduler: Any

    def setup(self, ctx: StageContext) -> int:
        """Build data, model and optimizer; return the stage's total steps."""

    def load_fresh(self, ctx: StageContext) -> None:
        """No checkpoint of this stage: load the init weights (`ctx.init`)."""

    def data_state(self) -> dict[str, Any]:
        """What identifies the data (compared on resume): fingerprint, sizes, batch, seed."""

    def position(self) -> dict[str, Any]:
        """Where the data stands beyond the step number (saved with every checkpoint)."""

    def restore(self, position: dict[str, Any]) -> None:
        """Resume the data where `position` says."""

    def ready(self, ctx: StageContext) -> None:
        """The weights are in place (fresh or resumed): last preparation before the first step
        (RL builds its reference model and generator and refits it here)."""

    def describe(self) -> str:
        """One line logged at start: data, steps, model."""

    def evaluate_at_start(self) -> dict[str, float] | None:
        """Held-out metrics before the first step (logged as step 0), or None."""

    def step(self, step: int, last: bool) -> dict[str, float]:
        """Train one step (and evaluate when due); the step's metrics line."""

    def finish(self, ctx: StageContext, total: int) -> dict[str, Any]:
        """After the last step: final evaluation and outputs; manifest extras."""

    def export(self, hf_dir: Path) -> None:
        """Write the HF export the next stage, vLLM and the evals read."""

    def manifest_extra(self) -> dict[str, Any]:
        """Kind-specific manifest fields (data summary, parameters, ...)."""

    def close(self) -> None:
        """Release what the hooks hold (generators, scorers)."""


# Hooks a kind may leave out, and what the skeleton does then.
OPTIONAL: dict[str, Any] = {"position": dict, "restore": lambda position: None, "ready": lambda ctx: None,
                            "evaluate_at_start": lambda: None, "finish": lambda ctx, total: {},
                            "close": lambda: None}


def _hook(hooks: Any, name: str) -> Callable[..., Any]:
    return getattr(hooks, name, None) or OPTIONAL[name]


def check_resume(saved: Mapping[str, Any], data: dict[str, Any], chash: str, allow_changed_data: bool,
                 where: Path, say: Callable[[str], None]) -> None:
    """Refuse to continue on other data (the step no longer says where the data stopped); warn
    when only the config changed. The same rule for every stage kind."""
    before = saved.get("data")
    if before and before != data:
        msg = (f"checkpoint {where} was trained on other data or batching: saved {before}, now {data}. "
               "The data order would not continue where it stopped.")
        if not allow_changed_data:
            raise DataChangedError(msg + " Restore the data, start in a new output_dir, or set "
                                   "train.resume_on_changed_data=true to continue anyway.")
        say("WARNING: " + msg + " Continuing (train.resume_on_changed_data=true).")
    if saved.get("config_hash") not in (None, chash):
        say(f"WARNING: the config differs from the one the checkpoint was trained with (hash "
            f"{saved['config_hash']} -> {chash}); continuing with the new one")


def _layout_json(layout: Any) -> dict[str, Any]:
    return {k: getattr(layout, k) for k in ("world_size", "tp", "pp", "vp", "cp", "dp")}


def run_training_stage(job: StageJob, hooks: StageHooks,
                       check: Callable[[Any], None] | None = None) -> int:
    """Run (or resume) the stage. 0: finished (final checkpoint, HF export, manifest);
    `preemption.REQUEUE_EXIT_CODE`: stopped on request after saving. `check(config)` refuses,
    before any rank starts, what the kind cannot run."""
    from cascade.engine import destroy_distributed, init_distributed

    cfg = job.config
    check_sinks_available(cfg.logging)
    if check is not None:
        check(cfg)
    preemption.install()  # idempotent; run-stage installed it already, before the recipe loaded
    with CLOCK.phase("setup"):
        layout = init_distributed(cfg.parallel, seed=cfg.train.seed, model=cfg.model)
    try:
        return _run(job, hooks, layout)
    finally:
        try:
            _hook(hooks, "close")()
        finally:
            destroy_distributed()


def _run(job: StageJob, hooks: StageHooks, layout: Any) -> int:  # noqa: PLR0915 (the skeleton, linear)
    from cascade.engine import Checkpointer, latest_checkpoint

    cfg, out = job.config, Path(job.output_dir)
    dirs, main = StageDirs(out), layout.rank == 0
    say = (lambda msg: print(f"[{hooks.prefix}] {msg}", flush=True)) if main else (lambda msg: None)
    init = resolve_init(job.init_from)
    chash = config_hash(cfg)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_config(out, cfg)
    ctx = StageContext(job, layout, init, dirs, latest_checkpoint(dirs.checkpoints) is not None, say)
    with CLOCK.phase("setup"):
        total = hooks.setup(ctx)
    ckpt = Checkpointer.from_config(dirs.checkpoints, hooks.model, hooks.optimizer, hooks.scheduler, cfg.checkpoint)
    with CLOCK.phase("load"):
        loaded = ckpt.load_latest() if ctx.resuming else None
    data_state = hooks.data_state()
    if loaded is not None:
        say(f"RESUMING from step {loaded.step} ({loaded.path}); optimizer restored: "
            f"{loaded.restored_optimizer}, RNG restored: {loaded.restored_rng}")
        check_resume(loaded.extra_state, data_state, chash, getattr(cfg.train, "resume_on_changed_data", False),
                     loaded.path, say)
        _hook(hooks, "restore")(loaded.extra_state.get("position", {}))
        if hooks.optimizer is not None and not loaded.restored_optimizer and loaded.step < total:
            say(f"WARNING: {loaded.path} holds no optimizer state (a finished stage's last checkpoint, "
                "checkpoint.final_weights_only): training continues with a fresh optimizer state")
    else:
        say(f"FRESH START from {init.format} weights at {init.path} (init_from {init.given})")
        with CLOCK.phase("load"):
            hooks.load_fresh(ctx)
    with CLOCK.phase("ready"):
        _hook(hooks, "ready")(ctx)
    say(hooks.describe())
    start = loaded.step if loaded else 0
    logger = MetricsLogger(out, cfg.logging, total_steps=total, resume_step=loaded.step if loaded else None,
                           rank=layout.rank, run_name=job.stage_name, config=to_dict(cfg), prefix=hooks.prefix)
    manifest = StageManifest(
        stage=job.stage_name, kind=cfg.kind.value, status="running", init_from=job.init_from,
        init_source=init.to_json(), config=job.config_path, config_hash=chash, steps_done=start,
        total_steps=total, final_checkpoint=str(loaded.path) if loaded else None, hf_export=None,
        tokenizer_dir=str(init.tokenizer_dir), metrics=str(out / METRICS_FILE), world_size=layout.world_size,
        layout=_layout_json(layout), extra={**hooks.manifest_extra(), "overrides": list(job.overrides)})
    with logger:
        if start == 0:
            with CLOCK.phase("start_eval"):
                first = _hook(hooks, "evaluate_at_start")()
            if first:
                logger.log(0, first)
        for step in range(start + 1, total + 1):
            last = step == total
            with CLOCK.phase("steps"):
                record = hooks.step(step, last)
            logger.log(step, record, step_seconds=record.get("step_time_s", record.get("time/step")))
            stop = preemption.should_stop()
            if stop or last or ckpt.should_save(step):
                with CLOCK.phase("checkpoint"):
                    path = ckpt.save(step, {"data": data_state, "position": _hook(hooks, "position")(),
                                            "config_hash": chash},
                                     weights_only=last and cfg.checkpoint.final_weights_only)
                manifest.steps_done, manifest.final_checkpoint = step, str(path)
            if stop and not last:
                manifest.status = "preempted"
                if main:
                    manifest.write(out)
                logger.info(f"stop requested: saved step {step}; exiting {preemption.REQUEUE_EXIT_CODE} to requeue")
                return preemption.REQUEUE_EXIT_CODE
        with CLOCK.phase("finish"):
            manifest.extra.update(_hook(hooks, "finish")(ctx, total))
        if cfg.checkpoint.export_hf:
            with CLOCK.phase("export"):
                hooks.export(dirs.hf)
            manifest.hf_export = str(dirs.hf)
            logger.info(f"HF export: {dirs.hf}")
        manifest.status = "complete"
        if main:
            manifest.write(out)
        logger.info(f"done: {total} steps; checkpoint {manifest.final_checkpoint}")
    return 0

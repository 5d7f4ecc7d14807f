"""The Cascade RL loop: one GRPO stage (RLHF, IF-RL, Math RL, Code RL, SWE RL differ by config).

Per step (C1 §4.1.2; strictly on-policy: the batch is sampled with the current weights, used for
one update, then the generator takes the new weights)::

    rounds of: prompts -> G seeded rollouts each -> rewards -> overlong rule     (rollout.py)
      until the batch is full of informative groups (dynamic sampling)         (cascade.rl.fill_batch)
    group-normalised advantages (tanh z-score shaping optional)                 (cascade.rl)
    trainer logprobs of the sampled tokens -> generator/trainer mismatch
    KL reference logprobs (loss.kl_coef > 0), old logprobs (num_minibatches > 1)
    one optimizer step per minibatch (engine train_step with the GRPO loss)     (rl_loss.py)
    refit: the generator takes the new weights                                  (refit.py)
    metrics line; checkpoint when due, on preemption and at the end

Resume: the checkpoint holds model, optimizer, scheduler, RNG and the data position (epoch,
index, pass-rate filter state); sampling seeds derive from (seed, step, round, slot), so a
resumed run regenerates the very batches an uninterrupted run would have.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from cascade.config import to_dict
from cascade.config.schema.rl import RLStageConfig
from cascade.data.tokenizer import load_tokenizer, pad_token_id
from cascade.engine import (
    Checkpointer,
    build_model,
    build_optimizer,
    build_scheduler,
    compute_logprobs,
    destroy_distributed,
    export_hf,
    init_distributed,
    split_global_batch,
    train_step,
)
from cascade.engine.batch import MicroBatch
from cascade.launch import preemption
from cascade.launch.stage_dirs import StageDirs
from cascade.rewards import build_scorer
from cascade.rl import FillResult, MismatchStats, fill_batch, group_advantages, mismatch_stats, step_metrics
from cascade.train import rl_setup as setup
from cascade.train.metrics_logger import METRICS_FILE, MetricsLogger, check_sinks_available
from cascade.train.refit import RolloutEngine, build_rollout_engine, trainer_weights
from cascade.train.rl_batch import GEN_LOGPROBS, OLD_LOGPROBS, REF_LOGPROBS, build_minibatches, response_stats
from cascade.train.rl_data import PromptStream, load_prompts
from cascade.train.rl_loss import LogitsTap, make_loss_fn
from cascade.train.rollout import Group, RolloutCollector
from cascade.train.stage_io import StageManifest, config_hash, resolve_init, write_config
from megatron.core import parallel_state as ps

PREFIX = "rl"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RLJob:
    """One RL stage: its validated config, what it starts from, where it writes, side inputs."""

    config: RLStageConfig
    init_from: str
    output_dir: Path
    stage_name: str = "rl"
    config_path: str | None = None
    overrides: tuple[str, ...] = ()
    uses: Mapping[str, Path] = field(default_factory=dict)  # e.g. {"reward_model": side stage dir}


def train_rl(job: RLJob) -> int:
    """Run (or resume) the stage: 0 when finished (final checkpoint, HF export, manifest),
    ``preemption.REQUEUE_EXIT_CODE`` after saving on a stop request."""
    check_sinks_available(job.config.logging)
    preemption.install()
    layout = init_distributed(job.config.parallel, seed=job.config.train.seed)
    trainer = None
    try:
        trainer = RLTrainer(job, layout)
        return trainer.run()
    finally:
        if trainer is not None:
            trainer.close()
        destroy_distributed()


def _mean_metrics(parts: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for p in parts for k in p})
    return {k: sum(p[k] for p in parts if k in p) / sum(k in p for p in parts) for k in keys}


class RLTrainer:
    """Holds the stage's model, optimizer, rollout engine, scorer and data stream."""

    def __init__(self, job: RLJob, layout: Any) -> None:
        cfg = self.cfg = job.config
        self.job, self.layout, self.out = job, layout, Path(job.output_dir)
        self.dirs = StageDirs(self.out)
        self.main = layout.rank == 0
        self.init = resolve_init(job.init_from)
        self.chash = config_hash(cfg)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_config(self.out, cfg)
        self.tokenizer = load_tokenizer(self.init.tokenizer_dir)
        self.pad_id = pad_token_id(self.tokenizer)
        encode = setup.prompt_encoder(self.tokenizer, cfg.data.template)
        self.stream = PromptStream(load_prompts(cfg.data.train_files), seed=cfg.train.seed,
                                   shuffle=cfg.data.shuffle, filters=cfg.filters,
                                   keep=setup.prompt_fits(encode, cfg))
        reward_cfg = setup.reward_config(cfg.reward, job.uses)
        self.scorer = build_scorer(reward_cfg)
        rm = reward_cfg.reward_model
        self.reward_model = (rm.endpoint or rm.checkpoint) if rm is not None else None

        self.model = build_model(cfg.model, cfg.parallel, cfg.precision,
                                 use_distributed_optimizer=cfg.optim.use_distributed_optimizer)
        self.opt = build_optimizer(self.model, cfg.optim, cfg.precision, cfg.parallel)
        self.sched = build_scheduler(self.opt, cfg.optim, cfg.scheduler,
                                     total_steps=cfg.train.steps * cfg.loss.num_minibatches)
        self.ckpt = Checkpointer.from_config(self.dirs.checkpoints, self.model, self.opt, self.sched, cfg.checkpoint)
        self.loaded = self.ckpt.load_latest()
        if self.loaded is None:
            setup.load_init(self.init, self.model, self.opt, cfg)
        else:
            self.stream.load_state_dict(self.loaded.extra_state["data"])
        self.start = self.loaded.step if self.loaded else 0
        self.reference = setup.build_reference(cfg, self.init)

        gen_dir = setup.rollout_hf_dir(self.init, self.model, cfg, self.out)
        self.engine: RolloutEngine = build_rollout_engine(setup.generator_config(cfg, gen_dir, layout.world_size))
        self._refit()  # the generator starts from exactly the trainer's weights (fresh or resumed)
        self.collector = RolloutCollector(cfg, self.engine.generator, self.scorer, self.stream, encode,
                                          gen_tp=cfg.rollout.tensor_parallel,
                                          chunk_groups=setup.stream_chunk_groups(cfg, layout.world_size))
        self.logger = MetricsLogger(self.out, cfg.logging, total_steps=cfg.train.steps, resume_step=self.loaded.step
                                    if self.loaded else None, rank=layout.rank, run_name=job.stage_name,
                                    config=to_dict(cfg), prefix=job.stage_name or PREFIX)
        self.manifest = StageManifest(
            stage=job.stage_name, kind=cfg.kind.value, status="running", init_from=job.init_from,
            init_source=self.init.to_json(), config=job.config_path, config_hash=self.chash,
            steps_done=self.start, total_steps=cfg.train.steps,
            final_checkpoint=str(self.loaded.path) if self.loaded else None, hf_export=None,
            tokenizer_dir=str(self.init.tokenizer_dir), metrics=str(self.out / METRICS_FILE),
            world_size=layout.world_size,
            layout={k: getattr(layout, k) for k in ("world_size", "tp", "pp", "vp", "cp", "dp")},
            extra={"prompts": len(self.stream.records), "reward_domain": cfg.reward.domain.value,
                   "reward_model": self.reward_model,
                   "rollout_backend": cfg.rollout.backend, "overrides": list(job.overrides)})

    # ---- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        if self.loaded is not None:
            self.logger.info(f"RESUMING from step {self.loaded.step} ({self.loaded.path}); data {self.stream.state_dict()}")
            if self.loaded.extra_state.get("config_hash") not in (None, self.chash):
                self.logger.info(f"WARNING: the config differs from the checkpoint's (hash "
                                 f"{self.loaded.extra_state['config_hash']} -> {self.chash}); continuing with the new one")
        else:
            self.logger.info(f"FRESH START from {self.init.format} weights at {self.init.path}")
        self.logger.info(f"{len(self.stream.records)} prompts; {cfg.rollout.prompts_per_step} x "
                         f"{cfg.rollout.num_generations} rollouts per step; reward {cfg.reward.domain.value}"
                         f"{f' ({self.reward_model})' if self.reward_model else ''}; generator {cfg.rollout.backend}")
        for step in range(self.start + 1, cfg.train.steps + 1):
            t0 = time.perf_counter()
            metrics = self.step(step)
            metrics["time/step"] = time.perf_counter() - t0
            self.logger.log(step, metrics, step_seconds=metrics["time/step"])
            last = step == cfg.train.steps
            stop = preemption.should_stop()
            if stop or last or self.ckpt.should_save(step):
                path = self.ckpt.save(step, {"data": self.stream.state_dict(), "config_hash": self.chash})
                self.manifest.steps_done, self.manifest.final_checkpoint = step, str(path)
            if stop and not last:
                self.manifest.status = "preempted"
                if self.main:
                    self.manifest.write(self.out)
                self.logger.info(f"stop requested: saved step {step}; exiting {preemption.REQUEUE_EXIT_CODE} to requeue")
                return preemption.REQUEUE_EXIT_CODE
        if cfg.checkpoint.export_hf:
            export_hf(self.model, self.dirs.hf, cfg.model, tokenizer_dir=self.init.tokenizer_dir)
            self.manifest.hf_export = str(self.dirs.hf)
        self.manifest.status = "complete"
        if self.main:
            self.manifest.write(self.out)
        self.logger.info(f"done: {cfg.train.steps} steps; checkpoint {self.manifest.final_checkpoint}")
        return 0

    def step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        self.collector.begin_step(step)
        t0 = time.perf_counter()
        fill = fill_batch(self.collector.round, cfg.rollout.prompts_per_step, cfg.filters)
        rollout_s = time.perf_counter() - t0
        self.engine.offload()
        t1 = time.perf_counter()
        train = self._update(fill)
        t2 = time.perf_counter()
        self._refit()
        t3 = time.perf_counter()
        timing = self.collector.current.timing
        timings = {"generation": timing.generation_s, "reward": timing.reward_exposed_s,
                   "reward_busy": timing.reward_busy_s, "rollout": rollout_s, "train": t2 - t1, "refit": t3 - t2}
        return self._metrics(fill, train, timings)

    # ---- update -------------------------------------------------------------------------------
    def _minibatches(self, groups: list[Group], advantages: torch.Tensor, num_minibatches: int) -> list[MicroBatch]:
        mbs = self.cfg.train.micro_batch_size
        return build_minibatches(groups, advantages, num_minibatches=num_minibatches, pad_id=self.pad_id,
                                 row_multiple=mbs * ps.get_data_parallel_world_size(),
                                 seq_multiple=setup.sequence_multiple(self.cfg.parallel))

    def _skipped(self, why: str) -> dict[str, float]:
        """No update this step; the mismatch is still measured, on every generated rollout."""
        self.logger.info(f"{why}: optimizer step skipped")
        generated = self.collector.current.groups
        zeros = torch.zeros(len(generated), self.cfg.rollout.num_generations)
        out = {"update/skipped": 1.0}
        for batch in self._minibatches(generated, zeros, 1):
            out.update(self._mismatch(split_global_batch(batch, self.cfg.train.micro_batch_size)))
        return out

    def _update(self, fill: FillResult[Group]) -> dict[str, float]:
        cfg, mbs = self.cfg, self.cfg.train.micro_batch_size
        if not fill.groups:
            return self._skipped("no informative group this step")
        adv = group_advantages(fill.rewards, cfg.loss, valid=fill.valid)
        minibatches = self._minibatches(fill.groups, adv, cfg.loss.num_minibatches)
        minibatches = [m for m in minibatches if m.loss_mask.sum() > 0]  # same on every rank
        if not minibatches:
            return self._skipped("every rollout of the batch was skipped (overlong)")
        local = [split_global_batch(m, mbs) for m in minibatches]
        flat = [mb for part in local for mb in part]
        # with one minibatch the training forward is the pre-update policy: the mismatch is read from it
        free = cfg.loss.num_minibatches == 1
        out = {} if free else self._mismatch(flat)
        self._attach_logprobs(flat)
        loss_fn_tap = LogitsTap(self.model)
        try:
            loss_fn = make_loss_fn(cfg.loss, temperature=cfg.rollout.temperature, tap=loss_fn_tap, mismatch=free)
            steps = [train_step(self.model, self.opt, self.sched, part, loss_fn, temperature=cfg.rollout.temperature)
                     for part in local]
        finally:
            loss_fn_tap.close()
        out.update(_mean_metrics(steps))
        out["update/skipped"] = 0.0
        out["update/optimizer_steps"] = float(len(steps))
        return out

    def _mismatch(self, flat: list[MicroBatch]) -> dict[str, float]:
        """Generator vs trainer logprobs of the sampled tokens, before the update (same weights)."""
        train_lp = compute_logprobs(self.model, flat, temperature=1.0)
        stats = MismatchStats()
        for lp, mb in zip(train_lp, flat):
            stats = stats.merge(mismatch_stats(lp.cpu(), mb.extra[GEN_LOGPROBS], mb.loss_mask))
        sums = torch.tensor([stats.sum_mult_prob_error, stats.sum_abs_diff, stats.count], dtype=torch.float64)
        top = torch.tensor([stats.max_abs_diff], dtype=torch.float64)
        if ps.get_data_parallel_world_size() > 1:
            dev = train_lp[0].device
            sums, top = sums.to(dev), top.to(dev)
            dist.all_reduce(sums, group=ps.get_data_parallel_group())
            dist.all_reduce(top, op=dist.ReduceOp.MAX, group=ps.get_data_parallel_group())
        total = MismatchStats(float(sums[0]), float(sums[1]), float(sums[2]), float(top[0]))
        return total.as_metrics()

    def _attach_logprobs(self, flat: list[MicroBatch]) -> None:
        """Reference logprobs (KL) and old logprobs (PPO ratios for num_minibatches > 1)."""
        cfg, temp = self.cfg, self.cfg.rollout.temperature
        if self.reference is not None:
            for lp, mb in zip(compute_logprobs(self.reference, flat, temperature=temp), flat):
                mb.extra[REF_LOGPROBS] = lp.cpu()
        if cfg.loss.num_minibatches > 1:
            if temp == 1.0:  # the generator's raw logprobs are the behaviour policy's
                for mb in flat:
                    mb.extra[OLD_LOGPROBS] = mb.extra[GEN_LOGPROBS]
            else:  # the generator reports temperature-1 logprobs; the behaviour policy is π/T
                for lp, mb in zip(compute_logprobs(self.model, flat, temperature=temp), flat):
                    mb.extra[OLD_LOGPROBS] = lp.cpu()

    def _refit(self) -> None:
        self.engine.refit(trainer_weights(self.model, self.cfg.model))
        self.engine.onload()

    # ---- metrics ------------------------------------------------------------------------------
    def _metrics(self, fill: FillResult[Group], train: dict[str, float], timings: dict[str, float]) -> dict[str, float]:
        generated = self.collector.current.groups
        raw = torch.tensor([r for g in generated for r in g.raw_rewards], dtype=torch.float64)
        domains = [g.record.domain.value for g in generated for _ in g.samples]
        lengths, truncated = response_stats(generated)
        extra: dict[str, float] = dict(train)
        n_rollouts = max(1, raw.numel())
        extra["reward/error_frac"] = sum(g.errors for g in generated) / n_rollouts
        for mode in sorted({g.mode.value for g in generated}):
            sel = [r for g in generated if g.mode.value == mode for r in g.raw_rewards]
            extra[f"reward/mode_{mode}/mean"] = sum(sel) / len(sel)
        if fill.groups:
            kept = fill.rewards[fill.valid]
            extra["reward/trained_mean"] = float(kept.mean()) if kept.numel() else 0.0
        extra["filter/rounds"] = float(fill.rounds)
        extra["filter/groups_kept"] = float(len(fill.groups))
        extra["filter/batch_filled"] = float(fill.filled)
        extra["filter/rollouts_skipped"] = float((~fill.valid).sum()) if fill.groups else 0.0
        extra["data/epoch"] = float(self.stream.epoch)
        extra.update(self.stream.pop_epoch_stats())
        return step_metrics(rewards=raw, response_lengths=lengths, truncated=truncated, domains=domains,
                            groups_generated=fill.generated_groups, groups_dropped=fill.dropped_groups,
                            extra=extra, timings=timings)

    def close(self) -> None:
        for closer in (getattr(self, "engine", None), getattr(self, "scorer", None),
                       getattr(self, "logger", None)):
            if closer is not None:
                try:
                    closer.close()
                except Exception as e:  # noqa: BLE001 - shutting down: report, keep closing the rest
                    log.warning("closing %s failed: %s", type(closer).__name__, e)

"""Cascade RL hooks: one GRPO stage (RLHF, IF-RL, Math RL, Code RL, SWE RL differ by config).
The loop, checkpoints, preemption and the manifest are the stage runtime's
(``run_training_stage``); this module is what one RL step does.

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
resumed run regenerates the very batches an uninterrupted run would have. The prompt set's
fingerprint is checked on resume like every stage's data.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from megatron.core import parallel_state as ps

from cascade.data.tokenizer import load_tokenizer, pad_token_id
from cascade.engine import (
    build_model,
    build_optimizer,
    build_scheduler,
    compute_logprobs,
    export_hf,
    forward_backward,
    split_global_batch,
    train_step,
)
from cascade.engine.batch import MicroBatch
from cascade.generation.refit import RolloutEngine, build_rollout_engine, trainer_weights
from cascade.rewards import build_scorer
from cascade.rl import FillResult, MismatchStats, fill_batch, group_advantages, mismatch_stats, setup, step_metrics
from cascade.rl.batch import (
    GEN_LOGPROBS,
    OLD_LOGPROBS,
    REF_LOGPROBS,
    build_minibatches,
    every_sampled,
    left_out_weight,
    response_stats,
    zero_advantage_rows,
)
from cascade.rl.data import PromptStream, load_prompts
from cascade.rl.filters import read_handoff, write_handoff
from cascade.rl.loss_fn import LogitsTap, make_loss_fn
from cascade.rl.rollout import Group, RolloutCollector

PREFIX = "rl"
log = logging.getLogger(__name__)


def _mean_metrics(parts: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for p in parts for k in p})
    return {k: sum(p[k] for p in parts if k in p) / sum(k in p for p in parts) for k in keys}


class RLHooks:
    """The RL stage kind for ``run_training_stage``: model, optimizer, generator, scorer, prompts."""

    prefix = PREFIX

    def __init__(self) -> None:
        self.model = self.optimizer = self.scheduler = None
        self.engine: RolloutEngine | None = None
        self.scorer = None

    def setup(self, ctx: Any) -> int:
        job = ctx.job
        cfg = self.cfg = job.config
        self.ctx, self.layout, self.init = ctx, ctx.layout, ctx.init
        self.prefix = job.stage_name or PREFIX
        self.tokenizer = load_tokenizer(self.init.tokenizer_dir)
        self.pad_id = pad_token_id(self.tokenizer)
        self.encode = setup.prompt_encoder(self.tokenizer, cfg.data.template)
        self.stream = PromptStream(load_prompts(cfg.data.train_files), seed=cfg.train.seed,
                                   shuffle=cfg.data.shuffle, filters=cfg.filters,
                                   keep=setup.prompt_fits(self.encode, cfg))
        if cfg.reward is not None:  # MOPD scores nothing
            setup.check_routed_domains(cfg.reward, self.stream.records)
        self.scorer, self.reward_model = self._scorer(job)
        self.model = build_model(cfg.model, cfg.parallel, cfg.precision,
                                 use_distributed_optimizer=cfg.optim.use_distributed_optimizer)
        self.optimizer = build_optimizer(self.model, cfg.optim, cfg.precision, cfg.parallel)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.scheduler,
                                         total_steps=cfg.train.steps * cfg.loss.num_minibatches)
        return cfg.train.steps

    def _scorer(self, job: Any) -> tuple[Any, str | None]:
        """The reward scorer and the reward model it calls (endpoint or checkpoint; None)."""
        reward_cfg = setup.reward_config(self.cfg.reward, job.uses)
        rm = reward_cfg.reward_model
        return build_scorer(reward_cfg), ((rm.endpoint or rm.checkpoint) if rm is not None else None)

    def load_fresh(self, ctx: Any) -> None:
        setup.load_init(self.init, self.model, self.optimizer, self.cfg)
        rate = self.cfg.filters.epoch_pass_rate
        if rate is not None and rate.carry_over:  # one curriculum over sub-stages (C1 Table 17)
            self.stream.load_state_dict(read_handoff(self.init.given, self.data_state()["fingerprint"]))
            ctx.say(f"prompt stream carried over from {self.init.given}: epoch {self.stream.epoch}, "
                    f"index {self.stream.index}")

    def data_state(self) -> dict[str, Any]:
        h = hashlib.sha256()
        for r in self.stream.records:
            h.update(str(r.id).encode())
            h.update(b"\x00")
        return {"fingerprint": h.hexdigest()[:16], "prompts": len(self.stream.records), "seed": self.cfg.train.seed,
                "prompts_per_step": self.cfg.rollout.prompts_per_step}

    def position(self) -> dict[str, Any]:
        return self.stream.state_dict()

    def restore(self, position: dict[str, Any]) -> None:
        self.stream.load_state_dict(position)

    def ready(self, ctx: Any) -> None:
        """Reference model, generator (refit from exactly the trainer's weights, fresh or resumed)."""
        cfg = self.cfg
        self.reference = setup.build_reference(cfg, self.init)
        gen_dir = setup.rollout_hf_dir(self.init, self.model, cfg, ctx.dirs.root)
        self.engine = build_rollout_engine(setup.generator_config(cfg, gen_dir, self.layout.world_size))
        self._refit()
        self.collector = RolloutCollector(cfg, self.engine.generator, self.scorer, self.stream, self.encode,
                                          gen_tp=cfg.rollout.tensor_parallel,
                                          chunk_groups=setup.stream_chunk_groups(cfg, self.layout.world_size))

    def describe(self) -> str:
        cfg = self.cfg
        return (f"{len(self.stream.records)} prompts; {cfg.rollout.prompts_per_step} x "
                f"{cfg.rollout.num_generations} rollouts per step; reward {cfg.reward.label}"
                f"{f' ({self.reward_model})' if self.reward_model else ''}; generator backend={cfg.rollout.backend}; "
                f"data {self.stream.state_dict()}")

    def evaluate_at_start(self) -> dict[str, float] | None:
        return None

    def finish(self, ctx: Any, total: int) -> dict[str, Any]:
        if self.cfg.filters.epoch_pass_rate is not None and self.layout.rank == 0:  # for a carry_over stage
            write_handoff(ctx.dirs.root, self.stream.state_dict(), self.data_state()["fingerprint"])
        return {}

    def export(self, hf_dir: Path) -> None:
        export_hf(self.model, hf_dir, self.cfg.model, tokenizer_dir=self.init.tokenizer_dir)

    def manifest_extra(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"prompts": len(self.stream.records), "reward_domain": cfg.reward.label,
                "reward_model": self.reward_model, "rollout_backend": cfg.rollout.backend}

    # ---- one step -----------------------------------------------------------------------------
    def step(self, step: int, last: bool = False) -> dict[str, float]:
        cfg = self.cfg
        t_step = time.perf_counter()
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
        metrics = self._metrics(fill, train, timings)
        metrics["time/step"] = time.perf_counter() - t_step
        return metrics

    # ---- update -------------------------------------------------------------------------------
    def _minibatches(self, groups: list[Group], advantages: torch.Tensor, num_minibatches: int,
                     skip_zero_advantage: str | None = None) -> list[MicroBatch]:
        mbs = self.cfg.train.micro_batch_size
        return build_minibatches(groups, advantages, num_minibatches=num_minibatches, pad_id=self.pad_id,
                                 row_multiple=mbs * ps.get_data_parallel_world_size(),
                                 seq_multiple=setup.sequence_multiple(self.cfg.parallel),
                                 skip_zero_advantage=skip_zero_advantage)

    def _skipped(self, why: str) -> dict[str, float]:
        """No update this step; the mismatch is still measured on the generated rollouts: those that
        would take part in a loss (as on a training step), or, when overlong filtering skipped every
        one of them, on all their sampled tokens (the minibatch builder leaves skipped rollouts out,
        so measuring only the valid ones would report nothing). The same decision on every rank:
        every rank holds every group."""
        generated = self.collector.current.groups
        zeros = torch.zeros(len(generated), self.cfg.rollout.num_generations)
        batches, measured = self._minibatches(generated, zeros, 1), "its valid rollouts"
        if not batches:
            batches, measured = self._minibatches(every_sampled(generated), zeros, 1), "its overlong rollouts"
        self.ctx.say(f"{why}: optimizer step skipped; mismatch measured on {measured}"
                     if batches else f"{why}: optimizer step skipped; no sampled token to measure the mismatch on")
        out = {"update/skipped": 1.0}
        for batch in batches:
            out.update(self._mismatch(self._local(batch)))
        if not batches:  # every rollout came back empty (the prompt filled the context): no evidence
            out.update(MismatchStats().as_metrics())
        return out

    def _update(self, fill: FillResult[Group]) -> dict[str, float]:
        cfg = self.cfg
        if not fill.groups:
            return self._skipped("no informative group this step")
        adv = group_advantages(fill.rewards, cfg.loss, valid=fill.valid)
        minibatches = self._minibatches(fill.groups, adv, cfg.loss.num_minibatches, cfg.loss.zero_advantage_skip())
        # same on every rank; a minibatch of zero-advantage rows only still takes its optimizer step
        minibatches = [m for m in minibatches if m.loss_mask.sum() > 0 or left_out_weight(m) > 0]
        if not minibatches:
            return self._skipped("every rollout of the batch was skipped (overlong)")
        local = [self._local(m) if m.loss_mask.sum() > 0 else [] for m in minibatches]
        flat = [mb for part in local for mb in part]
        # with one minibatch the training forward is the pre-update policy: the mismatch is read from it
        free = cfg.loss.num_minibatches == 1
        t_logprobs = time.perf_counter()
        if not flat:  # no row trains (all advantages 0): a forward of every row reads the same metrics
            every = [mb for m in self._minibatches(fill.groups, adv, 1) for mb in self._local(m)]
            out = self._forward_metrics(every) if free else self._mismatch(every)
        else:
            out = {} if free else self._mismatch(flat)
            self._attach_logprobs(flat)
        out["time/logprobs"] = time.perf_counter() - t_logprobs  # forwards before the update (part of time/train)
        loss_fn_tap = LogitsTap(self.model)
        try:
            loss_fn = make_loss_fn(cfg.loss, temperature=cfg.rollout.temperature, tap=loss_fn_tap, mismatch=free)
            steps = [train_step(self.model, self.optimizer, self.scheduler, part, loss_fn,
                                temperature=cfg.rollout.temperature)
                     for part in local]
        finally:
            loss_fn_tap.close()
        out.update(_mean_metrics(steps))
        out["update/skipped"] = 0.0
        out["update/zero_advantage_rows"] = float(zero_advantage_rows(fill.groups, adv))
        out["update/rows_left_out"] = out["update/zero_advantage_rows"] if cfg.loss.zero_advantage_skip() else 0.0
        out["update/optimizer_steps"] = float(len(steps))
        return out

    def _forward_metrics(self, flat: list[MicroBatch]) -> dict[str, float]:
        """The loss's metrics (entropy, mismatch, ...) from a forward without backward."""
        tap = LogitsTap(self.model)
        try:
            fn = make_loss_fn(self.cfg.loss, temperature=self.cfg.rollout.temperature, tap=tap, mismatch=True)
            with torch.no_grad():
                return forward_backward(self.model, flat, fn, forward_only=True,
                                        temperature=self.cfg.rollout.temperature)
        finally:
            tap.close()

    def _local(self, batch: MicroBatch) -> list[MicroBatch]:
        """This rank's micro-batches, each cut to its longest rollout (rows differ in length)."""
        return split_global_batch(batch, self.cfg.train.micro_batch_size,
                                  trim_multiple=setup.sequence_multiple(self.cfg.parallel))

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
        if self.cfg.filters.mask_unsolved_below is not None:
            extra["filter/groups_unsolved_masked"] = float(sum(g.unsolved_masked for g in fill.groups))
        extra["data/epoch"] = float(self.stream.epoch)
        extra.update(self.stream.pop_epoch_stats())
        return step_metrics(rewards=raw, response_lengths=lengths, truncated=truncated, domains=domains,
                            groups_generated=fill.generated_groups, groups_dropped=fill.dropped_groups,
                            extra=extra, timings=timings)

    def close(self) -> None:
        for closer in (getattr(self, "engine", None), getattr(self, "scorer", None)):
            if closer is not None:
                try:
                    closer.close()
                except Exception as e:  # noqa: BLE001 - shutting down: report, keep closing the rest
                    log.warning("closing %s failed: %s", type(closer).__name__, e)

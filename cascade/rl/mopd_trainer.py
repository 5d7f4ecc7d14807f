"""MOPD hooks (Cascade-2 stage 3): the RL stage's hooks with the distillation loss in place of GRPO.

What is the RL stage's, unchanged (``RLHooks``): the prompt stream and its resume position, the
student model and optimizer, on-policy rollouts through the rollout engine (colocated vLLM or
transformers, refit with the new weights after every step), checkpoints, HF export, timings.
What MOPD adds, per step (C2 §4.4)::

    rollouts of the current student (no reward scoring: the teacher is the signal)
    each example -> its domain's teacher (route_to_teachers; teachers with one checkpoint share a model)
    teacher log-probs of the student's sampled tokens: a forward-only Megatron model per teacher
        checkpoint, built like the RL reference model and loaded once per job
    one optimizer step on mopd_loss: reverse-KL advantage a_t = log π_teacher − log π_train on the
        sampled token, truncated IS weight π_train/π_inf in [is_eps_low, is_eps_high]
    metrics: reverse KL overall and per domain, IS weight, truncated fraction, rows per teacher

Which checkpoint teaches which domain is decided once, in ``setup``, by ``cascade.rl.teachers``;
the evidence joins the data fingerprint (a resume on changed evidence is refused) and the manifest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cascade.config.schema.side import MOPDLossConfig
from cascade.engine import build_model, compute_logprobs, loss_rows, split_global_batch, token_logprobs, train_step
from cascade.engine.batch import MicroBatch
from cascade.engine.device import current_device
from cascade.rewards import RewardResult
from cascade.rl import FillResult, mopd_loss, route_to_teachers, setup, teachers
from cascade.rl.aggregation import metric
from cascade.rl.batch import GEN_LOGPROBS, SEQ_TOKENS
from cascade.rl.loss_fn import LogitsTap, _normalizer, mismatch_metrics
from cascade.rl.rollout import Group
from cascade.rl.trainer import RLHooks

PREFIX = "mopd"
TEACHER_LOGPROBS = "teacher_logprobs"
TEACHER_ID = "teacher_id"  # [rows, 1]: index into the step's teacher list; -1 for padding rows
DOMAIN_ID = "domain_id"  # [rows, 1]: index into the step's domain list; -1 for padding rows


class NoReward:
    """MOPD scores no rollout: the collector's scorer slot returns 0 for every row."""

    def score(self, rows: Any) -> list[RewardResult]:
        return [RewardResult(0.0) for _ in rows]

    def close(self) -> None:
        pass


def frozen_model(cfg: Any, source: Any) -> list:
    """A forward-only Megatron model of ``source`` (an InitSource), loaded like the RL reference."""
    model = build_model(cfg.model, cfg.parallel, cfg.precision, wrap_ddp=False)
    setup.load_init(source, model, None, cfg)
    for chunk in model:
        chunk.requires_grad_(False)
    return model


def place(model: list, device: torch.device) -> None:
    """Move a forward-only model's parameters and buffers (teacher offload; no-op where it is)."""
    for chunk in model:
        chunk.to(device)


def row_ids(groups: list[Group], per_group: list[int], rows: int) -> torch.Tensor:
    """Per training row, its group's id (``per_group``), in ``build_minibatches``' row order (the
    rollouts that take part, group by group); padding rows get -1. ``[rows, 1]``."""
    ids = [i for g, i in zip(groups, per_group) for s, v in zip(g.samples, g.valid) if v and len(s.token_ids) > 0]
    out = torch.full((rows, 1), -1, dtype=torch.long)
    out[: len(ids), 0] = torch.tensor(ids, dtype=torch.long)
    return out


def make_mopd_loss_fn(cfg: MOPDLossConfig, *, temperature: float, domains: list[str], tap: LogitsTap | None):
    """The engine ``LossFn`` of a MOPD step. Teacher and generator log-probs travel in
    ``MicroBatch.extra``. The generator reports temperature-1 log-probs, so at another sampling
    temperature the IS ratio compares the trainer's temperature-1 log-probs (from the same logits,
    ``tap``) with them; at T = 1 (the paper's) it is π_train/π_inf directly."""

    def loss_fn(logprobs: torch.Tensor, mb: MicroBatch) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        gen = mb.extra[GEN_LOGPROBS]
        if temperature != 1.0 and tap is not None:
            with torch.no_grad():  # a copy: Megatron's cross entropy works in place
                rows = mb.loss_mask.bool()
                raw = tap.pop_rows(rows).detach().clone()
                at_t1 = loss_rows.scatter(token_logprobs(raw[None], mb.labels[rows][None])[0], rows)
            inference = gen + (logprobs.detach() - at_t1)  # log r_t = at_t1 − gen
        else:
            at_t1, inference = logprobs.detach(), gen
        counts = mb.extra[SEQ_TOKENS] if cfg.aggregation == "sequence" else None
        teacher = mb.extra[TEACHER_LOGPROBS]
        out = mopd_loss(logprobs, teacher, inference, mb.loss_mask, cfg, seq_token_counts=counts)
        metrics = dict(out.metrics)
        metrics.update(mismatch_metrics(at_t1, gen, mb.loss_mask))
        valid = mb.loss_mask.bool()
        reverse = logprobs.detach().float() - teacher.float()
        for i, domain in enumerate(domains):
            metrics[f"mopd/reverse_kl/{domain}"] = metric(reverse, valid & (mb.extra[DOMAIN_ID] == i))
        return out.loss_sum, _normalizer(out.normalizer, counts), metrics

    return loss_fn


class MOPDHooks(RLHooks):
    """The MOPD stage kind for ``run_training_stage``. ``stage_dirs``: output dirs of the stages the
    teachers compare, beyond the job's ``uses`` (standalone ``--stage NAME=DIR``)."""

    prefix = PREFIX

    def __init__(self, stage_dirs: Mapping[str, Path] | None = None) -> None:
        super().__init__()
        self.extra_stage_dirs = dict(stage_dirs or {})
        self.teacher_models: dict[str, list] = {}

    # ---- setup --------------------------------------------------------------------------------
    def setup(self, ctx: Any) -> int:
        cfg = ctx.job.config
        # first the cheap, file-only decision: a missing eval stops the stage before any model is built
        self.choices = teachers.select_teachers(cfg.mopd.teachers, {**dict(ctx.job.uses), **self.extra_stage_dirs})
        total = super().setup(ctx)
        self.prefix = ctx.job.stage_name or PREFIX
        teachers.check_domains(self.choices, {r.domain for r in self.stream.records})
        self.keys = teachers.teacher_keys(self.choices)
        self.routes = {d.value: c.key for d, c in self.choices.items()}
        for line in self.teacher_lines():
            ctx.say(line)
        return total

    def _scorer(self, job: Any) -> tuple[Any, str | None]:
        return NoReward(), None

    def teacher_lines(self) -> list[str]:
        return [f"teacher {c.describe()}" for c in self.choices.values()]

    def data_state(self) -> dict[str, Any]:
        return {**super().data_state(), "teachers": teachers.evidence_fingerprint(self.choices)}

    def ready(self, ctx: Any) -> None:
        super().ready(ctx)  # generator (refit from the student's weights) and rollout collector
        by_key = {c.key: c for c in self.choices.values()}
        for key in self.keys:
            t0 = time.perf_counter()
            self.teacher_models[key] = frozen_model(self.cfg, by_key[key].init)
            if self._offload:
                place(self.teacher_models[key], torch.device("cpu"))
            ctx.say(f"teacher {by_key[key].label} loaded ({by_key[key].init.format} {key}) in "
                    f"{time.perf_counter() - t0:.1f} s")

    def describe(self) -> str:
        cfg = self.cfg
        return (f"MOPD: {len(self.stream.records)} prompts; {cfg.rollout.prompts_per_step} x "
                f"{cfg.rollout.num_generations} rollouts per step; {len(self.keys)} teacher model(s) for "
                f"{len(self.choices)} domain(s); generator backend={cfg.rollout.backend}; data {self.stream.state_dict()}")

    def manifest_extra(self) -> dict[str, Any]:
        return {"prompts": len(self.stream.records), "rollout_backend": self.cfg.rollout.backend,
                "teachers": teachers.evidence(self.choices),
                "teachers_fingerprint": teachers.evidence_fingerprint(self.choices)}

    # ---- update -------------------------------------------------------------------------------
    def _update(self, fill: FillResult[Group]) -> dict[str, float]:
        cfg, mbs = self.cfg, self.cfg.train.micro_batch_size
        if not fill.groups:
            return self._skipped("no rollout this step")
        domains_of = [g.record.domain.value for g in fill.groups]
        routes = route_to_teachers(domains_of, self.routes)
        # teacher by teacher, so a micro-batch mostly needs one teacher's forward
        order = [i for key in self.keys for i in routes.get(key, [])]
        groups = [fill.groups[i] for i in order]
        zeros = torch.zeros(len(groups), cfg.rollout.num_generations)
        batches = [m for m in self._minibatches(groups, zeros, 1) if m.loss_mask.sum() > 0]
        if not batches:
            return self._skipped("every rollout of the batch was skipped (overlong)")
        batch = batches[0]
        present = sorted(set(domains_of))
        batch.extra[TEACHER_ID] = row_ids(groups, [self.keys.index(self.routes[g.record.domain.value]) for g in groups],
                                          batch.batch_size)
        batch.extra[DOMAIN_ID] = row_ids(groups, [present.index(g.record.domain.value) for g in groups],
                                         batch.batch_size)
        flat = split_global_batch(batch, mbs)
        t0 = time.perf_counter()
        self._attach_teacher_logprobs(flat)
        teacher_s = time.perf_counter() - t0
        temp = cfg.rollout.temperature
        tap = LogitsTap(self.model) if temp != 1.0 else None
        try:
            loss_fn = make_mopd_loss_fn(cfg.mopd.loss, temperature=temp, domains=present, tap=tap)
            out = train_step(self.model, self.optimizer, self.scheduler, flat, loss_fn, temperature=temp)
        finally:
            if tap is not None:
                tap.close()
        out["update/skipped"] = 0.0
        out["update/optimizer_steps"] = 1.0
        out["time/teacher"] = teacher_s
        rows = batch.extra[TEACHER_ID][:, 0]
        for k, key in enumerate(self.keys):
            out[f"mopd/teacher_rows/{self._teacher_name(key)}"] = float((rows == k).sum())
        for domain in present:
            teacher = self._teacher_name(self.routes[domain])
            out[f"mopd/domain_rows/{domain}"] = float(sum(len(g.samples) for g in groups
                                                          if g.record.domain.value == domain))
            out[f"mopd/teacher_of/{domain}/{teacher}"] = 1.0
        return out

    @property
    def _offload(self) -> bool:
        """Teacher offload applies where the model lives on an accelerator."""
        return self.cfg.mopd.offload_teachers and current_device().type != "cpu"

    def _teacher_name(self, key: str) -> str:
        labels = [c.label for c in self.choices.values() if c.key == key]
        return Path(labels[0]).name if labels else key

    def _attach_teacher_logprobs(self, flat: list[MicroBatch]) -> None:
        """Each row's teacher log-probs of its sampled tokens: per teacher, a forward over the
        micro-batches holding any of its rows (the same decision on every rank of a model-parallel
        group: they hold the same micro-batches)."""
        temp = self.cfg.rollout.temperature
        for mb in flat:
            mb.extra[TEACHER_LOGPROBS] = torch.zeros(mb.labels.shape, dtype=torch.float32)
        for k, key in enumerate(self.keys):
            mine = [mb for mb in flat if bool((mb.extra[TEACHER_ID] == k).any())]
            if not mine:
                continue
            teacher = self.teacher_models[key]
            if self._offload:
                place(teacher, current_device())
            try:
                logprobs = compute_logprobs(teacher, mine, temperature=temp)
            finally:
                if self._offload:
                    place(teacher, torch.device("cpu"))
            for lp, mb in zip(logprobs, mine):
                rows = (mb.extra[TEACHER_ID][:, 0] == k)
                mb.extra[TEACHER_LOGPROBS][rows] = lp.float().cpu()[rows]

    # ---- metrics ------------------------------------------------------------------------------
    def _metrics(self, fill: FillResult[Group], train: dict[str, float], timings: dict[str, float]) -> dict[str, float]:
        out = super()._metrics(fill, train, timings)
        # no reward is scored: the RL reward lines would all read 0
        return {k: v for k, v in out.items() if not k.startswith("reward/") and k != "time/reward_busy"}

    def close(self) -> None:
        self.teacher_models.clear()
        super().close()

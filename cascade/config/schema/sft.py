"""SFT stage schema (C1 §3.2, Table 14)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cascade.config.schema.common import ChatMode, EngineSections
from cascade.config.schema.kinds import StageKind, register_stage_schema


@dataclass(frozen=True)
class SFTDataConfig:
    train_files: list[str] = field(default_factory=list)  # parquet/jsonl in the released SFT schema
    val_files: list[str] = field(default_factory=list)
    seq_length: int = 16384
    packing: bool = True
    template: Literal["cascade1", "cascade2"] = "cascade1"
    # answer modes trained (null: all). C1 §3.4: a thinking-only model trains on thinking answers only;
    # rows in other modes are skipped and counted, a safety net under data_prep's --modes thinking blend
    modes: list[ChatMode] | None = None
    epochs: float = 1.0  # passes over the data; sets the step count when train.steps is 0
    max_rows: int | None = None  # read at most this many training rows (toy runs, smoke tests)
    max_val_rows: int | None = None  # read at most this many held-out rows

    def __post_init__(self) -> None:
        if self.seq_length < 1:
            raise ValueError("seq_length must be positive")
        if self.epochs <= 0:
            raise ValueError("epochs must be positive")
        if self.modes is not None and (not self.modes or ChatMode.HALF_HALF in self.modes):
            raise ValueError("modes must list 'thinking' and/or 'instruct' (or be null for all)")
        for name in ("max_rows", "max_val_rows"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or null for all rows)")


@dataclass(frozen=True)
class SFTTrainConfig:
    global_batch_size: int = 256
    # what global_batch_size counts: packed rows, or conversations (C1 Table 14's 256): then each step
    # takes the packed rows that hold that many conversations on average (cascade/sft/trainer.py)
    batch_unit: Literal["rows", "samples"] = "rows"
    micro_batch_size: int = 1
    steps: int = 1  # optimizer steps (the LR horizon unless scheduler.decay_steps); 0: as data.epochs give
    seed: int = 1234
    eval_interval: int = 0  # 0: evaluate held-out loss only at the end
    eval_at_start: bool = True  # held-out loss before the first step (logged as step 0)
    resume_on_changed_data: bool = False  # resume even if the packed data differ from the checkpoint's

    def __post_init__(self) -> None:
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError("global_batch_size must be a multiple of micro_batch_size")
        if self.steps < 0 or self.eval_interval < 0:
            raise ValueError("steps and eval_interval must be >= 0")


@register_stage_schema(StageKind.SFT)
@dataclass(frozen=True, kw_only=True)
class SFTStageConfig(EngineSections):
    kind: StageKind = StageKind.SFT
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    train: SFTTrainConfig = field(default_factory=SFTTrainConfig)

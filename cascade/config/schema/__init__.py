"""Typed config schemas; importing this package registers every stage kind's schema."""

from cascade.config.schema import mopd, rl, sft, side  # noqa: F401  (registration side effects)
from cascade.config.schema.common import (
    ChatMode,
    CheckpointConfig,
    EngineSections,
    LoggingConfig,
    ModelConfig,
    ModelFamily,
    OptimConfig,
    ParallelConfig,
    PrecisionConfig,
    RopeScaling,
    SchedulerConfig,
)
from cascade.config.schema.kinds import StageKind, register_stage_schema, schema_for
from cascade.config.schema.mopd import MOPDStageConfig
from cascade.config.schema.rl import CodeSwitchPenalty, RewardDomain, RLStageConfig
from cascade.config.schema.sft import SFTStageConfig
from cascade.config.schema.side import RewardModelStageConfig

__all__ = [
    "ChatMode",
    "CheckpointConfig",
    "CodeSwitchPenalty",
    "EngineSections",
    "LoggingConfig",
    "MOPDStageConfig",
    "ModelConfig",
    "ModelFamily",
    "OptimConfig",
    "ParallelConfig",
    "PrecisionConfig",
    "RLStageConfig",
    "RewardDomain",
    "RewardModelStageConfig",
    "RopeScaling",
    "SFTStageConfig",
    "SchedulerConfig",
    "StageKind",
    "register_stage_schema",
    "schema_for",
]

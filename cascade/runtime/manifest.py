"""A training stage's record on disk: the resolved config it trained with (`config.json`) and
the `stage_manifest.json` a finished (or preempted) stage leaves for the next stage and the tests.

Stage output directory (`stage_dirs.StageDirs` owns the layout and the markers)::

    <output_dir>/checkpoints/          Megatron dist checkpoints (engine Checkpointer; resumed from)
    <output_dir>/hf/                   HF export of the final weights (safetensors, config, tokenizer)
    <output_dir>/metrics.jsonl         one JSON line per step (metrics_logger)
    <output_dir>/tensorboard/          TensorBoard events
    <output_dir>/config.json           the resolved stage config this run trained with
    <output_dir>/stage_manifest.json   stage, kind, init source, config hash, steps, outputs

What `init_from` may name: `cascade.engine.init_source`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cascade.config import to_dict
from cascade.engine.init_source import MANIFEST, read_manifest
from cascade.fileio import atomic_write_text

CONFIG_FILE = "config.json"

__all__ = ["CONFIG_FILE", "MANIFEST", "StageManifest", "config_hash", "read_manifest", "write_config"]


def config_hash(config: Any) -> str:
    """Stable short hash of a resolved config (dataclass), for manifests and resume checks."""
    text = json.dumps(to_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_config(output_dir: Path, config: Any) -> None:
    """The resolved config, as this run trained it (rank 0)."""
    atomic_write_text(Path(output_dir) / CONFIG_FILE, json.dumps(to_dict(config), indent=2, default=str) + "\n")


@dataclass
class StageManifest:
    """`<output_dir>/stage_manifest.json`: the hand-off record of one stage (rank 0 writes it at
    preemption and at the end). `final_checkpoint` is what the next stage loads."""

    stage: str
    kind: str
    status: Literal["running", "preempted", "complete"]
    init_from: str
    init_source: dict[str, str]
    config: str | None
    config_hash: str
    steps_done: int
    total_steps: int
    final_checkpoint: str | None
    hf_export: str | None
    tokenizer_dir: str
    metrics: str
    world_size: int
    layout: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # trainer-specific (data, held-out loss, ...)
    updated_at: float = 0.0

    def write(self, output_dir: str | Path) -> Path:
        self.updated_at = time.time()
        path = Path(output_dir) / MANIFEST
        atomic_write_text(path, json.dumps(asdict(self), indent=2, default=str) + "\n")
        return path



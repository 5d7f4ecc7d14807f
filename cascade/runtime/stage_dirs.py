"""The on-disk state of one stage, shared by the launcher, the recipes and the status command.

    <output_dir>/
      checkpoints/                      the checkpoint root (cascade.engine.checkpoint.Checkpointer)
      checkpoints/iter_0000100/         a committed checkpoint (iter_N.partial/: being written)
      checkpoints/latest                text: the name of the newest committed checkpoint
      hf/                               HF export of the final weights (vLLM, evals, next stage)
      evals/                            eval results of the finished checkpoint
      TRAINED                           training finished (JSON); a requeue then only re-runs eval
      COMPLETE                          the stage is done (JSON); the next stage starts from here

Markers are written atomically (temp file + rename), so a reader never sees half a marker and a
killed job never leaves one behind.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade import fileio
from cascade.engine.init_source import CHECKPOINTS_DIR, HF_DIR
from cascade.fileio import atomic_write_text

COMPLETE = "COMPLETE"
TRAINED = "TRAINED"
LATEST = fileio.LATEST
__all__ = ["COMPLETE", "LATEST", "TRAINED", "StageDirs", "atomic_write_text"]


@dataclass(frozen=True)
class StageDirs:
    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def hf(self) -> Path:
        return self.root / HF_DIR

    @property
    def evals(self) -> Path:
        return self.root / "evals"

    def is_complete(self) -> bool:
        return (self.root / COMPLETE).is_file()

    def is_trained(self) -> bool:
        return (self.root / TRAINED).is_file()

    def latest_step(self) -> int | None:
        """Step of the checkpoint a (re)start resumes from, or None: a fresh start. The same
        rule as the engine's (`cascade.fileio.read_latest`), without importing torch."""
        try:
            latest = fileio.read_latest(self.checkpoints)
        except FileNotFoundError:
            return None  # a pointer with nothing committed: the engine refuses; run-stage says so
        return fileio.checkpoint_step(latest) if latest is not None else None

    def record_checkpoint(self, step: int) -> None:
        """Commit iter_<step> (its `cascade_meta.json`) and point `latest` at it. The engine's
        Checkpointer does this itself; recipes that save by other means call it after every
        rank finished writing."""
        step_dir = self.checkpoints / f"iter_{step:07d}"
        if not (step_dir / fileio.CKPT_META).is_file():
            atomic_write_text(step_dir / fileio.CKPT_META, json.dumps({"step": step, "saved_at": time.time()}) + "\n")
        fileio.write_latest(self.checkpoints, step_dir)

    def _mark(self, name: str, info: dict[str, Any]) -> None:
        atomic_write_text(self.root / name, json.dumps({"time": time.time(), **info}, indent=2) + "\n")

    def mark_trained(self, info: dict[str, Any]) -> None:
        self._mark(TRAINED, info)

    def mark_complete(self, info: dict[str, Any]) -> None:
        self._mark(COMPLETE, info)

    def read_marker(self, name: str = COMPLETE) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

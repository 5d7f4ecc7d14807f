"""Inputs a stage will read that do not exist yet (base model directories, data files), found at
plan / dry-run time so a user learns before the job starts, not when it fails on the node.

Paths as the stage reads them: `init_path`/`run_dir` from the cascade (absolute after resolution),
`data.*_files` relative to the working directory of the command (the repo root for the launchers).
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from cascade.stages import CascadePlan

DATA_FIELDS = ("train_files", "val_files")


def _exists(path: str) -> bool:
    if "://" in path:  # a remote URL: not ours to check here
        return True
    return bool(glob.glob(path)) if any(c in path for c in "*?[") else Path(path).exists()


def missing_inputs(plan: CascadePlan, configs: dict[str, Any]) -> list[str]:
    """One warning per missing path (with the stages that read it), for the stages in `configs`."""
    readers: dict[tuple[str, str], list[str]] = {}
    for stage in plan.stages:
        if stage.name not in configs:
            continue
        if stage.init_stage is None:
            readers.setdefault(("base model", stage.init_from), []).append(stage.name)
        data = getattr(configs[stage.name], "data", None)
        for name in DATA_FIELDS:
            for path in getattr(data, name, None) or ():
                readers.setdefault((f"data.{name}", str(path)), []).append(stage.name)
    return [f"WARNING: {what} {path} does not exist yet (read by {', '.join(stages)})"
            for (what, path), stages in readers.items() if not _exists(path)]

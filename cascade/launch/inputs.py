"""Inputs a stage will read that do not exist yet (base model directories, data files), found at
plan / dry-run time so a user learns before the job starts, not when it fails on the node.

Paths as the stage reads them: one rule, a relative path is relative to the repository root
(`init_path`/`run_dir` are resolved so by cascade/stages.py; run-stage works from the repo root, so
`data.*_files` are read so too). File references inside YAMLs (`defaults:`, a cascade's `config:`)
are relative to the YAML that names them.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from cascade.stages import REPO_ROOT, CascadePlan

DATA_FIELDS = ("train_files", "val_files")


def _exists(path: str) -> bool:
    if "://" in path:  # a remote URL: not ours to check here
        return True
    path = str(REPO_ROOT / Path(path).expanduser())  # an absolute path stays as it is
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

"""Helpers shared by the data_prep tests (imported by name; tests/ has no packages)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, rows: list[Any], extra_lines: tuple[str, ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        for line in extra_lines:  # malformed lines appended on purpose
            f.write(line + "\n")
    return path


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def step(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in manifest["steps"] if s["name"] == name)


# Decontamination settings that keep unit tests quick: a small offline index, one process.
FAST_DECONTAM = ["--eval-sets", "aime24,aime25,math500,humaneval,ifbench", "--workers", "1"]

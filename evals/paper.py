"""The paper's published per-stage numbers (paper_numbers.yaml) and how our stages map onto them.

Our cascades split paper stages (SFT 16K -> 32K, IF-RL 1 -> 2, Math RL 24K -> 32K -> 40K, SWE RL
16K -> 24K); the paper reports each group once, after its last sub-stage, so a published number is
shown beside the last of our stages in its group (matched by name prefix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

NUMBERS_FILE = Path(__file__).resolve().parent / "paper_numbers.yaml"
STAGE_GROUPS = (  # (paper stage, our stage-name pattern)
    ("sft", re.compile(r"^sft")),
    ("rlhf", re.compile(r"^rlhf")),
    ("if_rl", re.compile(r"^if_rl")),
    ("math_rl", re.compile(r"^math_rl")),
    ("code_rl", re.compile(r"^code_rl")),
    ("swe_rl", re.compile(r"^swe_rl")),
)
MODEL_BY_CASCADE = {"nemotron_cascade_8b": "8b", "nemotron_cascade_8b_thinking": "8b_thinking",
                    "nemotron_cascade_14b_thinking": "14b_thinking"}


@dataclass(frozen=True)
class PaperNumbers:
    model: str  # key in paper_numbers.yaml `models`
    model_title: str
    source: str
    by_stage: dict[str, dict[str, float]]  # our stage name -> benchmark -> published value


@lru_cache(maxsize=1)
def load_numbers() -> dict:
    return yaml.safe_load(NUMBERS_FILE.read_text())


def paper_group(stage_name: str) -> str | None:
    for group, pattern in STAGE_GROUPS:
        if pattern.match(stage_name):
            return group
    return None


def paper_numbers_for(model: str, stage_names: list[str]) -> PaperNumbers:
    """Published values placed on our stages: each paper stage on the last of our stages in it."""
    data = load_numbers()
    if model not in data["models"]:
        raise KeyError(f"no published numbers for {model!r}; known: {sorted(data['models'])}")
    last_of: dict[str, str] = {}
    for name in stage_names:
        group = paper_group(name)
        if group:
            last_of[group] = name
    by_stage: dict[str, dict[str, float]] = {}
    for group, stage in last_of.items():
        col = data["stages"].index(group)
        by_stage[stage] = {bench: row[model][col] for bench, row in data["benchmarks"].items()
                           if row.get(model) and row[model][col] is not None}
    return PaperNumbers(model, data["models"][model], data["source"], by_stage)

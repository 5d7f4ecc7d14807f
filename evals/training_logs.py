"""Training curves the report plots, read from each stage's `metrics.jsonl`.

Format (written by the RL trainer, one JSON object per line, appended as steps finish):
    {"step": 12, "reward/mean": 0.41, "response_length/mean": 812.5, ...any other keys}
`step` counts from the stage's start. A resumed stage may log a step twice: the last line wins.
Lines that do not parse (a torn last line after a kill) are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
STEP_KEY = "step"
REWARD_KEY = "reward/mean"
LENGTH_KEY = "response_length/mean"
CURVE_KEYS = (REWARD_KEY, LENGTH_KEY)
# what a stage's training moved, by the first key it logged: RL reward, SFT held-out loss, MOPD's
# sampled-token reverse KL to its teachers
SUMMARY_KEYS = (REWARD_KEY, "val/loss", "mopd/reverse_kl")
EDGE = 2  # steps averaged at each end (single RL steps are noisy)


def read_metrics(stage_dir: Path) -> list[dict]:
    """The stage's logged steps in step order (empty when it has no metrics.jsonl)."""
    path = stage_dir / METRICS_FILE
    if not path.is_file():
        return []
    by_step: dict[int, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            by_step[int(row[STEP_KEY])] = row
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return [by_step[s] for s in sorted(by_step)]


@dataclass(frozen=True)
class TrainingSummary:
    """A stage's headline training metric at its start and at its end."""

    key: str
    steps: int
    first: float  # mean over the first EDGE logged values (step 0 = before training, for val/loss)
    last: float  # mean over the last EDGE


def summarize(rows: list[dict]) -> TrainingSummary | None:
    """The first SUMMARY_KEYS metric the stage logged, averaged over its first and last steps."""
    for key in SUMMARY_KEYS:
        values = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if not values:
            continue
        n = min(EDGE, len(values) // 2) or 1
        steps = max(int(r[STEP_KEY]) for r in rows)
        return TrainingSummary(key, steps, sum(values[:n]) / n, sum(values[-n:]) / n)
    return None

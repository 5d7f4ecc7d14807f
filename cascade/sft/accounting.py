"""SFT batch, step and epoch accounting: what one optimizer step consumes, and how many steps.

Why its own module: C1 Table 14 counts its global batch (256) in conversations and trains each
stage one epoch (§3.2) in 20K-41K steps, while the trainer packs conversations into fixed-length
rows. With ``train.batch_unit: samples`` a step takes the packed rows that hold
``global_batch_size`` conversations on average (rows x batch / conversations, rounded to the
data-parallel multiple), so ``train.steps`` of the paper walk the data about once, as the paper's
did; with ``rows`` the batch counts packed rows as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPlan:
    rows_per_step: int  # packed rows per optimizer step (what GlobalBatches draws)
    steps: int  # optimizer steps of the stage
    passes: float  # passes over the packed rows those steps make
    samples_per_step: float  # conversations per step, on average


def batch_plan(*, global_batch_size: int, batch_unit: str, steps: int, epochs: float, samples: int, rows: int,
               multiple: int) -> BatchPlan:
    """``samples`` conversations packed into ``rows`` rows; ``multiple`` = micro batch x DP size;
    ``steps`` 0 derives the steps from ``epochs``."""
    if samples < 1 or rows < 1 or multiple < 1:
        raise ValueError(f"need samples, rows and multiple >= 1 (got {samples}, {rows}, {multiple})")
    if batch_unit == "samples":
        per_sample = rows / samples  # packed rows per conversation (1 without packing)
        rows_per_step = max(multiple, multiple * round(global_batch_size * per_sample / multiple))
        total = steps or max(1, math.floor(samples * epochs / global_batch_size))
    elif batch_unit == "rows":
        rows_per_step = global_batch_size
        total = steps or max(1, math.floor(rows * epochs / global_batch_size))
    else:
        raise ValueError(f"batch_unit must be 'rows' or 'samples', got {batch_unit!r}")
    return BatchPlan(rows_per_step, total, total * rows_per_step / rows, rows_per_step * samples / rows)

"""The SFT LR schedule's horizon (C1 Table 14: cosine over "Max Steps" 100K while training stops at
20K-41K steps): the LR at the last step follows the cosine formula over the horizon, not over the
stage's steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cascade.config import load_stage_config
from cascade.config.schema.common import SchedulerConfig
from cascade.engine.optim import build_scheduler

ROOT = Path(__file__).resolve().parents[2]
SFT_YAMLS = {
    "qwen3_8b/sft_stage1_16k.yaml": (20_000, 5e-5),
    "qwen3_8b/sft_stage2_32k.yaml": (32_000, 2e-5),
    "qwen3_14b/sft_stage1_16k.yaml": (22_000, 5e-5),
    "qwen3_14b/sft_stage2_32k.yaml": (41_000, 2e-5),
}


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def _lr_of_last_update(cfg, total: int) -> float:
    """LR the last (total-th) update uses: Megatron's k-th update uses lr(k-1)."""
    sched = build_scheduler(_optimizer(), cfg.optim, cfg.scheduler, total_steps=total)
    sched.step(increment=total - 1)
    return sched.optimizer.param_groups[0]["lr"]


def _cosine(step: int, peak: float, low: float, warmup: int, horizon: int) -> float:
    ratio = (step - warmup) / (horizon - warmup)
    return low + (peak - low) * 0.5 * (1.0 + math.cos(math.pi * ratio))


@pytest.mark.parametrize("name", sorted(SFT_YAMLS))
def test_shipped_sft_lr_at_last_step_follows_the_100k_cosine(name: str) -> None:
    cfg = load_stage_config(ROOT / "nemo_configs" / name)
    steps, peak = SFT_YAMLS[name]
    assert cfg.train.steps == steps and cfg.optim.lr == peak
    assert cfg.scheduler.type == "cosine" and cfg.scheduler.decay_steps == 100_000
    lr = _lr_of_last_update(cfg, cfg.train.steps)
    want = _cosine(steps - 1, peak, cfg.optim.min_lr, cfg.scheduler.warmup_steps, 100_000)
    assert lr == pytest.approx(want, rel=1e-12)
    # far from the floor: 8B stage 1 ends at 0.91 of its peak, 8B stage 2 at 0.77, 14B stage 2 at 0.64
    assert 0.6 * peak < lr < 0.92 * peak


def test_without_a_horizon_the_cosine_reaches_min_lr_at_the_last_step() -> None:
    cfg = load_stage_config(ROOT / "nemo_configs/qwen3_8b/sft_stage1_16k.yaml", ["scheduler.decay_steps=0"])
    total = 1_000
    lr = _lr_of_last_update(cfg, total)
    want = _cosine(total - 1, cfg.optim.lr, 0.0, cfg.scheduler.warmup_steps, total)
    assert lr == pytest.approx(want, rel=1e-12)
    assert lr < 1e-4 * cfg.optim.lr


def test_past_the_horizon_the_lr_stays_at_min_lr() -> None:
    cfg = load_stage_config(ROOT / "nemo_configs/qwen3_8b/sft_stage1_16k.yaml",
                            ["scheduler.decay_steps=500", "optim.min_lr=1.0e-6"])
    assert _lr_of_last_update(cfg, 2_000) == pytest.approx(1e-6)


@pytest.mark.parametrize("kwargs", [{"decay_steps": -1}, {"warmup_steps": 200, "decay_steps": 200}])
def test_impossible_horizons_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SchedulerConfig(**kwargs)

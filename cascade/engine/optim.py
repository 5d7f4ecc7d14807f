"""Optimizer (Megatron's AdamW, distributed across DP when configured) and the LR schedule.

Why here: the optimizer must be wired into the model config so the pipeline schedules call
Megatron's ``finalize_model_grads`` (DP reduction, tied-embedding sync, per-token loss
normalisation) and the loss scaler; forgetting that silently trains each DP rank on its own.
The schedule counts optimizer steps (not samples), with Megatron's convention: the k-th update
uses lr(k-1), so the first update uses ``warmup_start_lr``; linear warm-up to ``optim.lr`` at
``warmup_steps``, then cosine/linear decay to ``min_lr`` at ``scheduler.decay_steps`` (default
``total_steps``; a longer horizon stops the decay part-way, as C1 Table 14 does), or constant.
"""

from __future__ import annotations

from collections.abc import Sequence

from megatron.core.distributed import DistributedDataParallel, finalize_model_grads
from megatron.core.optimizer import MegatronOptimizer, OptimizerConfig, get_megatron_optimizer
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
from megatron.core.transformer.module import MegatronModule
from megatron.core.utils import get_model_config

from cascade.config.schema.common import (
    OptimConfig,
    ParallelConfig,
    PrecisionConfig,
    SchedulerConfig,
)
from cascade.engine.precision import resolve_precision


def optimizer_config(
    optim: OptimConfig, precision: PrecisionConfig, parallel: ParallelConfig
) -> OptimizerConfig:
    """Megatron OptimizerConfig for AdamW with decoupled weight decay."""
    if optim.name != "adamw":
        raise ValueError(f"optim.name={optim.name!r}: only adamw is supported")
    plan = resolve_precision(precision, parallel)
    return OptimizerConfig(
        optimizer="adam",
        decoupled_weight_decay=True,  # AdamW
        lr=optim.lr,
        min_lr=optim.min_lr,
        weight_decay=optim.weight_decay,
        adam_beta1=optim.adam_beta1,
        adam_beta2=optim.adam_beta2,
        adam_eps=optim.adam_eps,
        clip_grad=optim.clip_grad,
        bf16=plan.bf16,
        fp16=plan.fp16,
        params_dtype=plan.params_dtype,
        use_distributed_optimizer=optim.use_distributed_optimizer,
        fp8_recipe=plan.fp8_recipe,
    )


def build_optimizer(
    model: Sequence[MegatronModule],
    optim: OptimConfig,
    precision: PrecisionConfig,
    parallel: ParallelConfig,
) -> MegatronOptimizer:
    """Megatron optimizer over the DDP-wrapped chunks, hooked into the pipeline schedules."""
    if not all(isinstance(m, DistributedDataParallel) for m in model):
        raise TypeError("build_optimizer needs DDP-wrapped chunks (build_model(wrap_ddp=True))")
    want = optim.use_distributed_optimizer
    have = model[0].ddp_config.use_distributed_optimizer
    if want != have:
        raise ValueError(
            f"optim.use_distributed_optimizer={want} but the model was wrapped with {have}: "
            "pass the same value to build_model(use_distributed_optimizer=...)"
        )
    optimizer = get_megatron_optimizer(optimizer_config(optim, precision, parallel), list(model))
    cfg = get_model_config(model[0])
    cfg.finalize_model_grads_func = finalize_model_grads
    cfg.grad_scale_func = optimizer.scale_loss
    if model[0].ddp_config.overlap_grad_reduce:
        no_sync = [m.no_sync for m in model]
        cfg.no_sync_func = no_sync[0] if len(no_sync) == 1 else no_sync
    return optimizer


def build_scheduler(
    optimizer: MegatronOptimizer,
    optim: OptimConfig,
    scheduler: SchedulerConfig,
    total_steps: int,
) -> OptimizerParamScheduler:
    """Megatron's LR/WD scheduler, counting optimizer steps."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if scheduler.warmup_start_lr > optim.lr:
        raise ValueError("scheduler.warmup_start_lr must not exceed optim.lr")
    # the decay's horizon: scheduler.decay_steps when set (C1 Table 14: 100K), else the stage's steps
    decay_steps = max(scheduler.decay_steps or total_steps, scheduler.warmup_steps + 1)
    return OptimizerParamScheduler(
        optimizer,
        init_lr=scheduler.warmup_start_lr,
        max_lr=optim.lr,
        min_lr=optim.min_lr,
        lr_warmup_steps=scheduler.warmup_steps,
        lr_decay_steps=decay_steps,
        lr_decay_style=scheduler.type,
        start_wd=optim.weight_decay,
        end_wd=optim.weight_decay,
        wd_incr_steps=decay_steps,
        wd_incr_style="constant",
    )

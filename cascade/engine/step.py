"""Forward/backward through Megatron's pipeline schedules: masked-token loss, per-token logprobs,
and one optimizer step over a global batch.

Why one path for every layout: ``get_forward_backward_func`` picks the no-pipeline, 1F1B or
interleaved schedule from the parallel state, so PP=1 and PP>1 (with virtual stages) run the same
code. Losses are sums over tokens with the global token count passed to Megatron
(``calculate_per_token_loss``), so TP/PP/DP/micro-batching all give the same gradient.

A loss function receives ``(logprobs, micro_batch)`` on the last pipeline stage, where
``logprobs[b, t] = log p(labels[b, t])`` (with gradient, after an optional temperature), and
returns ``(loss_sum, num_tokens, metrics)``; each metric is a tensor ``[sum, count]`` that is
summed over micro-batches and data-parallel ranks and reported as ``sum / count``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.distributed as dist
from megatron.core import parallel_state as ps
from megatron.core import tensor_parallel
from megatron.core.optimizer import MegatronOptimizer
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.transformer.module import MegatronModule

from cascade.engine import loss_rows
from cascade.engine.batch import (
    MicroBatch,
    attention_inputs,
    gather_context_parallel,
    slice_for_context_parallel,
)
from cascade.engine.device import current_device
from cascade.engine.model import eval_mode

LossOutput = tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]
LossFn = Callable[[torch.Tensor, MicroBatch], LossOutput]


def masked_nll(logprobs: torch.Tensor, mb: MicroBatch) -> LossOutput:
    """Summed negative log-likelihood over the loss-mask tokens (SFT)."""
    mask = mb.loss_mask.float()
    loss_sum = -(logprobs * mask).sum()
    n = mask.sum()
    return loss_sum, n.to(torch.int), {"lm_loss": torch.stack([loss_sum.detach(), n])}


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(label) per token from vocab-parallel logits ``[b, s, V/TP]`` (differentiable)."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return -tensor_parallel.vocab_parallel_cross_entropy(logits, labels)


def _forward_step(loss_fn: LossFn, temperature: float, loss_rows_only: bool, data_iterator, model):  # noqa: ANN001
    mb: MicroBatch = slice_for_context_parallel(next(data_iterator).to(current_device()))
    mask, packed = attention_inputs(mb)
    rows = loss_rows.selection(model, mb.loss_mask) if loss_rows_only else None
    with loss_rows.only(model, rows):  # the output layer projects the loss positions only
        output = model(mb.tokens, mb.position_ids, mask, packed_seq_params=packed)

    def loss_func(logits: torch.Tensor) -> LossOutput:
        if rows is None:
            return loss_fn(token_logprobs(logits, mb.labels, temperature), mb)
        picked = token_logprobs(logits, mb.labels[rows][None], temperature)[0]  # logits [1, n, V/TP]
        return loss_fn(loss_rows.scatter(picked, rows), mb)

    return output, loss_func


def _iterators(model: Sequence[MegatronModule], microbatches: Sequence[MicroBatch]):
    if len(model) == 1:
        return iter(microbatches)
    return [iter(microbatches) for _ in model]  # interleaved schedule: one iterator per chunk


def _reduce_metrics(per_mb: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Sum [sum, count] metrics over micro-batches and DP(+CP) ranks; share with every rank."""
    names = sorted(per_mb[0]) if per_mb else []
    dev = current_device()
    last = ps.get_pipeline_model_parallel_last_rank()
    pp_group = ps.get_pipeline_model_parallel_group()
    if ps.get_pipeline_model_parallel_world_size() > 1:  # only the last stage has the metrics
        obj = [names]
        dist.broadcast_object_list(obj, src=last, group=pp_group)
        names = obj[0]
    totals = torch.zeros(len(names), 2, dtype=torch.float64, device=dev)
    for m in per_mb:
        for i, k in enumerate(names):
            totals[i] += m[k].detach().to(dev, torch.float64)
    if ps.is_pipeline_last_stage(ignore_virtual=True):
        dist.all_reduce(totals, group=ps.get_data_parallel_group(with_context_parallel=True))
    if ps.get_pipeline_model_parallel_world_size() > 1:
        dist.broadcast(totals, src=last, group=pp_group)
    return {k: float(totals[i, 0] / totals[i, 1].clamp(min=1)) for i, k in enumerate(names)}


def forward_backward(
    model: Sequence[MegatronModule],
    microbatches: Sequence[MicroBatch],
    loss_fn: LossFn = masked_nll,
    *,
    forward_only: bool = False,
    temperature: float = 1.0,
    loss_rows_only: bool = True,
) -> dict[str, float]:
    """Run every micro-batch forward (and backward unless ``forward_only``); grads accumulate in
    the DDP buffers and are reduced/normalised by Megatron's finalize hook. Returns the reduced
    metrics of ``loss_fn`` on every rank. ``loss_fn`` gets logprobs that are valid where
    ``loss_mask`` is set (0 elsewhere with ``loss_rows_only``: ``cascade.engine.loss_rows``)."""
    if not microbatches:
        raise ValueError("forward_backward needs at least one micro-batch")
    first = microbatches[0]
    losses = get_forward_backward_func()(
        forward_step_func=partial(_forward_step, loss_fn, temperature, loss_rows_only),
        data_iterator=_iterators(model, microbatches),
        model=list(model),
        num_microbatches=len(microbatches),
        seq_length=first.seq_length,  # Megatron divides by CP (and by TP under SP) itself
        micro_batch_size=first.batch_size,
        forward_only=forward_only,
    )
    return _reduce_metrics(list(losses) if ps.is_pipeline_last_stage(ignore_virtual=True) else [])


def train_step(
    model: Sequence[MegatronModule],
    optimizer: MegatronOptimizer,
    scheduler: OptimizerParamScheduler,
    microbatches: Sequence[MicroBatch],
    loss_fn: LossFn = masked_nll,
    *,
    temperature: float = 1.0,
    loss_rows_only: bool = True,
) -> dict[str, float]:
    """One optimizer step over a global batch (this rank's micro-batches), with grad clipping
    and the LR schedule. Returns loss metrics plus ``grad_norm``, ``lr`` and ``update_ok``.

    No micro-batches (on every rank: a batch whose rows all have zero gradient, such as RL rows
    with zero advantage) is the step a forward/backward of them would give: the optimizer and the
    schedule step with zero gradients, without running the model."""
    for chunk in model:
        chunk.zero_grad_buffer()
    optimizer.zero_grad()
    metrics = forward_backward(model, microbatches, loss_fn, temperature=temperature,
                               loss_rows_only=loss_rows_only) if microbatches else {}
    ok, grad_norm, _ = optimizer.step()
    lr = optimizer.param_groups[0]["lr"]
    if ok:
        scheduler.step(increment=1)
    metrics.update(grad_norm=float(grad_norm) if grad_norm is not None else float("nan"),
                   lr=float(lr), update_ok=float(bool(ok)))
    return metrics


def compute_logprobs(
    model: Sequence[MegatronModule],
    microbatches: Sequence[MicroBatch],
    *,
    temperature: float = 1.0,
) -> list[torch.Tensor]:
    """Per-token ``log p(labels)`` ``[b, s]`` for each micro-batch, without gradient, returned on
    every rank (RL: old-policy and reference logprobs)."""
    captured: list[torch.Tensor] = []

    def capture(logprobs: torch.Tensor, mb: MicroBatch) -> LossOutput:
        captured.append(logprobs.detach())
        zero = logprobs.new_zeros(())
        return zero, torch.zeros((), dtype=torch.int), {}

    with eval_mode(model), torch.no_grad():
        get_forward_backward_func()(
            forward_step_func=partial(_forward_step, capture, temperature, False),  # every position
            data_iterator=_iterators(model, microbatches),
            model=list(model),
            num_microbatches=len(microbatches),
            seq_length=microbatches[0].seq_length,
            micro_batch_size=microbatches[0].batch_size,
            forward_only=True,
        )
    out = []
    last = ps.get_pipeline_model_parallel_last_rank()
    for i, mb in enumerate(microbatches):
        local_len = mb.seq_length // ps.get_context_parallel_world_size()
        t = captured[i] if captured else torch.empty(mb.batch_size, local_len, device=current_device())
        if ps.get_pipeline_model_parallel_world_size() > 1:
            dist.broadcast(t, src=last, group=ps.get_pipeline_model_parallel_group())
        out.append(gather_context_parallel(t, mb.seq_length))
    return out

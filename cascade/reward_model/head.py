"""The reward model on the engine: a Megatron GPTModel backbone whose LM head is replaced by a
linear scalar head, run through Megatron's pipeline schedules, and exported for the scorer.

Why replace ``output_layer`` instead of adding a module beside it: GPTModel's last stage calls
``self.output_layer(hidden, weight=..., runtime_gather_output=...)`` on the final-norm hidden
states and returns its output transposed to ``[b, s, ...]``, and everything built around the model
(DDP grad buffers, the optimizer, the sharded checkpoint under ``output_layer.weight``) sees the
head as an ordinary parameter. So the head is ``RewardHead`` (weight ``[1, hidden]``, no bias: the
Bradley-Terry loss ignores a bias), the vocabulary-sized LM head is never kept, and the per-token
scores ``[b, s]`` are read at each row's last token. Tying flags are cleared
(``share_embeddings_and_output_weights``): the RM has no output embedding to tie.

Order of construction: build the chunks unwrapped, load the backbone (HF import or a Megatron
checkpoint, while the original output layer still exists), attach the head, then wrap in
Megatron DDP. The head starts as ``N(0, 1/(hidden+1))`` (OpenRLHF's value-head init) drawn
from its own generator seeded by ``train.seed``: the same on every rank and layout. Not zero: Adam
moves each head weight by about lr per step, so at the paper's lr 2e-6 a zero head stays ~1e-3
small for the whole epoch and rewards hardly react to the backbone (measured on the 2-layer
SmolLM2 test backbone: held-out margin 0.002 after 10 steps even at lr 1e-4).

Export (the format ``cascade.rewards.reward_model.LocalRewardModel`` loads): the backbone as an
HF causal-LM directory (``export_hf`` with the head detached; no ``lm_head``) plus
``reward_head.safetensors`` holding ``weight [1, hidden]``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from megatron.core import parallel_state as ps
from megatron.core.distributed import DistributedDataParallel
from megatron.core.optimizer import MegatronOptimizer
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.tensor_parallel import gather_from_sequence_parallel_region
from megatron.core.tensor_parallel.layers import set_defaults_if_not_set_tensor_model_parallel_attributes
from megatron.core.transformer.module import MegatronModule
from megatron.core.utils import get_model_config

from cascade.engine import Checkpointer, MicroBatch, build_model, export_hf, import_hf, unwrap
from cascade.engine.device import current_device
from cascade.engine.model import ddp_config, eval_mode
from cascade.engine.precision import resolve_precision
from cascade.engine.step import _reduce_metrics
from cascade.reward_model.data import PairRows
from cascade.rewards.reward_model import HEAD_FILE

LossOutput = tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]
RewardLossFn = Callable[[torch.Tensor, MicroBatch], LossOutput]  # (rewards [b], micro-batch)


class RewardHead(torch.nn.Module):
    """``hidden [s, b, h] -> scores [s, b, 1]``, called the way GPTModel calls its output layer.

    Under sequence parallelism the hidden states arrive split along ``s`` over TP ranks; they are
    gathered first (backward: each rank keeps its slice, since every TP rank computes the same
    loss), so the head's gradient is identical on every TP rank like any replicated parameter."""

    def __init__(self, hidden_size: int, dtype: torch.dtype, device: torch.device, sequence_parallel: bool,
                 seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        init = torch.randn(1, hidden_size, generator=g, dtype=torch.float32) / (hidden_size + 1) ** 0.5
        self.weight = torch.nn.Parameter(init.to(device=device, dtype=dtype))
        set_defaults_if_not_set_tensor_model_parallel_attributes(self.weight)
        self.gather_sequence = sequence_parallel

    def forward(self, hidden_states: torch.Tensor, weight: torch.Tensor | None = None,
                runtime_gather_output: bool | None = None) -> tuple[torch.Tensor, None]:
        if self.gather_sequence:
            hidden_states = gather_from_sequence_parallel_region(hidden_states, tensor_parallel_output_grad=False)
        return F.linear(hidden_states, self.weight), None


def attach_reward_heads(chunks: Sequence[MegatronModule], sequence_parallel: bool, seed: int) -> None:
    """Replace the LM head of the last pipeline stage's chunk by a fresh ``RewardHead``."""
    for gpt in unwrap(list(chunks)):
        gpt.share_embeddings_and_output_weights = False
        if gpt.post_process:
            ref = gpt.decoder.final_layernorm.weight
            gpt.output_layer = RewardHead(gpt.config.hidden_size, ref.dtype, ref.device, sequence_parallel, seed)


@contextlib.contextmanager
def heads_detached(model: Sequence[MegatronModule]) -> Iterator[list[RewardHead]]:
    """Take the heads out of the module tree for a while (HF export maps backbone names only)."""
    saved = [(gpt, gpt.output_layer) for gpt in unwrap(list(model))
             if isinstance(getattr(gpt, "output_layer", None), RewardHead)]
    for gpt, _ in saved:
        gpt.output_layer = torch.nn.Identity()
    try:
        yield [head for _, head in saved]
    finally:
        for gpt, head in saved:
            gpt.output_layer = head


def build_reward_model(cfg: Any, init: Any | None) -> list[MegatronModule]:
    """This rank's DDP-wrapped RM chunks. ``init`` (a ``stage_io.InitSource``) loads the backbone
    on a fresh start; None when a checkpoint of this stage will be loaded instead."""
    chunks = build_model(cfg.model, cfg.parallel, cfg.precision, wrap_ddp=False)
    if init is not None and init.format == "hf":
        import_hf(chunks, init.path, cfg.model)
    elif init is not None:  # an earlier stage's Megatron checkpoint: weights only
        Checkpointer(init.path.parent, chunks).load(init.path, load_optimizer=False, load_rng=False)
    attach_reward_heads(chunks, cfg.parallel.sequence_parallel, cfg.train.seed)
    dcfg = ddp_config(cfg.optim.use_distributed_optimizer, resolve_precision(cfg.precision, cfg.parallel))
    tcfg = get_model_config(chunks[0])
    return [DistributedDataParallel(config=tcfg, ddp_config=dcfg, module=c, disable_bucketing=i > 0)
            for i, c in enumerate(chunks)]


def micro_batches(rows: PairRows, micro_batch_size: int, trim_multiple: int | None = None) -> list[MicroBatch]:
    """Micro-batches of ``micro_batch_size`` whole pairs (``2 * micro_batch_size`` rows).

    ``trim_multiple`` (no pipeline parallelism): pairs are grouped longest first and each
    micro-batch is cut after its longest row, rounded up to the multiple, instead of every row
    carrying the step's longest conversation as padding. Exact: a reward is read at its row's last
    token and causal attention never sees the padding after it; the pair loss is a sum over pairs.
    """
    per = 2 * micro_batch_size
    n = int(rows.tokens.shape[0])
    if n % per:
        raise ValueError(f"{n // 2} pairs are not a multiple of micro_batch_size={micro_batch_size}")
    s = rows.tokens.shape[1]
    mask = (torch.arange(s)[None, :] <= rows.last[:, None]).float()
    full = MicroBatch(tokens=rows.tokens, labels=rows.tokens, loss_mask=mask,
                      extra={"last": rows.last, "weight": rows.weight, "pair": rows.pair_index})
    if trim_multiple is None or ps.get_pipeline_model_parallel_world_size() > 1:
        return [full.rows(i, i + per) for i in range(0, n, per)]
    pair_len = rows.last.view(-1, 2).amax(dim=1) + 1
    order = torch.argsort(pair_len, descending=True, stable=True)
    full = full.select(torch.stack([2 * order, 2 * order + 1], dim=1).reshape(-1))  # pairs stay (chosen, rejected)
    out = []
    for i in range(0, n, per):
        mb = full.rows(i, i + per)
        used = int(mb.extra["last"].max()) + 1
        out.append(mb.trim(min(s, -(-used // trim_multiple) * trim_multiple)))
    return out


def _forward_step(loss_fn: RewardLossFn, data_iterator: Any, model: MegatronModule) -> tuple[torch.Tensor, Any]:
    mb: MicroBatch = next(data_iterator).to(current_device())
    output = model(mb.tokens, mb.position_ids, None)  # [b, s, 1] on the last stage

    def loss_func(scores: torch.Tensor) -> LossOutput:
        rows = torch.arange(scores.shape[0], device=scores.device)
        return loss_fn(scores[rows, mb.extra["last"], 0].float(), mb)

    return output, loss_func


def forward_backward_rewards(model: Sequence[MegatronModule], microbatches: Sequence[MicroBatch],
                             loss_fn: RewardLossFn, *, forward_only: bool = False) -> dict[str, float]:
    """Every micro-batch through the schedule (any TP/PP/DP layout); ``loss_fn`` gets the rows'
    rewards on the last stage. Returns its ``[sum, count]`` metrics reduced, on every rank."""
    if ps.get_context_parallel_world_size() > 1:
        raise ValueError("the reward model does not support context parallelism (parallel.context=1)")
    data = iter(microbatches) if len(model) == 1 else [iter(microbatches) for _ in model]
    ctx = contextlib.nullcontext() if not forward_only else eval_mode(list(model))
    with ctx, (torch.no_grad() if forward_only else contextlib.nullcontext()):
        losses = get_forward_backward_func()(
            forward_step_func=partial(_forward_step, loss_fn), data_iterator=data, model=list(model),
            num_microbatches=len(microbatches), seq_length=microbatches[0].seq_length,
            micro_batch_size=microbatches[0].batch_size, forward_only=forward_only)
    return _reduce_metrics(list(losses) if ps.is_pipeline_last_stage(ignore_virtual=True) else [])


def reward_train_step(model: Sequence[MegatronModule], optimizer: MegatronOptimizer,
                      scheduler: OptimizerParamScheduler, microbatches: Sequence[MicroBatch],
                      loss_fn: RewardLossFn) -> dict[str, float]:
    """One optimizer step over this rank's micro-batches (the engine's ``train_step`` with the
    reward forward). Adds ``grad_norm``, ``lr`` and ``update_ok`` to the loss metrics."""
    for chunk in model:
        chunk.zero_grad_buffer()
    optimizer.zero_grad()
    metrics = forward_backward_rewards(model, microbatches, loss_fn)
    ok, grad_norm, _ = optimizer.step()
    lr = optimizer.param_groups[0]["lr"]
    if ok:
        scheduler.step(increment=1)
    metrics.update(grad_norm=float(grad_norm) if grad_norm is not None else float("nan"),
                   lr=float(lr), update_ok=float(bool(ok)))
    return metrics


def _holds_output(every_dp_rank: bool) -> bool:
    """Ranks whose last-stage outputs are unique: first TP/CP rank of the last pipeline stage
    (and only the first DP rank unless ``every_dp_rank``: data differ across DP ranks)."""
    return (ps.is_pipeline_last_stage(ignore_virtual=True) and ps.get_tensor_model_parallel_rank() == 0
            and ps.get_context_parallel_rank() == 0 and (every_dp_rank or ps.get_data_parallel_rank() == 0))


def gather_to_rank0(local: Any, every_dp_rank: bool = True) -> list[Any]:
    """``local`` of every output-holding rank (see ``_holds_output``), in rank order, on global
    rank 0; an empty list elsewhere. Collective."""
    everything: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everything, local if _holds_output(every_dp_rank) else None)
    return [x for x in everything if x is not None] if dist.get_rank() == 0 else []


def head_weight(model: Sequence[MegatronModule]) -> torch.Tensor | None:
    """The head's weight ``[1, hidden]`` on CPU, on global rank 0 (None elsewhere); collective."""
    heads = [gpt.output_layer for gpt in unwrap(list(model)) if isinstance(getattr(gpt, "output_layer", None), RewardHead)]
    local = heads[0].weight.detach().cpu().clone() if heads else None
    found = gather_to_rank0(local, every_dp_rank=False)
    return found[0] if found else None


def export_reward_model(model: Sequence[MegatronModule], out_dir: str | Path, model_cfg: Any,
                        tokenizer_dir: str | Path) -> Path:
    """Write the scorer's format (module docstring) to ``out_dir``, atomically; collective."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    staging = out.with_name(out.name + ".rm_staging")
    with heads_detached(model):
        export_hf(model, staging, model_cfg, tokenizer_dir=tokenizer_dir)
    weight = head_weight(model)
    if dist.get_rank() == 0:
        save_file({"weight": weight.contiguous()}, str(staging / HEAD_FILE), metadata={"format": "pt"})
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    dist.barrier()
    return out

"""Logits at the loss positions only: the output layer runs on the rows a loss reads.

Why: a loss reads ``log p(label)`` where ``loss_mask`` is set (SFT: the assistant turns, RL: the
response), yet the output layer computes ``[s, b, V]`` logits for every position, and the
vocab-parallel cross entropy then makes several passes over them. With a 49K vocabulary that is
~20% of a step's FLOPs plus ~200 MB of logits per 1K tokens, most of it on prompts (measured
on the toy data: 806 of 2,793 held-out SFT tokens carry loss; RL prompts are 2-3x the response).
``only(chunk, rows)`` feeds the output layer the hidden states of the ``[b, s]`` mask's rows
(``[n, 1, h]``, row-major like ``tensor[mask]``), so the chunk returns ``[1, n, V]`` logits;
``scatter`` puts the ``[n]`` values back into a zero ``[b, s]`` tensor for the loss functions,
which read loss positions only. Gradients are the same: positions without loss contributed none.

Not used when it cannot apply (``selection`` returns None): sequence parallelism (the output
layer's input is sharded along the sequence), an output layer that is not the vocabulary
projection (the reward model's head), a micro-batch whose every position (or none) carries loss.
Tests: tests/engine/test_loss_rows.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from megatron.core.tensor_parallel import ColumnParallelLinear
from megatron.core.utils import unwrap_model

ROWS_ATTR = "_cascade_loss_rows"  # set on the output layer while its input is row-selected


def output_layer(chunk: torch.nn.Module) -> torch.nn.Module | None:
    """The chunk's vocabulary projection (None on pipeline stages without one)."""
    return getattr(unwrap_model(chunk), "output_layer", None)


def selection(chunk: torch.nn.Module, loss_mask: torch.Tensor) -> torch.Tensor | None:
    """The ``[b, s]`` bool mask of rows to project, or None to project every position."""
    layer = output_layer(chunk)
    if not isinstance(layer, ColumnParallelLinear) or layer.sequence_parallel:
        return None
    rows = loss_mask != 0
    n = int(rows.sum())
    return rows if 0 < n < rows.numel() else None


@contextmanager
def only(chunk: torch.nn.Module, rows: torch.Tensor | None) -> Iterator[None]:
    """Within the block, the chunk's output layer sees ``hidden[s, b, h]`` at ``rows`` only."""
    layer = output_layer(chunk) if rows is not None else None
    if layer is None:
        yield
        return

    def pick(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden = args[0]
        return (hidden.transpose(0, 1)[rows].unsqueeze(1), *args[1:]), kwargs

    handle = layer.register_forward_pre_hook(pick, with_kwargs=True)
    setattr(layer, ROWS_ATTR, rows)
    try:
        yield
    finally:
        handle.remove()
        setattr(layer, ROWS_ATTR, None)


def scatter(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``[n]`` values of the selected rows back into a zero ``[b, s]`` tensor (differentiable)."""
    return values.new_zeros(rows.shape).masked_scatter(rows, values)


def selected(layer: torch.nn.Module) -> bool:
    """Whether the output layer's current forward ran on selected rows (logits ``[n, 1, V]``)."""
    return getattr(layer, ROWS_ATTR, None) is not None

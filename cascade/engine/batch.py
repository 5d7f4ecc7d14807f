"""Micro-batches as the engine consumes them, and how a global batch is split across ranks.

Why: the SFT and RL trainers hand the engine token ids, labels and a loss mask; everything
layout-specific (which rows this data-parallel rank takes, how many micro-batches make the
global batch, the attention inputs for packed sequences, the context-parallel slice) lives here
so that trainers never see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from megatron.core import parallel_state as ps
from megatron.core.packed_seq_params import PackedSeqParams

from cascade.engine import device


@dataclass
class MicroBatch:
    """One micro-batch, all tensors ``[batch, seq]``.

    ``labels[t]`` is the token predicted at position ``t`` (inputs shifted by one) and
    ``loss_mask[t]`` (0/1) says whether it counts. ``segment_ids`` marks packed sequences: tokens
    attend only within their segment. ``position_ids`` may stay None: Megatron's RoPE derives
    positions from the sequence itself, and since RoPE scores depend only on relative positions a
    packed segment scores exactly as it would alone (tested). ``extra`` carries per-token tensors
    a custom loss needs (advantages, old logprobs, ...); those with a sequence dimension are
    sliced like the others under context parallelism.
    """

    tokens: torch.Tensor
    labels: torch.Tensor
    loss_mask: torch.Tensor
    position_ids: torch.Tensor | None = None
    segment_ids: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_length(self) -> int:
        return int(self.tokens.shape[1])

    def to(self, dev: torch.device) -> "MicroBatch":
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        kw = {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        return MicroBatch(**kw, extra={k: v.to(dev) for k, v in self.extra.items()})

    def rows(self, start: int, stop: int) -> "MicroBatch":
        """Rows ``start:stop`` of every tensor."""
        return self.select(slice(start, stop))

    def select(self, index: torch.Tensor | slice) -> "MicroBatch":
        """The rows in ``index`` (indices in order, or a slice), of every tensor."""
        kw = {f.name: (getattr(self, f.name)[index] if getattr(self, f.name) is not None else None)
              for f in fields(self) if f.name != "extra"}
        return MicroBatch(**kw, extra={k: v[index] for k, v in self.extra.items()})

    def trim(self, length: int) -> "MicroBatch":
        """The first ``length`` positions of every per-token tensor (``extra`` ones included)."""
        s = self.seq_length
        cut = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        cut = {k: (v[:, :length] if isinstance(v, torch.Tensor) and v.dim() >= 2 and v.shape[1] == s else v)
               for k, v in cut.items()}
        extra = {k: (v[:, :length] if v.dim() >= 2 and v.shape[1] == s else v) for k, v in self.extra.items()}
        return MicroBatch(**cut, extra=extra)


def causal_lm_batch(tokens: torch.Tensor, loss_mask: torch.Tensor | None = None) -> MicroBatch:
    """A next-token batch from ``[batch, seq+1]`` token rows (inputs = all but last)."""
    mask = torch.ones_like(tokens[:, 1:], dtype=torch.float) if loss_mask is None else loss_mask
    return MicroBatch(tokens=tokens[:, :-1], labels=tokens[:, 1:], loss_mask=mask.float())


def num_microbatches(global_batch_size: int, micro_batch_size: int) -> int:
    """Micro-batches per rank that accumulate to ``global_batch_size`` over the DP group."""
    dp = ps.get_data_parallel_world_size()
    if global_batch_size % (micro_batch_size * dp):
        raise ValueError(
            f"global_batch_size={global_batch_size} is not a multiple of "
            f"micro_batch_size*data_parallel={micro_batch_size}*{dp}"
        )
    return global_batch_size // (micro_batch_size * dp)


def split_global_batch(batch: MicroBatch, micro_batch_size: int, *, trim_multiple: int | None = None
                       ) -> list[MicroBatch]:
    """This data-parallel rank's micro-batches of a global batch every rank holds in full.

    Rows are dealt in contiguous blocks per DP rank. With the per-token loss normalisation the
    gradient does not depend on this split, which is what the layout-equivalence tests check.

    ``trim_multiple`` (rows of unequal length, right-padded, without pipeline parallelism): the
    rank's rows are grouped longest first and each micro-batch is cut after its last loss token,
    rounded up to the multiple. Exact under causal attention: a position never sees the padding
    after it, and every consumer reads tokens under the loss mask only.
    """
    n = num_microbatches(batch.batch_size, micro_batch_size)
    start = ps.get_data_parallel_rank() * n * micro_batch_size
    if trim_multiple is None or ps.get_pipeline_model_parallel_world_size() > 1:
        return [
            batch.rows(start + i * micro_batch_size, start + (i + 1) * micro_batch_size)
            for i in range(n)
        ]
    mine = batch.rows(start, start + n * micro_batch_size)
    lengths = loss_lengths(mine.loss_mask)
    mine = mine.select(torch.argsort(lengths, descending=True, stable=True))
    out = []
    for i in range(n):
        mb = mine.rows(i * micro_batch_size, (i + 1) * micro_batch_size)
        used = int(loss_lengths(mb.loss_mask).max())
        out.append(mb.trim(min(mb.seq_length, max(1, -(-used // trim_multiple)) * trim_multiple)))
    return out


def loss_lengths(loss_mask: torch.Tensor) -> torch.Tensor:
    """Per row: one past the last position with a nonzero loss mask (0 for a row without any)."""
    positions = torch.arange(1, loss_mask.shape[1] + 1, device=loss_mask.device)
    return ((loss_mask != 0) * positions).amax(dim=1)


def attention_inputs(mb: MicroBatch) -> tuple[torch.Tensor | None, PackedSeqParams | None]:
    """(attention_mask, packed_seq_params) for GPTModel.

    Unpacked rows: no mask (causal attention is built in). Packed rows on CPU: a block-diagonal
    causal boolean mask (True = masked) for the local attention. Packed rows on a GPU with
    Transformer Engine: the ``thd`` packed format (one row per micro-batch).
    """
    if mb.segment_ids is None:
        return None, None
    seg = mb.segment_ids
    if not device.HAVE_TE:
        s = seg.shape[1]
        causal = torch.ones(s, s, dtype=torch.bool, device=seg.device).tril()
        same = seg[:, :, None] == seg[:, None, :]
        return ~(causal & same).unsqueeze(1), None
    if seg.shape[0] != 1:
        raise ValueError("packed sequences on GPU need micro_batch_size=1 (thd format)")
    change = torch.nonzero(seg[0, 1:] != seg[0, :-1]).flatten() + 1
    bounds = [0, *change.tolist(), seg.shape[1]]
    cu = torch.tensor(bounds, dtype=torch.int32, device=seg.device)
    longest = int((cu[1:] - cu[:-1]).max())
    return None, PackedSeqParams(
        qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu, max_seqlen_q=longest, max_seqlen_kv=longest
    )


def _zigzag_index(seq: int, cp: int, rank: int, dev: torch.device) -> torch.Tensor:
    if seq % (2 * cp):
        raise ValueError(f"sequence length {seq} must be divisible by 2*context_parallel={2 * cp}")
    chunk = seq // (2 * cp)
    a, b = rank, 2 * cp - 1 - rank
    return torch.cat(
        [torch.arange(a * chunk, (a + 1) * chunk), torch.arange(b * chunk, (b + 1) * chunk)]
    ).to(dev)


def slice_for_context_parallel(mb: MicroBatch) -> MicroBatch:
    """This CP rank's zigzag share of the sequence (Megatron's load-balanced causal split)."""
    cp = ps.get_context_parallel_world_size()
    if cp == 1:
        return mb
    if mb.segment_ids is not None:
        raise ValueError("packed sequences with context parallelism are not supported; "
                         "use parallel.context=1 or unpacked batches")
    pos = mb.position_ids
    if pos is None:
        pos = torch.arange(mb.seq_length, device=mb.tokens.device).expand(mb.batch_size, -1)
    idx = _zigzag_index(mb.seq_length, cp, ps.get_context_parallel_rank(), mb.tokens.device)
    take = lambda t: t.index_select(1, idx)  # noqa: E731
    return replace(
        mb,
        tokens=take(mb.tokens),
        labels=take(mb.labels),
        loss_mask=take(mb.loss_mask),
        position_ids=take(pos),
        extra={k: (take(v) if v.dim() >= 2 and v.shape[1] == mb.seq_length else v)
               for k, v in mb.extra.items()},
    )


def gather_context_parallel(local: torch.Tensor, seq_length: int) -> torch.Tensor:
    """Inverse of ``slice_for_context_parallel`` for a ``[batch, local_seq]`` tensor."""
    cp = ps.get_context_parallel_world_size()
    if cp == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(cp)]
    torch.distributed.all_gather(parts, local.contiguous(), group=ps.get_context_parallel_group())
    out = torch.empty(local.shape[0], seq_length, dtype=local.dtype, device=local.device)
    for r, part in enumerate(parts):
        out[:, _zigzag_index(seq_length, cp, r, local.device)] = part
    return out

"""SFT batches: tokenized conversations laid into fixed-length rows (packed or one per row), and
a deterministic, resumable order of global batches over them.

Why stateless batching: global batch ``k`` is a pure function of (rows, seed, global batch size,
k), so a resumed run continues from the checkpoint's step with nothing but the step number
(the checkpoint also stores a data fingerprint, and a resume on different data is refused
unless asked for). Epoch ``e`` is a fresh permutation seeded by ``seed + e``; a run longer than
one pass over the rows simply starts the next permutation.

Rows come from ``cascade.data.packing``: packed rows carry ``segment_ids`` (per-sequence
attention boundaries; the engine turns them into a block-diagonal mask on CPU, THD
``cu_seqlens`` on GPU); unpacked rows hold one conversation each and attend causally.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from cascade.data.packing import PackedSequence, PackingStats, build_row, pack_samples
from cascade.data.tokenizer import TokenizedSample

if TYPE_CHECKING:  # the engine (Megatron + the CPU shim) loads only when a batch is built
    from cascade.engine.batch import MicroBatch


@dataclass(frozen=True)
class SFTRows:
    """``R`` rows of ``S`` tokens, all ``[R, S]``, plus per-row counts."""

    tokens: torch.Tensor
    labels: torch.Tensor
    loss_mask: torch.Tensor
    position_ids: torch.Tensor
    segment_ids: torch.Tensor
    real_tokens: torch.Tensor  # [R] non-pad tokens per row
    sequences: torch.Tensor  # [R] conversations per row
    packed: bool
    stats: PackingStats

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_length(self) -> int:
        return int(self.tokens.shape[1])

    def fingerprint(self) -> str:
        """Hash of the row contents: a resume on other data (or other packing) is detected."""
        h = hashlib.sha256()
        for t in (self.tokens, self.loss_mask, self.segment_ids):
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def batch(self, index: torch.Tensor) -> "MicroBatch":
        """The rows ``index`` as one engine batch (``segment_ids`` only when packed)."""
        from cascade.engine.batch import MicroBatch

        return MicroBatch(
            tokens=self.tokens[index],
            labels=self.labels[index],
            loss_mask=self.loss_mask[index],
            position_ids=self.position_ids[index] if self.packed else None,
            segment_ids=self.segment_ids[index] if self.packed else None,
        )


def _one_per_row(samples: Sequence[TokenizedSample], seq_length: int, pad_id: int
                 ) -> tuple[list[PackedSequence], PackingStats]:
    """Unpacked rows: each conversation alone, padded (over-long ones dropped, as when packing)."""
    stats = PackingStats(samples_in=len(samples))
    rows = []
    for s in samples:
        if len(s.input_ids) - 1 > seq_length:
            stats.dropped_too_long += 1
            continue
        piece = (s.input_ids[:-1], s.input_ids[1:], s.loss_mask[1:])
        if not piece[0] or not any(piece[2]):
            stats.dropped_no_loss += 1
            continue
        rows.append(build_row([piece], seq_length, pad_id))
    stats.samples_packed = stats.rows = len(rows)
    stats.real_tokens = sum(r.num_real_tokens for r in rows)
    stats.total_tokens = len(rows) * seq_length
    stats.trained_tokens = int(sum(float(r.loss_mask.sum()) for r in rows))
    return rows, stats


def build_rows(samples: Sequence[TokenizedSample], seq_length: int, pad_id: int, *, packing: bool) -> SFTRows:
    """Rows for training or evaluation; ``stats.efficiency`` is the packing efficiency."""
    rows, stats = (pack_samples(samples, seq_length, pad_id) if packing
                   else _one_per_row(samples, seq_length, pad_id))
    if not rows:
        raise ValueError(f"no SFT sample fits seq_length={seq_length} with tokens to train on ({stats.summary()})")
    stack = lambda name: torch.stack([getattr(r, name) for r in rows])  # noqa: E731
    return SFTRows(
        tokens=stack("tokens"), labels=stack("labels"), loss_mask=stack("loss_mask"),
        position_ids=stack("position_ids"), segment_ids=stack("segment_ids"),
        real_tokens=torch.tensor([r.num_real_tokens for r in rows]),
        sequences=torch.tensor([r.num_sequences for r in rows]),
        packed=packing, stats=stats,
    )


def padded_to_multiple(rows: SFTRows, multiple: int, pad_id: int) -> SFTRows:
    """Append empty rows (pad tokens, no loss) so ``len(rows)`` divides by ``multiple``
    (held-out sets split over micro-batches and data-parallel ranks)."""
    extra = (-len(rows)) % multiple
    if extra == 0:
        return rows
    s = rows.seq_length
    cat = lambda t, fill: torch.cat([t, torch.full((extra, *t.shape[1:]), fill, dtype=t.dtype)])  # noqa: E731
    return SFTRows(
        tokens=cat(rows.tokens, pad_id), labels=cat(rows.labels, pad_id), loss_mask=cat(rows.loss_mask, 0),
        position_ids=torch.cat([rows.position_ids, torch.arange(s).expand(extra, s)]),
        segment_ids=cat(rows.segment_ids, 0), real_tokens=cat(rows.real_tokens, 0),
        sequences=cat(rows.sequences, 0), packed=rows.packed, stats=rows.stats,
    )


@dataclass(frozen=True)
class BatchInfo:
    """What global batch ``step`` holds (identical on every rank)."""

    rows: int
    real_tokens: int
    loss_tokens: int
    sequences: int
    packing_efficiency: float
    epoch: float  # passes over the rows completed after this batch


class GlobalBatches:
    """Global batch ``k`` (1-based) = rows ``(k-1)*B .. k*B-1`` of the concatenated epoch
    permutations. Every rank holds it in full; the engine's ``split_global_batch`` picks the
    rank's micro-batches."""

    def __init__(self, rows: SFTRows, global_batch_size: int, seed: int) -> None:
        if global_batch_size < 1:
            raise ValueError("global_batch_size must be >= 1")
        self.rows = rows
        self.size = global_batch_size
        self.seed = seed
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._perms = {epoch: torch.randperm(len(self.rows), generator=g)}  # keep one epoch
        return self._perms[epoch]

    def indices(self, step: int) -> torch.Tensor:
        """Row indices of global batch ``step`` (1-based)."""
        n = len(self.rows)
        positions = range((step - 1) * self.size, step * self.size)
        return torch.stack([self._perm(p // n)[p % n] for p in positions])

    def info(self, step: int) -> BatchInfo:
        """Counts of global batch ``step`` (for throughput and packing metrics)."""
        idx = self.indices(step)
        real = int(self.rows.real_tokens[idx].sum())
        return BatchInfo(
            rows=len(idx),
            real_tokens=real,
            loss_tokens=int(self.rows.loss_mask[idx].sum()),
            sequences=int(self.rows.sequences[idx].sum()),
            packing_efficiency=real / (len(idx) * self.rows.seq_length),
            epoch=step * self.size / len(self.rows),
        )

    def batch(self, step: int) -> "MicroBatch":
        """Global batch ``step`` as one engine batch."""
        return self.rows.batch(self.indices(step))

    def steps_per_epochs(self, epochs: float) -> int:
        """Optimizer steps that cover ``epochs`` passes over the rows (at least one)."""
        return max(1, math.floor(len(self.rows) * epochs / self.size))

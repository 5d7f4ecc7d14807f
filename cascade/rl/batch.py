"""The training batch of one RL step: prompt + response token rows with per-token advantages and
the generator's logprobs, split into minibatches (optimizer steps) the engine can consume.

Why a module: the layout rules live in one place — a row is ``prompt ⧺ response`` shifted for
next-token prediction, the loss mask covers exactly the response tokens (stop token included) of
rollouts that take part (the others are left out), every row of a step has one length (rounded up so CP/TP can split it),
and each minibatch has a row count the engine can deal over micro-batches and data-parallel
ranks (padding rows have an all-zero mask, so they change nothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from cascade.rl.rollout import Group

if TYPE_CHECKING:  # the engine (Megatron) loads only in trainer processes
    from cascade.engine.batch import MicroBatch

ADVANTAGES, GEN_LOGPROBS, REF_LOGPROBS, OLD_LOGPROBS = "advantages", "gen_logprobs", "ref_logprobs", "old_logprobs"
# per token: the valid-token count of its whole row, computed before any context-parallel slicing
# (sequence-level aggregation weighs a token 1/|o_i| of the full sequence)
SEQ_TOKENS = "seq_token_counts"
# per row ``[n]``: the normaliser weight of the minibatch's zero-advantage rows that were left out
# (all of it on row 0, so it is counted once however the rows are dealt over micro-batches/ranks)
LEFT_OUT_WEIGHT = "left_out_weight"


@dataclass(frozen=True)
class Row:
    ids: tuple[int, ...]  # prompt ⧺ response
    prompt_len: int
    gen_logprobs: tuple[float, ...]  # one per response token
    advantage: float
    valid: bool


def rows_of(groups: Sequence[Group], advantages: torch.Tensor) -> list[list[Row]]:
    """Per group, its G rows (``advantages`` is ``[len(groups), G]``)."""
    out = []
    for g, adv in zip(groups, advantages.tolist()):
        out.append([Row(g.prompt_ids + tuple(s.token_ids), len(g.prompt_ids), tuple(s.logprobs), float(a),
                        bool(v) and len(s.token_ids) > 0)
                    for s, a, v in zip(g.samples, adv, g.valid)])
    return out


def split_groups(groups: list[list[Row]], num_minibatches: int) -> list[list[list[Row]]]:
    """Contiguous, near-equal chunks of whole groups (a group never spans two optimizer steps)."""
    n = len(groups)
    k = max(1, min(num_minibatches, n))
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [groups[bounds[i] : bounds[i + 1]] for i in range(k)]


def sequence_length(rows: Sequence[Row], multiple: int) -> int:
    """Input length of the step: the longest ``len(ids) - 1``, rounded up to ``multiple``."""
    longest = max((len(r.ids) - 1 for r in rows), default=1)
    return max(multiple, math.ceil(longest / multiple) * multiple)


def to_microbatch(rows: Sequence[Row], seq_len: int, pad_id: int, row_multiple: int) -> MicroBatch:
    """One global (mini)batch, padded with masked rows to a multiple of ``row_multiple``."""
    from cascade.engine.batch import MicroBatch

    n = max(row_multiple, math.ceil(len(rows) / row_multiple) * row_multiple)
    tokens = torch.full((n, seq_len), pad_id, dtype=torch.long)
    labels = torch.full((n, seq_len), pad_id, dtype=torch.long)
    mask = torch.zeros(n, seq_len)
    adv = torch.zeros(n, seq_len)
    gen_lp = torch.zeros(n, seq_len)
    for i, r in enumerate(rows):
        ids = torch.tensor(r.ids[: seq_len + 1], dtype=torch.long)
        tokens[i, : len(ids) - 1] = ids[:-1]
        labels[i, : len(ids) - 1] = ids[1:]
        start, end = r.prompt_len - 1, min(len(r.ids) - 1, seq_len)  # label t predicts ids[t + 1]
        if end <= start:
            continue
        gen_lp[i, start:end] = torch.tensor(r.gen_logprobs[: end - start], dtype=torch.float32)
        if r.valid:
            mask[i, start:end] = 1.0
            adv[i, start:end] = r.advantage
    counts = mask.sum(-1, keepdim=True).expand_as(mask).contiguous()
    return MicroBatch(tokens=tokens, labels=labels, loss_mask=mask,
                      extra={ADVANTAGES: adv, GEN_LOGPROBS: gen_lp, SEQ_TOKENS: counts})


def _weight(row: Row, aggregation: str) -> float:
    """The row's share of the loss normaliser: its response tokens (token level) or 1 (sequence)."""
    return float(len(row.ids) - row.prompt_len) if aggregation == "token" else 1.0


def build_minibatches(groups: Sequence[Group], advantages: torch.Tensor, *, num_minibatches: int,
                      pad_id: int, row_multiple: int, seq_multiple: int,
                      skip_zero_advantage: str | None = None) -> list[MicroBatch]:
    """The step's minibatches (one optimizer step each), all with the same sequence length.

    Rollouts that take no part (skipped by overlong filtering) are left out rather than masked:
    their loss mask would be all zero, so they change neither the loss nor its normaliser, and
    an overlong row is the longest of the step (measured: 13 of 16 toy SWE rollouts, 167 s of a
    274 s update spent on rows with no loss).

    With ``skip_zero_advantage`` (the loss's aggregation, given only when the loss has no KL or
    entropy term) rows whose advantage is 0 are left out too: their loss and gradient are exactly
    0, but they count in the normaliser, so each minibatch carries their weight in
    ``LEFT_OUT_WEIGHT``. A minibatch of such rows only keeps no row (an all-padding batch)."""
    per_group = [kept for g in rows_of(groups, advantages) if (kept := [r for r in g if r.valid])]
    if not per_group:
        return []

    def trains(r: Row) -> bool:
        return skip_zero_advantage is None or r.advantage != 0.0

    every = [r for g in per_group for r in g]
    seq_len = sequence_length([r for r in every if trains(r)] or every, seq_multiple)
    out = []
    for chunk in split_groups(per_group, num_minibatches):
        rows = [r for g in chunk for r in g]
        mb = to_microbatch([r for r in rows if trains(r)], seq_len, pad_id, row_multiple)
        if skip_zero_advantage is not None:
            weight = torch.zeros(mb.batch_size)
            weight[0] = sum(_weight(r, skip_zero_advantage) for r in rows if not trains(r))
            mb.extra[LEFT_OUT_WEIGHT] = weight
        out.append(mb)
    return out


def left_out_weight(mb: MicroBatch) -> float:
    """The normaliser weight of the zero-advantage rows ``mb`` left out (0 when none were)."""
    w = mb.extra.get(LEFT_OUT_WEIGHT)
    return float(w.sum()) if w is not None else 0.0


def zero_advantage_rows(groups: Sequence[Group], advantages: torch.Tensor) -> int:
    """How many rollouts that take part have advantage 0 (metric ``update/zero_advantage_rows``)."""
    return sum(bool(v) and len(s.token_ids) > 0 and a == 0.0
               for g, adv in zip(groups, advantages.tolist()) for s, a, v in zip(g.samples, adv, g.valid))


def every_sampled(groups: Sequence[Group]) -> list[Group]:
    """Copies of ``groups`` with every rollout that sampled tokens taking part: for measuring
    (the generator/trainer mismatch), never for training. A step whose every rollout was skipped
    by overlong filtering builds no training minibatch, yet its sampled tokens still compare the
    generator's logprobs with the trainer's."""
    return [replace(g, valid=[True] * len(g.samples)) for g in groups]


def response_stats(groups: Sequence[Group]) -> tuple[torch.Tensor, torch.Tensor]:
    """(response lengths, truncated flags) of every generated rollout, flattened."""
    lengths = torch.tensor([len(s.token_ids) for g in groups for s in g.samples], dtype=torch.float64)
    truncated = torch.tensor([s.truncated for g in groups for s in g.samples], dtype=torch.bool)
    return lengths, truncated

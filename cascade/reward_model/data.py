"""Preference pairs for the Bradley-Terry reward model: read, render with the RM's own chat
template, tokenize, and lay out as rows ``[chosen_0, rejected_0, chosen_1, rejected_1, ...]``.

Why the rendering copies the RLHF reward exactly (``cascade.rewards.reward_model.domains`` strips the answer,
``reward_model.LocalRewardModel`` applies the tokenizer's ``apply_chat_template`` on prompt +
answer, adds no special tokens and cuts long conversations from the left): the RM is trained on
the very token sequence RLHF will feed it, so a training-time score is the scorer's score.

Batches are stateless: global batch ``k`` is a pure function of (pairs, seed, batch size, k), so
a resumed run continues from the checkpoint's step alone. Each data-parallel rank tokenizes only
its own share of a batch, when it needs it (82K pairs of up to 8K tokens are never all in memory).
This module needs no Megatron: the engine-side batch is built in ``reward_model_head``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cascade.data.records import Message, PreferenceRecord, RecordError, iter_records


@dataclass(frozen=True)
class PairRows:
    """``n`` pairs as ``2n`` right-padded rows, chosen at even and rejected at odd positions.

    ``last[i]`` is the index of row ``i``'s final token (its reward is read there); ``weight`` is
    per row (the pair's weight twice): 0 marks padding pairs that fill a held-out batch."""

    tokens: torch.Tensor  # [2n, s] int64
    last: torch.Tensor  # [2n] int64
    weight: torch.Tensor  # [2n] float32
    pair_index: torch.Tensor  # [2n] int64: the pair's index in its dataset (-1 for padding)
    truncated: int  # conversations cut from the left to fit seq_length

    @property
    def num_pairs(self) -> int:
        return int(self.tokens.shape[0]) // 2

    @property
    def real_tokens(self) -> int:
        return int(((self.last + 1) * (self.weight > 0)).sum())


def read_pairs(files: Sequence[str | Path], max_pairs: int | None = None) -> tuple[list[PreferenceRecord], list[str]]:
    """Every valid pair of ``files`` (parquet, ``cascade.data.records`` schema) and the reasons
    rows were skipped (a bad row is reported, never fatal)."""
    pairs: list[PreferenceRecord] = []
    errors: list[RecordError] = []
    for f in files:
        for rec in iter_records(f, PreferenceRecord, errors):
            pairs.append(rec)
            if max_pairs is not None and len(pairs) >= max_pairs:
                return pairs, [str(e) for e in errors]
    return pairs, [str(e) for e in errors]


def conversations(pair: PreferenceRecord) -> tuple[list[Message], list[Message]]:
    """(prompt + chosen answer, prompt + rejected answer) as chat messages. Answers are stripped
    of surrounding whitespace, as the RLHF reward does (``cascade.rewards.reward_model.domains``)."""
    prompt = [dict(m) for m in pair.prompt]
    return (prompt + [{"role": "assistant", "content": pair.chosen.strip()}],
            prompt + [{"role": "assistant", "content": pair.rejected.strip()}])


class PairEncoder:
    """Renders and tokenizes conversations as the RLHF scorer does (see module docstring)."""

    def __init__(self, tokenizer: Any, seq_length: int, pad_multiple: int = 8) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the reward model's tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.seq_length = seq_length
        self.pad_multiple = pad_multiple
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)

    def render(self, conversation: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(conversation, tokenize=False)

    def encode(self, conversation: list[Message]) -> tuple[list[int], bool]:
        """Token ids (the last ``seq_length`` when longer) and whether they were cut."""
        ids = self.tokenizer(self.render(conversation), add_special_tokens=False)["input_ids"]
        if len(ids) > self.seq_length:
            return ids[-self.seq_length:], True
        return ids, False

    def rows(self, pairs: Sequence[PreferenceRecord], indices: Sequence[int],
             weights: Sequence[float] | None = None) -> PairRows:
        """Rows for ``pairs[i] for i in indices``, padded to one length (a multiple of
        ``pad_multiple``: every micro-batch of one step shares the sequence length)."""
        seqs: list[list[int]] = []
        truncated = 0
        for i in indices:
            for conv in conversations(pairs[i]):
                ids, cut = self.encode(conv)
                seqs.append(ids)
                truncated += int(cut)
        longest = max(len(s) for s in seqs)
        width = -(-longest // self.pad_multiple) * self.pad_multiple
        tokens = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        for r, s in enumerate(seqs):
            tokens[r, : len(s)] = torch.tensor(s, dtype=torch.long)
        w = [1.0] * len(indices) if weights is None else list(weights)
        return PairRows(
            tokens=tokens,
            last=torch.tensor([len(s) - 1 for s in seqs], dtype=torch.long),
            weight=torch.tensor([x for x in w for _ in (0, 1)], dtype=torch.float32),
            pair_index=torch.tensor([i if x > 0 else -1 for i, x in zip(indices, w) for _ in (0, 1)]),
            truncated=truncated,
        )


def fingerprint(pairs: Sequence[PreferenceRecord]) -> str:
    """Hash of the pairs' ids and texts: a resume on other data is detected."""
    h = hashlib.sha256()
    for p in pairs:
        for part in (p.id, p.chosen, p.rejected, *(m["content"] for m in p.prompt)):
            h.update(part.encode("utf-8", "replace"))
            h.update(b"\x00")
    return h.hexdigest()[:16]


class PairOrder:
    """Global batch ``k`` (1-based) = positions ``(k-1)*B .. k*B-1`` of the concatenated epoch
    permutations; epoch ``e`` is the permutation seeded by ``seed + e``."""

    def __init__(self, num_pairs: int, global_batch_size: int, seed: int) -> None:
        if num_pairs < 1 or global_batch_size < 1:
            raise ValueError("need at least one pair and global_batch_size >= 1")
        self.n, self.size, self.seed = num_pairs, global_batch_size, seed
        self._perm: tuple[int, list[int]] | None = None

    def _epoch(self, epoch: int) -> list[int]:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g).tolist())
        return self._perm[1]

    def indices(self, step: int) -> list[int]:
        return [self._epoch(p // self.n)[p % self.n] for p in range((step - 1) * self.size, step * self.size)]

    def epochs_done(self, step: int) -> float:
        return step * self.size / self.n

    def steps_for(self, epochs: float) -> int:
        """Optimizer steps that cover ``epochs`` passes over the pairs (at least one)."""
        return max(1, math.floor(self.n * epochs / self.size))


def shard(indices: Sequence[int], dp_size: int, dp_rank: int) -> list[int]:
    """This data-parallel rank's contiguous share of a global batch's pair indices."""
    if len(indices) % dp_size:
        raise ValueError(f"{len(indices)} pairs cannot be split evenly over {dp_size} data-parallel ranks")
    per = len(indices) // dp_size
    return list(indices[dp_rank * per : (dp_rank + 1) * per])


def heldout_chunks(num_pairs: int, chunk: int) -> list[tuple[list[int], list[float]]]:
    """The held-out set as (indices, weights) chunks of exactly ``chunk`` pairs; the last one is
    filled with weight-0 repeats of pair 0, so every chunk splits evenly over ranks."""
    out = []
    for start in range(0, num_pairs, chunk):
        idx = list(range(start, min(start + chunk, num_pairs)))
        fill = chunk - len(idx)
        out.append((idx + [0] * fill, [1.0] * len(idx) + [0.0] * fill))
    return out

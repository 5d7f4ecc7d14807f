"""The engine loss function of an RL step: ``cascade.rl.policy_loss`` on the micro-batch's
logprobs, plus the entropy of the full (vocab-parallel) distribution.

Why a logits tap: the engine hands a loss function ``log p(label)`` only, but the entropy bonus
(and the per-step entropy metric) needs the whole distribution. A forward hook on the model's
output layer keeps the current micro-batch's logits for the loss, which Megatron's schedules call
right after that micro-batch's forward (every schedule, PP or not), so the engine's step needs no
change. Under tensor parallelism each rank holds a vocabulary shard; the entropy's sums are
all-reduced across the TP group with gradients flowing to every shard.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from megatron.core import parallel_state as ps
from megatron.core.tensor_parallel.mappings import reduce_from_tensor_model_parallel_region
from megatron.core.transformer.module import MegatronModule

from cascade.config.schema.rl import LossConfig
from cascade.engine import loss_rows, token_logprobs
from cascade.engine.batch import MicroBatch
from cascade.engine.model import unwrap
from cascade.rl import policy_loss
from cascade.rl.batch import ADVANTAGES, GEN_LOGPROBS, LEFT_OUT_WEIGHT, OLD_LOGPROBS, REF_LOGPROBS, SEQ_TOKENS

LossOutput = tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]


class LogitsTap:
    """Keeps the output layer's latest logits (``[s, b, V/TP]``, or ``[n, 1, V/TP]`` when the
    engine projected the loss rows only: ``cascade.engine.loss_rows``), with their graph."""

    def __init__(self, model: Sequence[MegatronModule]) -> None:
        self.logits: torch.Tensor | None = None
        self.rows_only = False
        self._handles = []
        for chunk in unwrap(list(model)):
            layer = getattr(chunk, "output_layer", None)  # only the last pipeline stage has one
            if layer is not None:
                self._handles.append(layer.register_forward_hook(self._hook))

    def _hook(self, module: torch.nn.Module, inputs: object, output: object) -> None:
        logits = output[0] if isinstance(output, tuple) else output
        # With one row per micro-batch (or the loss rows only: [n, 1, V]) and fp32 logits, the
        # model returns this very tensor, and Megatron's cross entropy overwrites it in place
        # before the loss function reads the tap: keep a copy then (bf16 logits are upcast first).
        if logits.shape[1] == 1 and logits.dtype == torch.float32:
            logits = logits.clone()
        self.logits = logits  # type: ignore[assignment]
        self.rows_only = loss_rows.selected(module)

    def pop(self) -> torch.Tensor:
        if self.logits is None:
            raise RuntimeError("no logits captured for this micro-batch (output-layer hook did not run)")
        logits, self.logits = self.logits, None
        return logits

    def pop_rows(self, mask: torch.Tensor) -> torch.Tensor:
        """The logits ``[n, V/TP]`` of the ``[b, s]`` mask's positions (row-major, as ``t[mask]``)."""
        logits = self.pop()
        return logits[:, 0] if self.rows_only else logits.transpose(0, 1)[mask]

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def vocab_parallel_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-token entropy ``[...]`` of vocab-sharded logits ``[..., V/TP]`` (differentiable).

    ``H = log Σ e^z − Σ e^z z / Σ e^z`` with the two sums all-reduced over the TP group; the max
    shift is a constant (H does not depend on it), so it is taken without gradient."""
    z = logits.float()
    zmax = z.detach().amax(-1, keepdim=True)
    if ps.get_tensor_model_parallel_world_size() > 1:
        torch.distributed.all_reduce(zmax, op=torch.distributed.ReduceOp.MAX,
                                     group=ps.get_tensor_model_parallel_group())
    e = torch.exp(z - zmax)
    s = e.sum(-1)
    t = (e * (z - zmax)).sum(-1)
    if ps.get_tensor_model_parallel_world_size() > 1:
        s = reduce_from_tensor_model_parallel_region(s)
        t = reduce_from_tensor_model_parallel_region(t)
    return torch.log(s) - t / s


def entropy_metric(logits: torch.Tensor) -> torch.Tensor:
    """``vocab_parallel_entropy`` without gradient in one TP collective instead of three.

    Each rank shifts its shard by its own max ``m_r`` and sends ``(m_r, s_r, t_r)``; with the
    global max ``M``: ``Σ e^(z−M) = Σ_r e^(m_r−M) s_r`` and ``Σ e^(z−M)(z−M) = Σ_r e^(m_r−M)
    (t_r + (m_r−M) s_r)``, the same two sums as the differentiable version."""
    with torch.no_grad():
        z = logits.float()
        m = z.amax(-1, keepdim=True)
        e = torch.exp(z - m)
        s, t, m = e.sum(-1), (e * (z - m)).sum(-1), m.squeeze(-1)
        world = ps.get_tensor_model_parallel_world_size()
        if world > 1:
            parts = [torch.empty((3, *m.shape), dtype=m.dtype, device=m.device) for _ in range(world)]
            torch.distributed.all_gather(parts, torch.stack([m, s, t]), group=ps.get_tensor_model_parallel_group())
            ms, ss, ts = torch.stack(parts).unbind(1)  # [world, ...] each
            top = ms.amax(0)
            scale = torch.exp(ms - top)
            s, t = (scale * ss).sum(0), (scale * (ts + (ms - top) * ss)).sum(0)
        return torch.log(s) - t / s


def mismatch_metrics(logprobs: torch.Tensor, gen_logprobs: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """``mismatch/*`` as engine ``[sum, count]`` metrics (NeMo-RL's ``token_mult_prob_error``)."""
    m = mask.bool()
    diff = torch.where(m, (logprobs.detach().double() - gen_logprobs.double()).abs(), 0.0)
    count = m.sum().double()
    return {"mismatch/token_mult_prob_error": torch.stack([torch.where(m, diff.exp(), 0.0).sum(), count]),
            "mismatch/mean_abs_logprob_diff": torch.stack([diff.sum(), count])}


def _normalizer(local: torch.Tensor, seq_counts: torch.Tensor | None,
                left_out: torch.Tensor | None = None) -> torch.Tensor:
    """The engine's integer divisor: valid tokens (token level), or whole sequences with a valid
    token (sequence level), plus the weight of zero-advantage rows left out of the batch
    (``cascade.rl.batch.LEFT_OUT_WEIGHT``). A sequence split over context-parallel ranks is
    counted once, on CP rank 0; its tokens carry 1/|o_i| of the full row, so the pieces add up to
    its mean. Left-out rows are counted on CP rank 0 too."""
    first_cp = ps.get_context_parallel_rank() == 0
    extra = left_out.sum() if left_out is not None and first_cp else local.new_zeros(())
    if seq_counts is None:
        return (local + extra).round().to(torch.int)
    rows = (seq_counts[:, 0] > 0).sum() if seq_counts.shape[1] else seq_counts.new_zeros(())
    if not first_cp:
        rows = rows * 0
    return (rows + extra).round().to(torch.int)


def make_loss_fn(cfg: LossConfig, *, temperature: float, tap: LogitsTap, mismatch: bool = False):
    """The engine ``LossFn`` for one RL step (advantages and optional old/ref logprobs travel in
    ``MicroBatch.extra``). With ``mismatch`` (one minibatch: the forward is the pre-update policy)
    the generator/trainer mismatch is measured on this very forward pass instead of a separate
    one: the generator reports temperature-1 logprobs, so at another temperature they are taken
    again, without gradient, from the same raw logits (a log-softmax, not a forward)."""

    def loss_fn(logprobs: torch.Tensor, mb: MicroBatch) -> LossOutput:
        m = mb.loss_mask.bool()
        # Entropy and mismatch read loss tokens only (the loss masks everything else): the full
        # vocabulary is touched for those rows alone, not for the prompts and the padding.
        raw = tap.pop_rows(m)  # [n, V/TP], this CP rank's slice like `logprobs`
        picked = raw / temperature if temperature != 1.0 else raw
        if cfg.entropy_coef > 0:
            entropy = loss_rows.scatter(vocab_parallel_entropy(picked), m)
        else:  # metric only: no graph through the full distribution, one TP collective
            entropy = loss_rows.scatter(entropy_metric(picked.detach()), m)
        counts = mb.extra[SEQ_TOKENS] if cfg.aggregation == "sequence" else None
        out = policy_loss(logprobs, mb.extra[ADVANTAGES], mb.loss_mask, cfg,
                          old_logprobs=mb.extra.get(OLD_LOGPROBS), ref_logprobs=mb.extra.get(REF_LOGPROBS),
                          entropy=entropy, seq_token_counts=counts)
        metrics = dict(out.metrics)
        if mismatch:
            with torch.no_grad():  # a copy: Megatron's cross entropy works in place
                at_t1 = logprobs if temperature == 1.0 else loss_rows.scatter(
                    token_logprobs(raw.detach().clone()[None], mb.labels[m][None])[0], m)
            metrics.update(mismatch_metrics(at_t1, mb.extra[GEN_LOGPROBS], mb.loss_mask))
        return out.loss_sum, _normalizer(out.normalizer, counts, mb.extra.get(LEFT_OUT_WEIGHT)), metrics

    return loss_fn

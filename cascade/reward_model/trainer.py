"""The Bradley-Terry reward-model loop (C1 §4.2): a backbone plus a linear head on the last
token's final hidden state, trained on (chosen, rejected) pairs with ``-log sigmoid(r_c - r_r)``.

The paper's recipe is Qwen2.5-72B-Instruct, global batch 256 pairs, lr 2e-6, AdamW, one epoch,
checkpoints compared by held-out (RewardBench) accuracy; the YAML carries those values. Both
answers of a pair go through the same backbone in the same micro-batch (rows ``2i`` and
``2i+1``), so a micro-batch holds ``train.micro_batch_size`` pairs and the global batch
``train.global_batch_size`` pairs. The loss is a sum over pairs normalised by the global pair
count (the engine's per-token normalisation with a pair as the unit), so every TP/PP/DP layout
and micro-batching gives the same gradient.

Held-out metrics before the first step (``train.eval_at_start``, logged as step 0), then per
step: train step -> held-out metrics if due (every ``train.eval_interval`` steps and always
at the last step). The loop, resume and preemption are the stage runtime's
(``run_training_stage``); these are the kind's hooks (``RewardModelHooks``).

Outputs (besides the runtime's checkpoints, metrics.jsonl, config.json, stage_manifest.json):
``hf/`` in the scorer's format (``reward_model_head.export_reward_model``), ``rm_eval.json``
(final held-out loss/accuracy/margin) and ``rm_val_scores.jsonl`` (each held-out pair's two
rewards, which ``cascade.rewards`` must reproduce from ``hf/``).

Importing this module loads no Megatron (the loss is tested on its own); the hooks' ``setup``
does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cascade.data.records import PreferenceRecord

PREFIX = "reward_model"
EVAL_FILE = "rm_eval.json"
SCORES_FILE = "rm_val_scores.jsonl"
LossOutput = tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]


def bradley_terry(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
                  weight: torch.Tensor | None = None) -> LossOutput:
    """Summed BT loss ``sum_i w_i * -log sigmoid(r_c,i - r_r,i)``, the pair count, and metrics as
    ``[sum, count]``: loss, accuracy (strictly ``r_c > r_r``; a tie counts as wrong), margin and
    the mean chosen/rejected rewards."""
    w = torch.ones_like(r_chosen) if weight is None else weight.to(r_chosen.dtype)
    margin = r_chosen - r_rejected
    loss_sum = (F.softplus(-margin) * w).sum()  # softplus(-m) = -log sigmoid(m), stable
    n = w.sum()
    d = lambda t: torch.stack([(t.detach() * w).sum(), n.detach()])  # noqa: E731
    metrics = {"loss": d(F.softplus(-margin)), "accuracy": d((margin > 0).to(margin.dtype)),
               "margin": d(margin), "reward/chosen": d(r_chosen), "reward/rejected": d(r_rejected)}
    return loss_sum, n.round().to(torch.int), metrics


def pair_loss(rewards: torch.Tensor, mb: Any) -> LossOutput:
    """The engine-side loss: rows alternate chosen/rejected, ``extra["weight"]`` per row."""
    return bradley_terry(rewards[0::2], rewards[1::2], mb.extra["weight"][0::2])


@dataclass
class _Heldout:
    pairs: list[PreferenceRecord]
    chunk: int  # pairs per forward pass: the global batch


def evaluate(model: list, held: _Heldout, encoder: Any, micro_batch_size: int,
             capture: bool = False) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Held-out metrics (``val/...``) over every pair, and with ``capture`` each pair's rewards
    ``{"id", "chosen", "rejected"}`` on global rank 0 (empty elsewhere). Collective."""
    from megatron.core import parallel_state as ps

    from cascade.reward_model import data as rmd
    from cascade.reward_model import head as rmh

    seen: list[tuple[int, float, float]] = []

    def loss_fn(rewards: torch.Tensor, mb: Any) -> LossOutput:
        if capture:
            pair, w = mb.extra["pair"][0::2].tolist(), mb.extra["weight"][0::2].tolist()
            for p, wt, c, r in zip(pair, w, rewards[0::2].tolist(), rewards[1::2].tolist()):
                if wt > 0:
                    seen.append((p, c, r))
        return pair_loss(rewards, mb)

    dp, dp_rank = ps.get_data_parallel_world_size(), ps.get_data_parallel_rank()
    totals: dict[str, list[float]] = {}
    for idx, weights in rmd.heldout_chunks(len(held.pairs), held.chunk):
        mine = rmd.shard(list(zip(idx, weights)), dp, dp_rank)
        rows = encoder.rows(held.pairs, [i for i, _ in mine], [w for _, w in mine])
        n = sum(weights)
        metrics = rmh.forward_backward_rewards(model, rmh.micro_batches(rows, micro_batch_size, encoder.pad_multiple),
                                               loss_fn, forward_only=True)
        for k, v in metrics.items():  # chunk means -> weighted by the chunk's real pairs
            acc = totals.setdefault(k, [0.0, 0.0])
            acc[0] += v * n
            acc[1] += n
    out = {f"val/{k}": s / max(c, 1.0) for k, (s, c) in totals.items()}
    scores: list[dict[str, Any]] = []
    if capture:
        for part in rmh.gather_to_rank0(seen):
            scores.extend({"id": held.pairs[p].id, "chosen": c, "rejected": r} for p, c, r in part)
        scores.sort(key=lambda s: s["id"])
    return out, scores


def write_eval(out: Path, step: int, metrics: dict[str, float], scores: list[dict[str, Any]]) -> None:
    """``rm_eval.json`` and ``rm_val_scores.jsonl`` (rank 0 calls it)."""
    from cascade.fileio import atomic_write_text

    body = {"step": step, "pairs": len(scores), **metrics, "time": time.time()}
    atomic_write_text(out / EVAL_FILE, json.dumps(body, indent=2) + "\n")
    atomic_write_text(out / SCORES_FILE, "".join(json.dumps(s) + "\n" for s in scores))


def _data_summary(name: str, pairs: list[PreferenceRecord], skipped: list[str]) -> dict[str, Any]:
    return {f"{name}_pairs": len(pairs), f"{name}_skipped_rows": len(skipped),
            **({f"{name}_first_skipped": skipped[:3]} if skipped else {})}


def _describe_val(when: str, val: dict[str, float], pairs: int) -> str:
    return (f"{when}: held-out accuracy {val['val/accuracy']:.4f}, loss {val['val/loss']:.4f}, "
            f"margin {val['val/margin']:.3f} ({pairs} pairs)")


def check_supported(cfg: Any) -> None:
    """Refuse, before any rank starts, what this kind cannot run."""
    if cfg.parallel.context > 1:
        raise ValueError("the reward model does not support context parallelism: set parallel.context=1")


class RewardModelHooks:
    """The reward-model stage kind for ``run_training_stage``."""

    prefix = PREFIX

    def __init__(self) -> None:
        self.model = self.optimizer = self.scheduler = None
        self.final: dict[str, float] = {}

    def setup(self, ctx: Any) -> int:
        from megatron.core import parallel_state as ps
        from transformers import AutoTokenizer

        from cascade.engine import build_optimizer, build_scheduler, num_microbatches, throughput
        from cascade.engine.device import current_device
        from cascade.reward_model import data as rmd
        from cascade.reward_model import head as rmh

        cfg = self.cfg = ctx.job.config
        t = cfg.train
        self.ctx, self.out = ctx, ctx.dirs.root
        num_microbatches(t.global_batch_size, t.micro_batch_size)  # fails early on a bad split
        tok = AutoTokenizer.from_pretrained(str(ctx.init.tokenizer_dir), local_files_only=True)
        self.encoder = rmd.PairEncoder(tok, cfg.data.seq_length, pad_multiple=cfg.parallel.sequence_multiple)
        self.train_pairs, skipped = rmd.read_pairs(cfg.data.train_files, cfg.data.max_pairs)
        if not self.train_pairs:
            raise ValueError(f"no valid preference pairs in {cfg.data.train_files} ({skipped[:3]})")
        self.summary = _data_summary("train", self.train_pairs, skipped)
        self.held = None
        if cfg.data.val_files:
            val_pairs, val_skipped = rmd.read_pairs(cfg.data.val_files, cfg.data.max_val_pairs)
            self.summary.update(_data_summary("val", val_pairs, val_skipped))
            self.held = _Heldout(val_pairs, t.global_batch_size) if val_pairs else None
        self.order = rmd.PairOrder(len(self.train_pairs), t.global_batch_size, t.seed)
        self.total = t.steps or self.order.steps_for(t.epochs)
        self.model = rmh.build_reward_model(cfg, None if ctx.resuming else ctx.init)  # fresh: backbone + new head
        self.optimizer = build_optimizer(self.model, cfg.optim, cfg.precision, cfg.parallel)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.scheduler, total_steps=self.total)
        self.n_params = throughput.count_parameters(self.model)
        self.peak = throughput.peak_flops(throughput.training_precision(cfg.precision.params_dtype,
                                                                         cfg.precision.fp8))
        self.dp, self.dp_rank = ps.get_data_parallel_world_size(), ps.get_data_parallel_rank()
        self.device, self.world_size = current_device(), ctx.layout.world_size
        return self.total

    def load_fresh(self, ctx: Any) -> None:
        ctx.say("new linear head on the backbone")  # the backbone was loaded by setup

    def data_state(self) -> dict[str, Any]:
        from cascade.reward_model import data as rmd

        t = self.cfg.train
        return {"fingerprint": rmd.fingerprint(self.train_pairs), "pairs": len(self.train_pairs),
                "global_batch_size": t.global_batch_size, "seed": t.seed}

    def describe(self) -> str:
        t = self.cfg.train
        return (f"{self.summary}; {self.total} steps x {t.global_batch_size} pairs = "
                f"{self.order.epochs_done(self.total):.2f} epochs; {self.n_params:,} parameters; {self.peak.describe()}")

    def _evaluate(self, capture: bool = False) -> tuple[dict[str, float], list[dict[str, Any]]]:
        return evaluate(self.model, self.held, self.encoder, self.cfg.train.micro_batch_size, capture=capture)

    def evaluate_at_start(self) -> dict[str, float] | None:
        if self.held is None or not self.cfg.train.eval_at_start:
            return None
        val, _ = self._evaluate()
        self.ctx.say(_describe_val("before training", val, len(self.held.pairs)))
        return val

    def step(self, step: int, last: bool) -> dict[str, Any]:
        import torch.distributed as dist
        from megatron.core import parallel_state as ps

        from cascade.engine import throughput
        from cascade.reward_model import data as rmd
        from cascade.reward_model import head as rmh

        t = self.cfg.train
        t0 = time.time()
        rows = self.encoder.rows(self.train_pairs, rmd.shard(self.order.indices(step), self.dp, self.dp_rank))
        metrics = rmh.reward_train_step(self.model, self.optimizer, self.scheduler,
                                        rmh.micro_batches(rows, t.micro_batch_size, self.encoder.pad_multiple),
                                        pair_loss)
        counts = torch.tensor([rows.real_tokens, rows.truncated], dtype=torch.float64, device=self.device)
        dist.all_reduce(counts, group=ps.get_data_parallel_group())
        dt = time.time() - t0
        tps = float(counts[0]) / dt
        record = {k: metrics[k] for k in ("loss", "accuracy", "margin", "reward/chosen", "reward/rejected",
                                          "lr", "grad_norm")}
        record.update(tokens_per_s=tps, mfu=throughput.mfu(tps, self.n_params, self.peak, self.world_size),
                      step_time_s=dt, tokens=float(counts[0]), truncated=float(counts[1]),
                      pairs=t.global_batch_size, epoch=self.order.epochs_done(step),
                      update_skipped=1.0 - metrics["update_ok"])
        if self.held is not None and (last or (t.eval_interval and step % t.eval_interval == 0)):
            val, scores = self._evaluate(capture=last)
            record.update(val)
            self.ctx.say(_describe_val(f"step {step}", val, len(self.held.pairs)))
            if last:
                self.final = val
                if self.ctx.main:
                    write_eval(self.out, step, val, scores)
        return record

    def finish(self, ctx: Any, total: int) -> dict[str, Any]:
        if self.held is not None and not self.final:  # resumed after the last step's save: evaluate again
            self.final, scores = self._evaluate(capture=True)
            if ctx.main:
                write_eval(self.out, total, self.final, scores)
        return {"heldout": self.final}

    def export(self, hf_dir: Path) -> None:
        from cascade.reward_model import head as rmh

        rmh.export_reward_model(self.model, hf_dir, self.cfg.model, self.ctx.init.tokenizer_dir)

    def manifest_extra(self) -> dict[str, Any]:
        return {"data": self.summary, "parameters": self.n_params,
                "export_format": "HF backbone + reward_head.safetensors (the reward_model reward domain)"}

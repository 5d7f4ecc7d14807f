"""SFT hooks: one stage of multi-stage SFT (C1 §3.2) on the Megatron-Core engine.

Global batch of packed rows, AdamW with decoupled weight decay, cosine LR over ``scheduler.decay_steps``
(C1 Table 14: 100K; default ``train.steps``) while training runs ``train.steps`` optimizer steps (0: as
many as ``data.epochs`` passes give), held-out loss at the start, every
``train.eval_interval`` steps and at the end. The data position is the step (``sft.data``).
The loop, resume, preemption and outputs are the stage runtime's (``run_training_stage``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cascade.config.schema.sft import SFTStageConfig
from cascade.data.sft_dataset import load_sft_files
from cascade.data.tokenizer import load_tokenizer, pad_token_id
from cascade.engine import (
    Checkpointer,
    build_model,
    build_optimizer,
    build_scheduler,
    export_hf,
    forward_backward,
    import_hf,
    split_global_batch,
    throughput,
    train_step,
)
from cascade.engine.init_source import InitSource
from cascade.engine.model import eval_mode
from cascade.sft.accounting import batch_plan
from cascade.sft.data import BatchInfo, GlobalBatches, SFTRows, build_rows, padded_to_multiple

PREFIX = "sft"


@dataclass
class _Data:
    train: SFTRows
    val: SFTRows | None
    pad_id: int
    summary: dict[str, Any]


def _load_data(cfg: SFTStageConfig, tokenizer_dir: Path) -> _Data:
    """Tokenize and pack the train (and held-out) files; every rank does the same work."""
    tok = load_tokenizer(tokenizer_dir)
    pad = pad_token_id(tok)
    d = cfg.data
    t0 = time.time()
    train = load_sft_files(d.train_files, tok, variant=d.template, max_rows=d.max_rows, keep_modes=d.modes)
    rows = build_rows(train.samples, d.seq_length, pad, packing=d.packing)
    summary: dict[str, Any] = {"train_rows_read": train.rows_read, "train_bad_rows": len(train.bad_rows),
                               "train_skipped_mode": train.skipped_mode,
                               "train_samples": len(train.samples), "train_packing": rows.stats.summary(),
                               "packing_efficiency": rows.stats.efficiency, "train_rows": len(rows)}
    val_rows = None
    if d.val_files:
        val = load_sft_files(d.val_files, tok, variant=d.template, max_rows=d.max_val_rows, keep_modes=d.modes)
        val_rows = build_rows(val.samples, d.seq_length, pad, packing=d.packing)
        summary.update(val_samples=len(val.samples), val_rows=len(val_rows), val_packing=val_rows.stats.summary())
    summary["seconds"] = round(time.time() - t0, 1)
    return _Data(rows, val_rows, pad, summary)


def heldout_loss(model: list, rows: SFTRows, micro_batch_size: int, pad_id: int) -> float:
    """Token-mean NLL over every held-out row (split over micro-batches and DP ranks)."""
    from megatron.core import parallel_state as ps

    padded = padded_to_multiple(rows, micro_batch_size * ps.get_data_parallel_world_size(), pad_id)
    batch = padded.batch(torch.arange(len(padded)))
    with eval_mode(model), torch.no_grad():
        metrics = forward_backward(model, split_global_batch(batch, micro_batch_size), forward_only=True)
    return metrics["lm_loss"]


def _data_state(cfg: SFTStageConfig, rows: SFTRows, rows_per_step: int) -> dict[str, Any]:
    state = {"fingerprint": rows.fingerprint(), "rows": len(rows), "packed": rows.packed,
             "global_batch_size": cfg.train.global_batch_size, "seed": cfg.train.seed}
    if cfg.train.batch_unit != "rows":  # the rows a step draws are then derived: part of the data position
        state.update(batch_unit=cfg.train.batch_unit, rows_per_step=rows_per_step)
    return state


def _load_init(init: InitSource, model: list, opt: Any, cfg: SFTStageConfig) -> None:
    """Fresh stage: weights only, from an HF directory or an earlier stage's Megatron checkpoint."""
    if init.format == "hf":
        import_hf(model, init.path, cfg.model)
        opt.reload_model_params()  # the optimizer's fp32 master copy
    else:
        Checkpointer(init.path.parent, model, opt).load(init.path, load_optimizer=False, load_rng=False)


def _step_record(metrics: dict[str, float], info: BatchInfo, seconds: float, n_params: int,
                 peak: throughput.Peak, devices: int) -> dict[str, Any]:
    """One step's metrics line (names are the metrics.jsonl contract)."""
    tps = info.real_tokens / seconds
    return {
        "loss": metrics["lm_loss"], "lr": metrics["lr"], "grad_norm": metrics["grad_norm"],
        "tokens_per_s": tps, "mfu": throughput.mfu(tps, n_params, peak, devices),
        "packing_efficiency": info.packing_efficiency, "step_time_s": seconds, "tokens": info.real_tokens,
        "loss_tokens": info.loss_tokens, "samples": info.sequences, "epoch": info.epoch,
        "update_skipped": 1.0 - metrics["update_ok"],
    }


def _eval_due(cfg: SFTStageConfig, step: int, total: int) -> bool:
    every = cfg.train.eval_interval
    return step == total or (every > 0 and step % every == 0)


def _layout_json(layout: Any) -> dict[str, Any]:
    return {k: getattr(layout, k) for k in ("world_size", "tp", "pp", "vp", "cp", "dp")}


def check_supported(cfg: SFTStageConfig) -> None:
    """Refuse, before any heavy work, what the engine would refuse at the first step."""
    if cfg.data.packing and cfg.parallel.context > 1:
        raise ValueError(
            f"data.packing=true with parallel.context={cfg.parallel.context}: the engine's packed-sequence "
            "path (segment_ids / THD) does not support context parallelism yet (cascade/engine/batch.py). "
            "Set data.packing=false, or parallel.context=1 with a layout that fits the sequence length.")
    multiple = cfg.parallel.sequence_multiple  # every row is padded to data.seq_length
    if cfg.data.seq_length % multiple:
        raise ValueError(
            f"data.seq_length={cfg.data.seq_length} is not a multiple of {multiple}, which parallel "
            f"(tensor={cfg.parallel.tensor}, context={cfg.parallel.context}, sequence_parallel="
            f"{cfg.parallel.sequence_parallel}) needs to split every row evenly")


class SFTHooks:
    """The SFT stage kind for ``run_training_stage``."""

    prefix = PREFIX

    def __init__(self) -> None:
        self.model = self.optimizer = self.scheduler = None
        self.val_losses: dict[int, float] = {}

    def setup(self, ctx: Any) -> int:
        cfg = self.cfg = ctx.job.config
        self.init: InitSource = ctx.init
        self.ctx = ctx
        self.data = data = _load_data(cfg, ctx.init.tokenizer_dir)
        ctx.say(f"data: {data.summary['train_packing']}")
        if data.val is not None:
            ctx.say(f"held-out: {data.summary['val_packing']}")
        t = cfg.train
        self.plan = plan = batch_plan(global_batch_size=t.global_batch_size, batch_unit=t.batch_unit, steps=t.steps,
                                      epochs=cfg.data.epochs, samples=data.summary["train_samples"],
                                      rows=len(data.train), multiple=t.micro_batch_size * ctx.layout.dp)
        self.batches = GlobalBatches(data.train, plan.rows_per_step, t.seed)
        self.total = total = plan.steps
        passes = plan.passes
        ctx.say(f"{total} steps x global batch {plan.rows_per_step} rows (~{plan.samples_per_step:.0f} conversations; "
                f"train.batch_unit={t.batch_unit}) = {passes:.2f} passes over {len(data.train)} rows "
                f"(data.epochs={cfg.data.epochs:g}); layout {_layout_json(ctx.layout)}")
        if t.steps and passes > 1.1 * cfg.data.epochs:
            ctx.say(f"WARNING: train.steps={t.steps} repeats the data {passes:.1f} times, data.epochs="
                    f"{cfg.data.epochs:g} (with train.batch_unit=rows a global batch counts packed rows, not "
                    "conversations); train.steps=0 derives the steps from data.epochs")
        self.model = build_model(cfg.model, cfg.parallel, cfg.precision,
                                 use_distributed_optimizer=cfg.optim.use_distributed_optimizer)
        self.optimizer = build_optimizer(self.model, cfg.optim, cfg.precision, cfg.parallel)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.scheduler, total_steps=total)
        self.n_params = throughput.count_parameters(self.model)
        self.peak = throughput.peak_flops(throughput.training_precision(cfg.precision.params_dtype,
                                                                         cfg.precision.fp8))
        self.world_size = ctx.layout.world_size
        return total

    def load_fresh(self, ctx: Any) -> None:
        _load_init(ctx.init, self.model, self.optimizer, self.cfg)

    def data_state(self) -> dict[str, Any]:
        return _data_state(self.cfg, self.data.train, self.plan.rows_per_step)

    def describe(self) -> str:
        return f"model {self.n_params:,} parameters; {self.peak.describe()}"

    def _heldout(self) -> float:
        return heldout_loss(self.model, self.data.val, self.cfg.train.micro_batch_size, self.data.pad_id)

    def evaluate_at_start(self) -> dict[str, float] | None:
        if self.data.val is None or not self.cfg.train.eval_at_start:
            return None
        self.val_losses[0] = self._heldout()
        return {"val/loss": self.val_losses[0]}

    def step(self, step: int, last: bool) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.time()
        info = self.batches.info(step)
        microbatches = split_global_batch(self.batches.batch(step), cfg.train.micro_batch_size)
        metrics = train_step(self.model, self.optimizer, self.scheduler, microbatches)
        record = _step_record(metrics, info, time.time() - t0, self.n_params, self.peak, self.world_size)
        if self.data.val is not None and _eval_due(cfg, step, self.total):
            record["val/loss"] = self.val_losses[step] = self._heldout()
        return record

    def finish(self, ctx: Any, total: int) -> dict[str, Any]:
        # held-out losses of the whole run (a resumed run reads the earlier ones back)
        for r in ctx.history():
            if r.get("val/loss") is not None:
                self.val_losses.setdefault(int(r["step"]), r["val/loss"])
        return {"val_loss": dict(sorted(self.val_losses.items()))}

    def export(self, hf_dir: Path) -> None:
        export_hf(self.model, hf_dir, self.cfg.model, tokenizer_dir=self.init.tokenizer_dir)

    def manifest_extra(self) -> dict[str, Any]:
        return {"data": self.data.summary, "parameters": self.n_params, "mfu_peak": self.peak.describe()}

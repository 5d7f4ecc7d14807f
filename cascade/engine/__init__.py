"""The Megatron-Core engine every Cascade stage trains on (CPU with gloo, or GPUs with NCCL).

Importing ``cascade.engine`` is cheap; the first use of a name below loads Megatron-Core (and, on
a machine without a GPU, first installs the CPU shim ``cascade.engine.cpu``, which patches torch
for the whole process: keep Megatron out of a pytest process and use ``run_local`` ranks, as
tests/engine does). Every function that takes ``model`` is collective. Typical SFT/RL use::

    from cascade.engine import (init_distributed, build_model, build_optimizer, build_scheduler,
                                import_hf, Checkpointer, split_global_batch,
                                train_step, compute_logprobs, export_hf)

    init_distributed(cfg.parallel, seed=cfg.train.seed)          # torchrun/srun env, or 1 process
    model = build_model(cfg.model, cfg.parallel, cfg.precision,  # list of chunks (virtual PP)
                        use_distributed_optimizer=cfg.optim.use_distributed_optimizer)
    opt = build_optimizer(model, cfg.optim, cfg.precision, cfg.parallel)
    sched = build_scheduler(opt, cfg.optim, cfg.scheduler, total_steps=cfg.train.steps)
    ckpt = Checkpointer.from_config(out / "checkpoints", model, opt, sched, cfg.checkpoint)
    start = ckpt.load_latest()            # None, or LoadedCheckpoint(step, extra_state, ...)
    if start is None:                     # a fresh stage starts from an HF directory
        import_hf(model, hf_dir, cfg.model)
        opt.reload_model_params()         # refresh the optimizer's fp32 master copy
    for step in range(start.step + 1 if start else 1, cfg.train.steps + 1):
        mbs = split_global_batch(next_global_batch(), cfg.train.micro_batch_size)
        metrics = train_step(model, opt, sched, mbs)
        if ckpt.save_if_due(step, {"data": loader.state_dict()}, stop=should_stop()):
            break                         # preempted: saved, exit cleanly (Slurm requeues)
    export_hf(model, out / "hf", cfg.model, tokenizer_dir=hf_dir)

API (one concept per module):

* ``parallel``: ``init_distributed(parallel_cfg, seed, model=None) -> Layout`` (TP, PP + virtual, CP,
  SP, EP with expert TP; ``model`` lets nemotron_h use SP on CPU, its torch norms take it; DP is
  the rest), ``destroy_distributed()``, ``LayoutError`` (e.g. sequence parallelism on CPU).
  ``parallel.virtual_pipeline`` is Megatron's model chunks per pipeline rank;
  ``parallel.recompute`` selects activation recomputation (none/selective/full).
* ``model``: ``build_model(model_cfg, parallel_cfg, precision_cfg, wrap_ddp=True,
  use_distributed_optimizer=True) -> list[chunk]``; ``count_parameters_on_meta(model_cfg)``;
  ``parameter_counts_on_meta(model_cfg) -> (total, active)``; ``transformer_config``; ``unwrap``.
  Qwen3 / Qwen2 / Llama as Megatron GPTModels (TE spec on GPU, local spec on CPU); ``nemotron_h``
  (hybrid Mamba-2 / attention / MoE, expert parallelism via ``parallel.expert``) as a Megatron
  HybridModel (``hybrid``; on CPU the Mamba kernels are the torch references in ``cpu_kernels``).
* ``precision``: ``resolve_precision(precision_cfg, parallel_cfg) -> PrecisionPlan``; bf16 default,
  FP8 (TE) on GPU only, ``PrecisionError`` otherwise.
* ``optim``: ``build_optimizer`` (Megatron AdamW, distributed optimizer, grad clipping, wired
  into the schedules' grad finalisation), ``build_scheduler`` (cosine/linear with warm-up,
  constant; counts optimizer steps).
* ``batch``: ``MicroBatch(tokens, labels, loss_mask, position_ids, segment_ids, extra)``,
  ``causal_lm_batch``, ``split_global_batch(global_batch, micro_batch_size)`` (gradient
  accumulation to the global batch over DP), ``num_microbatches``.
* ``step``: ``train_step(model, opt, sched, microbatches, loss_fn=masked_nll)``,
  ``forward_backward(..., forward_only=False)`` and ``compute_logprobs(model, microbatches,
  temperature=1.0)`` through ``get_forward_backward_func`` (PP=1 and PP>1). A loss function gets
  ``(logprobs [b, s], micro_batch)`` and returns ``(loss_sum, num_tokens, {name: [sum, count]})``;
  losses are normalised by the global token count, so every layout gives the same gradient.
* ``checkpoint``: ``Checkpointer(root, model, opt, sched, save_interval, keep_last)`` (or
  ``Checkpointer.from_config(..., cfg.checkpoint)``; ``async_save`` is refused) with
  ``save(step, extra_state)``, ``save_if_due(step, extra_state, stop)``, ``load_latest()``,
  ``load(path, load_optimizer=..., load_rng=...)``; atomic commit and ``latest`` pointer; loads
  under another TP/PP layout (resharding).
* (signals: the stage runtime's ``cascade.runtime.preemption`` decides when to stop; the engine
  only saves when told.)
* ``hf_io``: ``import_hf(model, hf_dir, model_cfg)``, ``export_hf(model, out_dir, model_cfg,
  tokenizer_dir, dtype)``, ``hf_state_dict`` (HF-named full tensors, e.g. for a vLLM refit),
  ``hf_backend()`` (Megatron-Bridge when importable, else our mapping ``hf_mapping``).
* ``launch``: ``run_local`` / ``LocalRanks`` start N local gloo ranks (tests, CPU toy runs).
* CLI (contract): ``python -m cascade.engine params CONFIG_YAML`` prints ``total_params=<int>``
  (and ``active_params=<int>`` for MoE models).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "parallel": ("init_distributed", "destroy_distributed", "Layout", "LayoutError"),
    "model": ("build_model", "count_parameters_on_meta", "parameter_counts_on_meta",
              "transformer_config", "unwrap", "ModelBuildError"),
    "precision": ("resolve_precision", "PrecisionPlan", "PrecisionError"),
    "optim": ("build_optimizer", "build_scheduler"),
    "batch": ("MicroBatch", "causal_lm_batch", "split_global_batch", "num_microbatches"),
    "step": ("train_step", "forward_backward", "compute_logprobs", "masked_nll", "token_logprobs"),
    "checkpoint": ("Checkpointer", "LoadedCheckpoint", "latest_checkpoint"),
    "hf_io": ("import_hf", "export_hf", "hf_state_dict", "hf_backend"),
    "launch": ("run_local", "LocalRanks"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'cascade.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cascade.engine.{_WHERE[name]}"), name)
    globals()[name] = value
    return value

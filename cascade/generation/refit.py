"""Refit: after every optimizer step the generator gets the trainer's new weights, so the next
batch is sampled from the current policy (strictly on-policy).

Rollout engines behind one interface, keyed by ``rollout.backend`` (``registry.BACKENDS``, the
one backend registry; modules imported on demand so the CPU path never imports vLLM):

* ``transformers`` (CPU, tests, the toy cascade): the HF model lives in this process; refit
  copies the HF-named full tensors into it.
* ``vllm`` (GPU): the colocated engine of ``cascade.generation.vllm_colocated`` (external-launcher
  mode, sleep/wake around training, weights loaded through vLLM's model ``load_weights``).

Weights come from ``cascade.engine.hf_state_dict`` (TP-gathered, HF names); with pipeline
parallelism each stage holds part of the model, so the parts are exchanged over the PP group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.distributed as dist
from megatron.core import parallel_state as ps
from megatron.core.transformer.module import MegatronModule

from cascade.config.schema.common import ModelConfig
from cascade.engine import hf_state_dict
from cascade.generation import Generator, GeneratorConfig, build_generator
from cascade.generation.registry import build_rollout_engine


class RolloutEngine(Protocol):
    """A generator plus what the loop does around training: free memory, take new weights."""

    generator: Generator

    def offload(self) -> None: ...  # before training (colocated engines release GPU memory)

    def refit(self, weights: dict[str, torch.Tensor]) -> None: ...

    def onload(self) -> None: ...  # after refit, before the next generation

    def close(self) -> None: ...


__all__ = ["RolloutEngine", "TransformersRollout", "build_rollout_engine", "trainer_weights"]


def trainer_weights(model: Sequence[MegatronModule], model_cfg: ModelConfig,
                    dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The whole model's weights under HF names on every rank (collective over TP and PP)."""
    weights = hf_state_dict(model, model_cfg, dtype)
    if ps.get_pipeline_model_parallel_world_size() > 1:
        parts: list[dict[str, torch.Tensor] | None] = [None] * ps.get_pipeline_model_parallel_world_size()
        dist.all_gather_object(parts, weights, group=ps.get_pipeline_model_parallel_group())
        weights = {k: v for part in parts for k, v in (part or {}).items()}
    return weights


class TransformersRollout:
    """The in-process transformers generator; refit copies tensors into its HF model."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        self.generator = build_generator(cfg)

    @property
    def hf_model(self) -> torch.nn.Module:
        return self.generator.model  # type: ignore[attr-defined]

    def offload(self) -> None:
        pass

    def onload(self) -> None:
        pass

    @torch.no_grad()
    def refit(self, weights: dict[str, torch.Tensor]) -> None:
        model = self.hf_model
        params = dict(model.named_parameters())
        tied = bool(getattr(model.config, "tie_word_embeddings", False))
        missing = [n for n in params if n not in weights and not (tied and n == "lm_head.weight")]
        unknown = [n for n in weights if n not in params]
        if missing or unknown:
            raise KeyError(f"refit names do not match the generator's model: missing {missing[:5]}, "
                           f"unknown {unknown[:5]}")
        for name, tensor in weights.items():
            p = params[name]
            if p.shape != tensor.shape:
                raise ValueError(f"refit {name}: trainer gives {tuple(tensor.shape)}, generator has {tuple(p.shape)}")
            p.copy_(tensor.to(device=p.device, dtype=p.dtype))

    def close(self) -> None:
        self.generator.close()

"""The one registry of rollout backends, keyed by `rollout.backend` ("vllm", "transformers").

Each backend has a generator (what evals and data filters sample with) and a rollout engine (the
same generator plus what the RL loop does around training: offload, refit, onload). Both are
found here; backend modules are imported only when asked for, so building the CPU generator
never imports vLLM and vice versa. A backend module registers its generator factory with
`@register_generator(name)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascade.generation.types import Generator, GeneratorConfig

GeneratorFactory = Callable[["GeneratorConfig"], "Generator"]
_REGISTRY: dict[str, GeneratorFactory] = {}


@dataclass(frozen=True)
class Backend:
    generator_module: str  # registers the generator factory on import
    rollout_engine: str  # "module:Class": generator + offload/refit/onload for the RL loop


BACKENDS: dict[str, Backend] = {
    "transformers": Backend("cascade.generation.hf_backend", "cascade.generation.refit:TransformersRollout"),
    "vllm": Backend("cascade.generation.vllm_backend", "cascade.generation.vllm_colocated:ColocatedVLLMRollout"),
}


class GeneratorUnavailable(RuntimeError):
    """The backend exists but cannot run here (e.g. vLLM without a GPU or without vllm)."""


def register_generator(name: str) -> Callable[[Any], Any]:
    def deco(factory: Any) -> Any:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"generator backend {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def registered_backends() -> list[str]:
    """Every backend name the registry knows (importable or not)."""
    return sorted(set(_REGISTRY) | set(BACKENDS))


def build_generator(cfg: GeneratorConfig) -> Generator:
    """The generator for `cfg.backend`, loaded from `cfg.model_path`."""
    if cfg.backend not in _REGISTRY and cfg.backend in BACKENDS:
        importlib.import_module(BACKENDS[cfg.backend].generator_module)
    try:
        factory = _REGISTRY[cfg.backend]
    except KeyError:
        raise ValueError(
            f"unknown generator backend {cfg.backend!r}; known: {registered_backends()}"
        ) from None
    return factory(cfg)


def build_rollout_engine(cfg: GeneratorConfig) -> Any:
    """The RL loop's rollout engine for `cfg.backend` (a `refit.RolloutEngine`)."""
    try:
        target = BACKENDS[cfg.backend].rollout_engine
    except KeyError:
        raise ValueError(f"unknown rollout.backend {cfg.backend!r}; known: {sorted(BACKENDS)}") from None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(cfg)

"""The Generator contract shared by evals, data_prep's difficulty filter and the RL trainer.

One protocol, several engines (vLLM on GPU, transformers on CPU): callers hand over prompts (text
already rendered with the chat template, or token ids) and sampling parameters, and get back, per
prompt, `n` samples with text, token ids, the log-probability of every sampled token, and why the
sample stopped. Everything here is plain data so results can be cached, compared across engines
and sent between processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from cascade.config.schema.common import RopeScaling

FinishReason = Literal["stop", "length"]  # "length": cut at max_new_tokens (or the context limit)
Backend = Literal["vllm", "transformers"]  # the same names as `rollout.backend` in the RL schema
Prompt = str | Sequence[int]  # rendered text (tokenized without extra specials) or token ids


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one prompt. Mirrors vLLM's names where they differ only in spelling.

    temperature 0 means greedy. top_k <= 0 and top_p == 1 disable those filters. With `seed` set,
    sample j of a prompt is a pure function of (model, prompt, params, seed, j): independent of
    batch composition, so a resumed evaluation regenerates exactly what it lost.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 256
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class Sample:
    """One sampled continuation.

    `token_ids` include the stop token when `finish_reason == "stop"` (the RL loss must see it);
    `text` is their decoding without that final stop token. `logprobs[i]` is log p(token_ids[i] |
    prefix) under the model's unmodified distribution (temperature 1, no top-k/top-p): what a
    teacher-forced forward pass of the same weights gives, and vLLM's default `raw_logprobs`.
    """

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: FinishReason

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass(frozen=True)
class GenerationOutput:
    """All samples of one prompt, in sample-index order."""

    prompt_token_ids: tuple[int, ...]
    samples: tuple[Sample, ...]


@dataclass(frozen=True)
class GeneratorConfig:
    """What it takes to build a generator: a local HF directory and engine settings."""

    model_path: str
    backend: Backend = "transformers"
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: fp32 on CPU, bf16 on GPU
    device: str | None = None  # transformers only; None: cuda if available, else cpu
    max_batch_size: int = 16  # transformers: rows (prompt x sample) per forward pass
    max_model_len: int | None = None  # prompt + response cap; None: the model's own limit
    rope_scaling: RopeScaling | None = None  # e.g. YaRN factor 2 for the paper's 64K budget
    tensor_parallel: int = 1  # vLLM
    gpu_memory_utilization: float = 0.85  # vLLM
    enable_prefix_caching: bool = True  # vLLM: n samples and avg@k share their prompt's KV
    kv_cache_gib: float | None = None  # vLLM: KV cache size; None: from gpu_memory_utilization (GPU), 1 GiB (CPU)
    seed: int = 0  # engine seed; only unseeded requests depend on it
    num_threads: int | None = None  # transformers on CPU: torch intra-op threads (process-wide);
    # 1 is far faster on an oversubscribed machine (OpenMP barriers wait for descheduled threads)

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.kv_cache_gib is not None and self.kv_cache_gib <= 0:
            raise ValueError("kv_cache_gib must be > 0")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError("num_threads must be >= 1")


@runtime_checkable
class Generator(Protocol):
    """A sampling engine over one model. `params` is one SamplingParams for all prompts, or one
    per prompt (vLLM allows both). Returns one GenerationOutput per prompt, in prompt order."""

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams | Sequence[SamplingParams]
    ) -> list[GenerationOutput]: ...

    @property
    def tokenizer(self):  # noqa: ANN201 - a transformers tokenizer; typed loosely on purpose
        """The model's tokenizer (callers render chat prompts and count tokens with it)."""
        ...

    def close(self) -> None:
        """Free the engine (GPU memory, worker processes)."""
        ...


def per_prompt_params(
    prompts: Sequence[Prompt], params: SamplingParams | Sequence[SamplingParams]
) -> list[SamplingParams]:
    """Broadcast one SamplingParams to every prompt, or check a per-prompt list's length."""
    if isinstance(params, SamplingParams):
        return [params] * len(prompts)
    params = list(params)
    if len(params) != len(prompts):
        raise ValueError(f"got {len(params)} SamplingParams for {len(prompts)} prompts")
    return params

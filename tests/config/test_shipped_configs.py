"""Every YAML under nemo_configs/ loads through the schemas (NeMo-RL's pattern), and the shipped
cascades carry the paper's stage order and values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.config import load_stage_config
from cascade.config_check import check_file, classify
from cascade.stages import load_cascade

REPO = Path(__file__).resolve().parents[2]
ALL_YAML = sorted((REPO / "nemo_configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(REPO / "nemo_configs")))
def test_every_shipped_yaml_is_valid(path: Path) -> None:
    check_file(path)


def test_every_stage_yaml_belongs_to_a_cascade() -> None:
    used = set()
    for cascade_file in REPO.glob("nemo_configs/*/cascade.yaml"):
        used.update(s.config for s in load_cascade(cascade_file).stages)
    stage_files = {p.resolve() for p in ALL_YAML if classify(p) == "stage"}
    assert stage_files - used == set(), "stage configs no cascade runs"


C1_8B_ORDER = [
    "sft_16k", "sft_32k", "rlhf", "if_rl_1", "if_rl_2",
    "math_rl_24k", "math_rl_32k", "math_rl_40k", "code_rl_44k", "code_rl_48k", "swe_rl_16k", "swe_rl_24k",
]
C1_14B_ORDER = [
    "sft_16k", "sft_32k", "rlhf", "if_rl_1", "if_rl_2", "math_rl_28k", "math_rl_40k", "code_rl", "swe_rl",
]


@pytest.mark.parametrize(
    "cascade_file,order",
    [("nemo_configs/qwen3_8b/cascade.yaml", C1_8B_ORDER), ("nemo_configs/qwen3_14b/cascade.yaml", C1_14B_ORDER)],
)
def test_plan_json_lists_c1_stages_in_order_with_hand_off(cascade_file: str, order: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cascade", "plan", cascade_file, "--json"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    stages = json.loads(out)
    assert [s["name"] for s in stages] == order
    for key in ("name", "kind", "config", "launcher", "init_from", "output_dir"):
        assert all(key in s for s in stages)
    for prev, cur in zip(stages, stages[1:]):
        assert cur["init_from"] == prev["output_dir"]
    assert stages[0]["kind"] == "sft" and all(s["kind"] == "rl" for s in stages[2:])


def test_8b_stage1_sft_has_the_papers_values() -> None:
    cfg = load_stage_config(REPO / "nemo_configs/qwen3_8b/sft_stage1_16k.yaml")
    assert cfg.train.global_batch_size == 256
    assert (cfg.optim.adam_beta1, cfg.optim.adam_beta2) == (0.9, 0.95)
    assert cfg.optim.weight_decay == pytest.approx(1e-4)
    assert cfg.optim.lr == pytest.approx(5e-5) and cfg.optim.min_lr == 0.0
    assert cfg.scheduler.type == "cosine"
    assert cfg.data.seq_length == 16384 and cfg.data.epochs == 1.0
    assert cfg.train.steps == 20000
    assert cfg.data.max_rows is None and cfg.data.max_val_rows is None  # the whole blend, not a toy cap
    assert cfg.data.packing and cfg.data.template == "cascade1"
    assert cfg.model.num_layers == 36 and cfg.model.num_query_groups == 8


def test_sft_stage2_and_14b_step_counts() -> None:
    s2 = load_stage_config(REPO / "nemo_configs/qwen3_8b/sft_stage2_32k.yaml")
    assert (s2.optim.lr, s2.data.seq_length, s2.train.steps) == (pytest.approx(2e-5), 32768, 32000)
    b1 = load_stage_config(REPO / "nemo_configs/qwen3_14b/sft_stage1_16k.yaml")
    b2 = load_stage_config(REPO / "nemo_configs/qwen3_14b/sft_stage2_32k.yaml")
    assert (b1.train.steps, b2.train.steps) == (22000, 41000)


def test_math_rl_curriculum_values() -> None:
    get = lambda name: load_stage_config(REPO / f"nemo_configs/qwen3_8b/{name}.yaml")  # noqa: E731
    s1, s2, s3 = get("math_rl_24k"), get("math_rl_32k"), get("math_rl_40k")
    assert [s.rollout.max_response_length for s in (s1, s2, s3)] == [24576, 32768, 40960]
    assert [s.rollout.temperature for s in (s1, s2, s3)] == [1.0, 1.0, 0.8]
    assert [s.filters.overlong_filtering for s in (s1, s2, s3)] == [True, False, False]
    assert [s.train.steps for s in (s1, s2, s3)] == [190, 240, 70]
    assert all(s.rollout.prompts_per_step == 128 and s.rollout.num_generations == 8 for s in (s1, s2, s3))
    assert s1.filters.epoch_pass_rate is not None and s1.filters.epoch_pass_rate.readmit_hard == 0.10
    assert s1.loss.kl_coef == 0.0 and s1.loss.aggregation == "token"


def test_param_count_arithmetic_of_shipped_models_matches_hf() -> None:
    """Independent of the engine: the YAML shapes give Qwen3's published parameter counts."""

    def count(m) -> int:  # noqa: ANN001
        h, f, L, v = m.hidden_size, m.ffn_hidden_size, m.num_layers, m.vocab_size
        q = m.num_attention_heads * m.kv_channels
        kv = m.num_query_groups * m.kv_channels
        attn = h * q + 2 * h * kv + q * h + (2 * m.kv_channels if m.qk_layernorm else 0)
        layer = attn + 3 * h * f + 2 * h
        return L * layer + h + v * h * (1 if m.tie_word_embeddings else 2)

    assert count(load_stage_config(REPO / "nemo_configs/qwen3_8b/sft_stage1_16k.yaml").model) == 8_190_735_360
    assert count(load_stage_config(REPO / "nemo_configs/qwen3_14b/sft_stage1_16k.yaml").model) == 14_768_307_200

"""The shipped C1 cascades against the paper's tables where a value was fixed after an audit:
8B Code RL as two chained stages (Table 19), the thinking models' SFT data (§3.4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.config import load_stage_config

REPO = Path(__file__).resolve().parents[2]


def _plan(cascade_file: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "cascade", "plan", cascade_file, "--json"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_8b_code_rl_is_two_chained_stages_44k_t1_then_48k_t08() -> None:
    stages = {s["name"]: s for s in _plan("nemo_configs/qwen3_8b/cascade.yaml")}
    code = [name for name in stages if name.startswith("code_rl")]
    assert code == ["code_rl_44k", "code_rl_48k"]
    assert stages["code_rl_48k"]["init_from"] == stages["code_rl_44k"]["output_dir"]
    assert stages["swe_rl_16k"]["init_from"] == stages["code_rl_48k"]["output_dir"]
    first = load_stage_config(REPO / stages["code_rl_44k"]["config"])
    second = load_stage_config(REPO / stages["code_rl_48k"]["config"])
    assert (first.rollout.max_response_length, first.rollout.temperature) == (44 * 1024, 1.0)
    assert (second.rollout.max_response_length, second.rollout.temperature) == (48 * 1024, 0.8)
    assert first.train.steps + second.train.steps == 90  # Table 19: 8B unified 90 steps
    for cfg in (first, second):
        assert (cfg.rollout.prompts_per_step, cfg.rollout.num_generations) == (128, 8)
        assert cfg.optim.lr == pytest.approx(4e-6) and not cfg.filters.overlong_filtering
        assert cfg.rollout.max_prompt_length + cfg.rollout.max_response_length <= cfg.model.max_position_embeddings


def test_14b_code_rl_keeps_its_single_56k_stage() -> None:
    cfg = load_stage_config(REPO / "nemo_configs/qwen3_14b/code_rl.yaml")
    assert (cfg.rollout.max_response_length, cfg.rollout.temperature, cfg.train.steps) == (56 * 1024, 1.0, 64)


C1_8B_THINKING_ORDER = [
    "sft_16k", "sft_32k", "rlhf", "if_rl_1", "if_rl_2",
    "math_rl_24k", "math_rl_32k", "math_rl_40k", "code_rl", "swe_rl_16k", "swe_rl_24k",
]


def test_8b_thinking_cascade_plans_with_launchers_and_the_thinking_columns() -> None:
    stages = _plan("nemo_configs/qwen3_8b_thinking/cascade.yaml")
    assert [s["name"] for s in stages] == C1_8B_THINKING_ORDER
    for prev, cur in zip(stages, stages[1:]):
        assert cur["init_from"] == prev["output_dir"]
    for s in stages:
        assert (REPO / s["launcher"]).is_file(), s["launcher"]
        assert s["launcher"].startswith("launchers/qwen3_8b_thinking/")
    cfg = {s["name"]: load_stage_config(REPO / s["config"]) for s in stages}
    for name in C1_8B_THINKING_ORDER[2:]:
        assert cfg[name].rollout.mode.value == "thinking", name  # §3.4: thinking only
        assert cfg[name].model.num_layers == 36  # Qwen3-8B
    # Table 16, 8B-Thinking column: combined IF + RM reward, 8K/16K, 550/300 steps
    if1, if2 = cfg["if_rl_1"], cfg["if_rl_2"]
    assert if1.reward.domain.value == if2.reward.domain.value == "instruction_rm"
    assert (if1.rollout.max_response_length, if1.filters.overlong_filtering, if1.train.steps) == (8192, False, 550)
    assert (if2.rollout.max_response_length, if2.filters.overlong_filtering, if2.train.steps) == (16384, True, 300)
    # Table 19, 8B-Thinking column: 44K, temperature 1.2, 64 steps
    code = cfg["code_rl"]
    assert (code.rollout.max_response_length, code.rollout.temperature, code.train.steps) == (45056, 1.2, 64)
    assert cfg["rlhf"].train.steps == 800  # Table 15: 8B

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

"""Contract: `python -m cascade.engine params CONFIG_YAML` builds the model on the meta device and
prints `total_params=<int>`: exactly the HF model's parameter count, for the shipped SFT configs
of Qwen3-8B-Base and Qwen3-14B-Base and for the toy SmolLM2-135M-Instruct config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {
    "qwen3_8b/sft_stage1_16k.yaml": 8_190_735_360,
    "qwen3_14b/sft_stage1_16k.yaml": 14_768_307_200,
    "tiny/sft.yaml": 134_515_008,
}


@pytest.mark.timeout(300)
def test_params_cli_prints_hf_parameter_counts() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = {  # run concurrently: each is ~6 s, mostly importing Megatron
        cfg: subprocess.Popen([sys.executable, "-m", "cascade.engine", "params", f"nemo_configs/{cfg}"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for cfg in EXPECTED
    }
    for cfg, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=240)
        finally:
            proc.kill()
        assert proc.returncode == 0, err[-3000:]
        assert out.strip().splitlines() == [f"total_params={EXPECTED[cfg]}"], (cfg, out)


def _nano3_counts_by_hand() -> tuple[int, int]:
    """Nemotron-3-Nano-30B-A3B counted from its architecture (Megatron-Bridge 0.6.2's provider
    values, nemo_configs/base/model/nano3_30b_a3b.yaml), independently of Megatron's modules."""
    hidden, vocab = 2688, 131072
    heads, groups, head_dim = 32, 2, 128
    m_heads, m_dim, state, m_groups, conv = 64, 64, 128, 8, 4
    experts, top_k, expert_ffn, shared_ffn = 128, 6, 1856, 3712
    d_inner, conv_dim = m_heads * m_dim, m_heads * m_dim + 2 * m_groups * state
    mamba = (hidden  # pre-norm
             + hidden * (2 * d_inner + 2 * m_groups * state + m_heads)  # in_proj: z x B C dt
             + conv_dim * conv + conv_dim  # depthwise conv weight + bias
             + 3 * m_heads + d_inner  # dt_bias, A_log, D; gated RMSNorm
             + d_inner * hidden)  # out_proj
    attention = hidden + hidden * (heads + 2 * groups) * head_dim + heads * head_dim * hidden
    expert = 2 * hidden * expert_ffn  # squared-ReLU MLP: up, down
    moe_dense = hidden + experts * hidden + 2 * hidden * shared_ffn  # norm, router, shared expert
    fixed = 2 * vocab * hidden + hidden + 23 * mamba + 6 * attention + 23 * moe_dense
    return fixed + 23 * experts * expert, fixed + 23 * top_k * expert


@pytest.mark.timeout(300)
def test_params_cli_nano3_total_and_active_match_the_architecture() -> None:
    total, active = _nano3_counts_by_hand()
    assert (total, active) == (31_577_937_344, 3_580_073_408)  # published: ~31.6B total, ~3.6B active
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "cascade.engine", "params", "nemo_configs/nano3_30b_a3b/sft.yaml"],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines() == [f"total_params={total}", f"active_params={active}"]

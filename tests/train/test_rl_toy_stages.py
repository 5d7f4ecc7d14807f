"""(slow) The toy cascade's RLHF, IF-RL and Math RL stages on SmolLM2-135M-Instruct (CPU), chained
through the stage graph and the launcher's run-stage entry point, each writing checkpoints,
metrics and its HF export.

Inputs: the toy data products (``data_prep.toy``, from the offline packages); the policy starts
from the offline SmolLM2-135M-Instruct (what the toy SFT stage starts from too); the reward model
side stage is stood in for by SmolLM2 plus an untrained linear head in the format the RM recipe
exports (``hf/`` + ``reward_head.safetensors``), marked COMPLETE the way run-stage would. The RL
stages use the shipped ``nemo_configs/tiny`` YAMLs with shorter runs (stage overrides).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cascade.engine.launch import run_local
from cascade.runtime.stage_dirs import StageDirs
from test_rl_support import REPO, cascade_yaml, job_env, read_metrics, run_stage_argv

STAGE_TIMEOUT = 1800
SHORT = ["train.steps=2", "checkpoint.save_interval=1", "rollout.prompts_per_step=2",
         "rollout.max_response_length=48"]


def _reward_model(out: Path) -> Path:
    """SmolLM2 + a seeded random head [1, hidden]: the RM recipe's export format, untrained."""
    import torch
    from safetensors.torch import save_file

    from cascade.offline import smollm2_hf_dir

    hf = out / "hf"
    shutil.copytree(smollm2_hf_dir(), hf)
    hidden = json.loads((hf / "config.json").read_text())["hidden_size"]
    g = torch.Generator().manual_seed(0)
    save_file({"weight": torch.randn(1, hidden, generator=g) / hidden**0.5, "bias": torch.zeros(1)},
              str(hf / "reward_head.safetensors"))
    StageDirs(out).mark_complete({"stage": "reward_model", "note": "test stand-in: untrained head"})
    return out


@pytest.mark.slow
def test_toy_rlhf_if_math_stages_on_smollm2(tmp_path: Path) -> None:
    from cascade.offline import smollm2_hf_dir
    from data_prep.toy import ToyConfig, build_toy

    data = tmp_path / "data"
    build_toy(data, ToyConfig(verify_code=False))
    rm = _reward_model(tmp_path / "rm")
    tiny = REPO / "nemo_configs" / "tiny"
    cascade = cascade_yaml(
        tmp_path / "cascade.yaml", run_dir=tmp_path / "run", init=Path(smollm2_hf_dir()),
        side=[{"name": "reward_model", "kind": "reward_model", "config": str(tiny / "reward_model.yaml"),
               "init_path": str(smollm2_hf_dir()), "output_dir": str(rm)}],
        stages=[{"name": "rlhf", "kind": "rl", "config": str(tiny / "rlhf.yaml"), "uses": {"reward_model": "reward_model"},
                 "overrides": SHORT},
                {"name": "if_rl", "kind": "rl", "config": str(tiny / "if_rl.yaml"), "overrides": SHORT},
                {"name": "math_rl", "kind": "rl", "config": str(tiny / "math_rl.yaml"), "overrides": SHORT}])
    env = job_env(CASCADE_TOY_DATA=str(data), OMP_NUM_THREADS="2")
    domains = {"rlhf": "reward_model", "if_rl": "instruction", "math_rl": "math"}
    for i, stage in enumerate(("rlhf", "if_rl", "math_rl"), start=1):
        (r,) = run_local(1, run_stage_argv(cascade, stage), timeout=STAGE_TIMEOUT, log_dir=tmp_path / f"logs_{stage}",
                         env=env, cwd=REPO)
        assert r.returncode == 0, r.output[-6000:]
        out = tmp_path / "run" / f"{i:02d}_{stage}"
        lines = read_metrics(out)
        assert [m["step"] for m in lines] == [1, 2]
        for m in lines:
            assert f"reward/{domains[stage]}/mean" in m and "mismatch/token_mult_prob_error" in m
            assert m["mismatch/token_mult_prob_error"] < 1.01, m  # fp32 HF generator vs fp32 Megatron
            assert m["reward/error_frac"] == 0.0, m
        assert sorted(p.name for p in (out / "checkpoints").glob("iter_*"))[-1] == "iter_0000002"
        assert (out / "hf" / "model.safetensors").is_file()
        manifest = json.loads((out / "stage_manifest.json").read_text())
        assert manifest["status"] == "complete"
        if stage != "rlhf":  # later stages start from the previous stage's Megatron checkpoint
            assert manifest["init_source"]["format"] == "megatron"
        assert StageDirs(out).is_complete()
    rlhf = read_metrics(tmp_path / "run" / "01_rlhf")
    assert {"reward/mode_thinking/mean", "reward/mode_instruct/mean"} <= set(rlhf[0])  # half-half

"""FP8 as a recipe option: one override (``precision.fp8=hybrid``) selects the documented FP8
variant for every 8B/14B SFT and RL stage, the preset file spells out the same values, what can
be refused at load time is, and the CPU engine refuses FP8 with a one-line reason."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cascade.config import ConfigError, load_stage_config
from cascade.config.schema.common import PrecisionConfig

REPO = Path(__file__).resolve().parents[2]
PRESET = REPO / "nemo_configs" / "base" / "precision" / "fp8.yaml"
DOCUMENTED = dict(params_dtype="bf16", fp8="hybrid", fp8_recipe="delayed", fp8_margin=0,
                  fp8_amax_history_len=1024, fp8_amax_compute_algo="max", fp8_param=False)


def _stages() -> list[Path]:
    out = []
    for model in ("qwen3_8b", "qwen3_14b"):
        for f in sorted((REPO / "nemo_configs" / model).glob("*.yaml")):
            kind = (yaml.safe_load(f.read_text()) or {}).get("kind")
            if kind in ("sft", "rl"):
                out.append(f)
    return out


STAGES = _stages()


def test_preset_file_is_the_documented_variant() -> None:
    assert yaml.safe_load(PRESET.read_text())["precision"] == DOCUMENTED


def test_found_the_stages() -> None:
    assert len(STAGES) >= 20, STAGES  # 8B and 14B: 4 SFT + 16 RL stage files today


@pytest.mark.parametrize("stage", STAGES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_one_override_selects_fp8(stage: Path) -> None:
    base = load_stage_config(stage)
    assert base.precision.fp8 is None  # no shipped stage turns FP8 on
    cfg = load_stage_config(stage, ["precision.fp8=hybrid"])
    assert dataclasses.asdict(cfg.precision) == DOCUMENTED
    # Nothing else moves: rollouts (vLLM) stay as they were, i.e. bf16.
    assert dataclasses.replace(cfg, precision=base.precision) == base


def test_preset_through_defaults(tmp_path: Path) -> None:
    stage = STAGES[0]
    mine = tmp_path / "fp8_stage.yaml"
    mine.write_text(f"defaults: [{stage}, {PRESET}]\n")
    assert dataclasses.asdict(load_stage_config(mine).precision) == DOCUMENTED


@pytest.mark.parametrize(("overrides", "match"), [
    (["precision.fp8=hybrid", "precision.params_dtype=fp16"], "needs params_dtype=bf16"),
    (["precision.fp8=hybrid", "precision.params_dtype=fp32"], "needs params_dtype=bf16"),
    (["precision.fp8_param=true"], "fp8_param needs fp8"),
    (["precision.fp8=hybrid", "precision.fp8_amax_history_len=0"], "fp8_amax_history_len"),
    (["precision.fp8=e5m2"], "precision.fp8"),
    (["precision.fp8=hybrid", "precision.fp8_amax_compute_algo=mean"], "fp8_amax_compute_algo"),
])
def test_load_time_refusals(overrides: list[str], match: str) -> None:
    with pytest.raises((ConfigError, ValueError), match=match):
        load_stage_config(STAGES[0], overrides)


_ENGINE = r"""
import dataclasses, json, sys
from cascade.config import load_stage_config
from cascade.engine.model import build_model
from cascade.engine.precision import PrecisionError, PrecisionPlan
import torch
from megatron.core.transformer.transformer_config import TransformerConfig

cfg = load_stage_config(sys.argv[1], ["precision.fp8=hybrid"])
try:
    build_model(cfg.model, cfg.parallel, cfg.precision)  # refuses before building anything
    err = None
except PrecisionError as e:
    err = str(e)
plan = PrecisionPlan(torch.bfloat16, "hybrid", "delayed", False, fp8_margin=0,
                     fp8_amax_history_len=1024, fp8_amax_compute_algo="max")
fields = {f.name for f in dataclasses.fields(TransformerConfig)}
print("RESULT " + json.dumps(dict(error=err, kwargs=plan.transformer_kwargs(),
                                  unknown=sorted(set(plan.transformer_kwargs()) - fields)), default=str))
"""


def test_cpu_engine_refuses_fp8_and_megatron_knows_every_field() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", CASCADE_DEVICE="cpu")
    proc = subprocess.run([sys.executable, "-c", _ENGINE, str(STAGES[0])], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))[7:])
    assert res["error"] is not None and "\n" not in res["error"]
    assert res["error"].startswith("precision.fp8='hybrid' needs Transformer Engine on an NVIDIA GPU")
    assert "CASCADE_DEVICE=cpu" in res["error"]
    assert res["unknown"] == []  # every FP8 field is a Megatron-Core 0.19.2 TransformerConfig field
    kw = res["kwargs"]
    assert (kw["fp8"], kw["fp8_recipe"], kw["fp8_amax_history_len"], kw["fp8_amax_compute_algo"],
            kw["fp8_margin"], kw["bf16"]) == ("hybrid", "delayed", 1024, "max", 0, True)


def test_precision_defaults_are_bf16_without_fp8() -> None:
    p = PrecisionConfig()
    assert (p.params_dtype, p.fp8, p.fp8_param) == ("bf16", None, False)

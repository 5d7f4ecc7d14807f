"""vLLM engine arguments of a hybrid Mamba model (nemotron_h) keep the SSM state in fp32; other
models are left to vLLM's default."""

from __future__ import annotations

import json
from pathlib import Path

from cascade.generation.types import GeneratorConfig
from cascade.generation.vllm_backend import engine_kwargs


def _model_dir(tmp_path: Path, model_type: str) -> str:
    d = tmp_path / model_type
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": model_type}))
    return str(d)


def test_nemotron_h_gets_an_fp32_ssm_cache(tmp_path: Path) -> None:
    path = _model_dir(tmp_path, "nemotron_h")
    assert engine_kwargs(GeneratorConfig(model_path=path, backend="vllm"), path)["mamba_ssm_cache_dtype"] == "float32"


def test_dense_models_keep_the_default(tmp_path: Path) -> None:
    path = _model_dir(tmp_path, "qwen3")
    assert "mamba_ssm_cache_dtype" not in engine_kwargs(GeneratorConfig(model_path=path, backend="vllm"), path)

"""Backend registry: names match `rollout.backend`; vLLM fails clearly where it cannot run."""

from __future__ import annotations

import sys
import typing

import pytest

from cascade.config.schema.rl import RolloutConfig
from cascade.generation import GeneratorConfig, GeneratorUnavailable, build_generator, registered_backends


def test_backends_match_rollout_schema():
    literal = typing.get_type_hints(RolloutConfig)["backend"]
    assert set(typing.get_args(literal)) == set(registered_backends()) == {"vllm", "transformers"}


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown generator backend 'sglang'"):
        build_generator(GeneratorConfig(model_path="x", backend="sglang"))  # type: ignore[arg-type]


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local HF model directory"):
        build_generator(GeneratorConfig(model_path=str(tmp_path / "nope")))


def test_vllm_without_vllm_says_what_it_needs(tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError, as where it is absent
    with pytest.raises(GeneratorUnavailable, match="vllm backend needs vllm installed"):
        build_generator(GeneratorConfig(model_path=str(tiny_model_dir), backend="vllm"))

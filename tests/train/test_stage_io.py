"""Stage I/O: every form `init_from` may take, and the manifest a stage hands on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade.config import load_stage_config
from cascade.engine.init_source import InitSourceError, resolve_init
from cascade.runtime.manifest import StageManifest, config_hash, read_manifest

REPO = Path(__file__).resolve().parents[2]


def _hf(path: Path, tokenizer: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    if tokenizer:
        (path / "tokenizer.json").write_text("{}")
    return path


def _stage(root: Path, step: int = 30, hf: bool = True) -> Path:
    it = root / "checkpoints" / f"iter_{step:07d}"
    it.mkdir(parents=True)
    (it / "cascade_meta.json").write_text("{}")
    (root / "checkpoints" / "latest").write_text(it.name + "\n")
    if hf:
        _hf(root / "hf")
    return root


def test_hf_directory(tmp_path: Path) -> None:
    src = resolve_init(_hf(tmp_path / "base"))
    assert (src.format, src.path, src.tokenizer_dir) == ("hf", tmp_path / "base", tmp_path / "base")


def test_stage_dir_prefers_its_final_megatron_checkpoint(tmp_path: Path) -> None:
    stage = _stage(tmp_path / "01_sft")
    src = resolve_init(stage)
    assert src.format == "megatron" and src.path == stage / "checkpoints" / "iter_0000030"
    assert src.tokenizer_dir == stage / "hf" and src.given == str(stage)


def test_stage_dir_with_only_an_hf_export(tmp_path: Path) -> None:
    stage = tmp_path / "02_rl"
    _hf(stage / "hf")
    src = resolve_init(stage)
    assert (src.format, src.path) == ("hf", stage / "hf")


def test_checkpoint_root_and_iter_dir(tmp_path: Path) -> None:
    stage = _stage(tmp_path / "s")
    assert resolve_init(stage / "checkpoints").path == stage / "checkpoints" / "iter_0000030"
    assert resolve_init(stage / "checkpoints" / "iter_0000030").format == "megatron"


def test_tokenizer_from_the_manifest_when_there_is_no_hf_export(tmp_path: Path) -> None:
    stage = _stage(tmp_path / "s", hf=False)
    with pytest.raises(InitSourceError, match="no tokenizer"):
        resolve_init(stage)
    tok = _hf(tmp_path / "base")
    (stage / "stage_manifest.json").write_text(json.dumps({"tokenizer_dir": str(tok)}))
    assert resolve_init(stage).tokenizer_dir == tok


def test_errors_name_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(InitSourceError, match="does not exist"):
        resolve_init(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InitSourceError, match="HF model dir"):
        resolve_init(tmp_path / "empty")


def test_manifest_round_trip_and_config_hash(tmp_path: Path) -> None:
    a = load_stage_config(REPO / "nemo_configs/qwen3_8b/sft_stage1_16k.yaml")
    b = load_stage_config(REPO / "nemo_configs/qwen3_8b/sft_stage1_16k.yaml", ["optim.lr=1e-5"])
    assert config_hash(a) == config_hash(a) != config_hash(b)
    m = StageManifest(stage="sft", kind="sft", status="complete", init_from="x", init_source={}, config=None,
                      config_hash=config_hash(a), steps_done=3, total_steps=3, final_checkpoint="c",
                      hf_export="h", tokenizer_dir="t", metrics="m", world_size=1)
    m.write(tmp_path)
    got = read_manifest(tmp_path)
    assert got["final_checkpoint"] == "c" and got["status"] == "complete" and got["updated_at"] > 0
    assert read_manifest(tmp_path / "nothing") is None

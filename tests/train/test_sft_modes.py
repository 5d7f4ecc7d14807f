"""A thinking-only model's SFT stage trains on thinking answers only (C1 §3.4): ``data.modes``
makes the SFT trainer skip (and count) answers in other modes, whatever blend it is pointed at."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cascade.config import load_stage_config
from cascade.sft.trainer import _load_data

HERE = Path(__file__).resolve().parent


def _cfg(data: Path, *extra: str):
    return load_stage_config(HERE / "tiny_sft.yaml", [
        f"data.train_files=[{data / 'sft' / 'train.parquet'}]",
        f"data.val_files=[{data / 'sft' / 'val.parquet'}]", "checkpoint.save_interval=1", *extra])


def test_modes_thinking_skips_instruct_answers(sft_inputs: dict[str, Path]) -> None:
    data = sft_inputs["data"]
    train_modes = pd.read_parquet(data / "sft" / "train.parquet")["mode"].tolist()
    instruct = train_modes.count("instruct")
    assert 0 < instruct < len(train_modes)  # the fixture blend has both modes

    every = _load_data(_cfg(data), sft_inputs["hf"])
    thinking = _load_data(_cfg(data, "data.modes=[thinking]"), sft_inputs["hf"])

    assert every.summary["train_skipped_mode"] == 0
    assert every.summary["train_samples"] == len(train_modes)
    assert thinking.summary["train_skipped_mode"] == instruct
    assert thinking.summary["train_samples"] == len(train_modes) - instruct
    assert thinking.summary["val_samples"] < every.summary["val_samples"]


def test_shipped_thinking_models_train_thinking_answers_from_the_thinking_blend() -> None:
    repo = HERE.parents[1]
    for name in ("qwen3_14b/sft_stage1_16k.yaml", "qwen3_14b/sft_stage2_32k.yaml",
                 "qwen3_8b_thinking/sft_stage1_16k.yaml", "qwen3_8b_thinking/sft_stage2_32k.yaml"):
        cfg = load_stage_config(repo / "nemo_configs" / name)
        assert [m.value for m in cfg.data.modes] == ["thinking"], name
        assert all("/sft_thinking/" in f for f in cfg.data.train_files + cfg.data.val_files), name
    unified = load_stage_config(repo / "nemo_configs/qwen3_8b/sft_stage1_16k.yaml")
    assert unified.data.modes is None and all("/sft/" in f for f in unified.data.train_files)

"""SFT batch/step/epoch accounting (C1 Table 14, §3.2): the paper's batch of 256 counts
conversations and its 20K-41K steps walk each stage's data about once; with packing, a step takes
the packed rows that hold 256 conversations on average."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascade.config import load_stage_config
from cascade.sft.accounting import batch_plan

REPO = Path(__file__).resolve().parents[2]


def test_samples_unit_takes_the_packed_rows_of_256_conversations() -> None:
    # 5.44M conversations packed 4 to a row on average: 1.36M rows; a step = 64 rows = 256 conversations
    plan = batch_plan(global_batch_size=256, batch_unit="samples", steps=20_000, epochs=1.0,
                      samples=5_436_618, rows=1_359_155, multiple=16)
    assert plan.rows_per_step == 64 and plan.steps == 20_000
    assert plan.samples_per_step == pytest.approx(256, rel=0.01)
    assert plan.passes == pytest.approx(20_000 * 256 / 5_436_618, rel=0.01)  # 0.94: about one epoch


def test_rows_unit_counts_packed_rows_and_repeats_the_data() -> None:
    plan = batch_plan(global_batch_size=256, batch_unit="rows", steps=20_000, epochs=1.0,
                      samples=5_436_618, rows=1_359_155, multiple=16)
    assert plan.rows_per_step == 256 and plan.passes == pytest.approx(3.77, rel=0.01)  # what the trainer warns of


def test_steps_from_epochs_and_the_data_parallel_multiple() -> None:
    plan = batch_plan(global_batch_size=256, batch_unit="samples", steps=0, epochs=1.0,
                      samples=1000, rows=300, multiple=32)
    assert plan.steps == 3  # 1000 conversations / 256 per step
    assert plan.rows_per_step == 64  # 256 x 0.3 = 76.8 rows, to the nearest multiple of 32
    tiny = batch_plan(global_batch_size=4, batch_unit="samples", steps=0, epochs=1.0, samples=10, rows=2,
                      multiple=2)
    assert tiny.rows_per_step == 2  # never below one row per DP rank and micro batch
    unpacked = batch_plan(global_batch_size=8, batch_unit="samples", steps=5, epochs=1.0, samples=40, rows=40,
                          multiple=4)
    assert unpacked.rows_per_step == 8 and unpacked.passes == 1.0  # without packing the units agree


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        batch_plan(global_batch_size=8, batch_unit="tokens", steps=1, epochs=1.0, samples=1, rows=1, multiple=1)
    with pytest.raises(ValueError):
        batch_plan(global_batch_size=8, batch_unit="rows", steps=1, epochs=1.0, samples=0, rows=1, multiple=1)


@pytest.mark.parametrize("name,steps", [("qwen3_8b/sft_stage1_16k.yaml", 20_000), ("qwen3_8b/sft_stage2_32k.yaml", 32_000),
                                        ("qwen3_14b/sft_stage1_16k.yaml", 22_000),
                                        ("qwen3_14b/sft_stage2_32k.yaml", 41_000),
                                        ("qwen3_8b_thinking/sft_stage1_16k.yaml", 20_000)])
def test_shipped_sft_stages_count_conversations(name: str, steps: int) -> None:
    cfg = load_stage_config(REPO / "nemo_configs" / name)
    assert (cfg.train.batch_unit, cfg.train.global_batch_size, cfg.train.steps) == ("samples", 256, steps)
    assert cfg.data.epochs == 1.0 and cfg.data.packing


def test_the_sft_stage_draws_the_packed_rows_of_its_conversation_batch(sft_inputs: dict, tmp_path: Path) -> None:
    import json
    import re

    from sft_harness import run_sft

    run = run_sft(sft_inputs, tmp_path / "stage", "train.batch_unit=samples", "train.global_batch_size=16",
                  "train.steps=3", "checkpoint.save_interval=3").check_ok()
    out = run.results[0].output
    m = re.search(r"3 steps x global batch (\d+) rows \(~(\d+) conversations; train.batch_unit=samples\)", out)
    assert m, out[-3000:]
    rows_per_step, conversations = int(m.group(1)), int(m.group(2))
    assert rows_per_step < 16 and rows_per_step % 2 == 0  # packed: fewer rows than conversations; micro batch 2
    assert abs(conversations - 16) <= conversations / rows_per_step + 1  # rounded to whole micro batches (<= 1 row)
    lines = [json.loads(x) for x in (tmp_path / "stage" / "metrics.jsonl").read_text().splitlines()]
    samples = [r["samples"] for r in lines if "samples" in r]
    assert len(samples) == 3 and all(s > rows_per_step for s in samples)  # each row holds several conversations

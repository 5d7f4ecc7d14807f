"""The SFT stage end to end on the tiny model: outputs (checkpoint, HF export, metrics.jsonl,
TensorBoard, manifest), held-out loss going down, and the hand-off to a next stage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sft_harness import TINY_STEPS, SFTRun, run_sft

REQUIRED_KEYS = ("step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu", "packing_efficiency")


def test_metrics_jsonl_has_one_line_per_step_with_the_expected_metrics(tiny_run: SFTRun) -> None:
    rows = tiny_run.metrics()
    assert [r["step"] for r in rows] == list(range(0, TINY_STEPS + 1))
    assert set(rows[0]) == {"step", "time", "val/loss"}  # step 0: held-out loss before training
    for r in rows[1:]:
        assert all(k in r for k in REQUIRED_KEYS), sorted(r)
        assert math.isfinite(r["loss"]) and r["grad_norm"] > 0 and r["tokens_per_s"] > 0
        assert 0 < r["packing_efficiency"] <= 1
        assert r["mfu"] is None  # CPU: no peak FLOPs, reported as n/a
    lrs = [r["lr"] for r in rows[1:]]
    assert lrs[0] == pytest.approx(2e-3) and lrs == sorted(lrs, reverse=True)  # cosine decay
    assert "val/loss" in rows[-1]


def test_heldout_loss_goes_down(tiny_run: SFTRun) -> None:
    rows = tiny_run.metrics()
    before, after = rows[0]["val/loss"], rows[-1]["val/loss"]
    assert after < before - 0.3, (before, after)
    assert tiny_run.manifest()["extra"]["val_loss"] == {"0": before, str(TINY_STEPS): after}


def test_progress_line_with_eta_and_packing_report(tiny_run: SFTRun) -> None:
    log = tiny_run.log
    assert "FRESH START from hf weights" in log
    assert f"[sft] step {TINY_STEPS}/{TINY_STEPS} (100%) | loss" in log and "ETA" in log
    assert "efficiency" in log and "MFU n/a" in log


def test_writes_checkpoint_hf_export_tensorboard_and_manifest(tiny_run: SFTRun) -> None:
    out = tiny_run.out
    final = out / "checkpoints" / f"iter_{TINY_STEPS:07d}"
    assert (out / "checkpoints" / "latest").read_text().strip() == final.name
    # the stage is finished: its last checkpoint keeps weights, scheduler and RNG, not the optimizer
    assert json.loads((final / "cascade_meta.json").read_text())["has_optimizer"] is False
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (out / "hf").iterdir()}
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((out / "config.json").read_text())["train"]["steps"] == TINY_STEPS
    m = tiny_run.manifest()
    assert (m["stage"], m["kind"], m["status"]) == ("tiny_sft", "sft", "complete")
    assert (m["steps_done"], m["total_steps"]) == (TINY_STEPS, TINY_STEPS)
    assert m["final_checkpoint"] == str(final) and m["hf_export"] == str(out / "hf")
    assert m["init_source"]["format"] == "hf" and len(m["config_hash"]) == 16
    assert 0 < m["extra"]["data"]["packing_efficiency"] <= 1


def test_hf_export_loads_in_transformers_and_generates(tiny_run: SFTRun) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = tiny_run.out / "hf"
    tok = AutoTokenizer.from_pretrained(hf, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(hf, local_files_only=True, dtype=torch.float32)
    ids = tok("<|im_start|>user\nWhat is 2+2? /no_think<|im_end|>\n<|im_start|>assistant\n", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 6


@pytest.mark.slow
def test_next_stage_starts_from_the_previous_stages_final_checkpoint(
    tiny_run: SFTRun, sft_inputs: dict[str, Path], tmp_path: Path
) -> None:
    nxt = run_sft(sft_inputs, tmp_path / "stage2", "train.steps=1", init_from=tiny_run.out).check_ok()
    src = nxt.manifest()["init_source"]
    assert src["format"] == "megatron" and src["path"] == tiny_run.manifest()["final_checkpoint"]
    assert src["tokenizer_dir"] == str(tiny_run.out / "hf")
    # the weights carried over exactly: stage 2's held-out loss before training = stage 1's after
    assert nxt.metrics()[0]["val/loss"] == pytest.approx(tiny_run.metrics()[-1]["val/loss"], rel=1e-6)

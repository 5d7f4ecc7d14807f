"""The toy SFT stage as users run it: SmolLM2-135M-Instruct on the data_prep toy blend with
nemo_configs/tiny/sft.yaml, through the launcher's run-stage protocol. It is preempted with
SIGTERM mid-run (saves, exits 75), restarted (RESUMING), finishes with a lower held-out loss, a
checkpoint, an HF export that transformers loads and generates with, and a manifest.

Slow: the config's training steps (16) of 1024 tokens on a 2-core CPU (minutes idle, more when shared).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.engine.launch import LocalRanks
from sft_harness import REPO, job_env, steps_logged

pytestmark = pytest.mark.slow
TOY_CONFIG = REPO / "nemo_configs" / "tiny" / "sft.yaml"


def _toy_steps() -> int:
    from cascade.config import load_stage_config

    return load_stage_config(TOY_CONFIG).train.steps
RUN_TIMEOUT = 3000


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy blend from data_prep (``$CASCADE_TOY_DATA`` when it already holds one)."""
    given = os.environ.get("CASCADE_TOY_DATA")
    if given and (Path(given) / "sft" / "train.parquet").is_file():
        return Path(given)
    out = tmp_path_factory.mktemp("toy_data")
    subprocess.run([sys.executable, "-m", "data_prep.toy", str(out)], cwd=REPO, check=True, timeout=1200,
                   env={**os.environ, **job_env(2)}, capture_output=True)
    return out


def _run_stage(cascade: Path, data: Path, log_name: str) -> LocalRanks:
    env = {**job_env(2), "CASCADE_TOY_DATA": str(data), "CASCADE_EVAL_SFT": "none"}
    return LocalRanks(1, ["-m", "cascade.launch", "run-stage", str(cascade), "sft"], env=env,
                      log_dir=cascade.parent / log_name, cwd=REPO)


@pytest.fixture(scope="module")
def toy(toy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from cascade.offline import smollm2_hf_dir

    root = tmp_path_factory.mktemp("toy_sft")
    cascade = root / "cascade.yaml"  # the toy cascade's first stage, on its own
    cascade.write_text(f"name: toy_sft\nrun_dir: {root / 'runs'}\ninit_path: {smollm2_hf_dir()}\n"
                       f"stages:\n  - {{name: sft, kind: sft, config: {TOY_CONFIG}}}\n")
    out = root / "runs" / "01_sft"
    first = _run_stage(cascade, toy_data, "logs_first")
    try:
        assert first.wait_for(lambda: max(steps_logged(out), default=0) >= 3, RUN_TIMEOUT), first.output(0)[-4000:]
        first.signal(signal.SIGTERM)
        [r1] = first.wait(RUN_TIMEOUT)
    finally:
        first.kill()
    second = _run_stage(cascade, toy_data, "logs_second")
    try:
        [r2] = second.wait(RUN_TIMEOUT)
    finally:
        second.kill()
    return {"out": out, "first": r1, "second": r2, "init": str(smollm2_hf_dir())}


def test_preempted_then_resumed_to_completion(toy: dict) -> None:
    assert toy["first"].returncode == 75, toy["first"].output[-4000:]
    assert "PREEMPTED" in toy["first"].output
    assert toy["second"].returncode == 0, toy["second"].output[-6000:]
    assert "RESUMING from step" in toy["second"].output and (toy["out"] / "COMPLETE").is_file()


def test_every_step_logged_once_and_heldout_loss_reduced(toy: dict) -> None:
    rows = [json.loads(line) for line in (toy["out"] / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == list(range(0, steps[-1] + 1)) and steps[-1] == _toy_steps()
    assert rows[-1]["val/loss"] < rows[0]["val/loss"] - 0.05, (rows[0]["val/loss"], rows[-1]["val/loss"])
    assert all(r["packing_efficiency"] > 0.5 for r in rows[1:])


def test_checkpoint_manifest_and_hf_export_that_generates(toy: dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = toy["out"]
    m = json.loads((out / "stage_manifest.json").read_text())
    assert m["status"] == "complete" and m["final_checkpoint"] == str(out / "checkpoints" / f"iter_{_toy_steps():07d}")
    assert m["init_source"]["format"] == "hf" and m["init_source"]["path"] == toy["init"]
    tok = AutoTokenizer.from_pretrained(out / "hf", local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(out / "hf", local_files_only=True, dtype=torch.float32)
    prompt = ("<|im_start|>system\nYou are a helpful and harmless assistant.<|im_end|>\n<|im_start|>user\n"
              "What is 12 + 30? /no_think<|im_end|>\n<|im_start|>assistant\n")
    ids = tok(prompt, return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=16, do_sample=False)
    text = tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.strip(), "the exported model generated nothing"

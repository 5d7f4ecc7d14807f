"""The RL loop end to end on two gloo ranks with TP=2 (tiny Qwen3, SmolLM2's tokenizer), through
the launcher's run-stage entry point and recipes/rl.py.

* every loss option at once (KL to the reference, entropy bonus, sequence aggregation, tanh
  z-score shaping, two minibatches with PPO ratios from the generator's logprobs) plus dynamic
  sampling that cannot fill its batch: warns, trains on the partial batch, writes metrics,
  TensorBoard, checkpoints, the HF export and the manifest;
* resume mid-stage (SIGUSR1 -> save -> exit 75 -> rerun) reproduces the uninterrupted run's steps
  (at T=0.7, where the generator/trainer mismatch comes from the training forward itself);
* (slow) RL raises the keyword reward over a few dozen steps.

Every job runs under a hard timeout (cascade.engine.launch kills the whole process group).
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from cascade.config.schema.rl import RewardDomain
from cascade.data.records import RLRecord, write_records
from cascade.engine.launch import LocalRanks, run_local
from test_rl_support import (
    REPO,
    TP2,
    cascade_yaml,
    job_env,
    keyword_records,
    read_metrics,
    run_stage_argv,
    stage_yaml,
    tiny_hf,
    warm_start,
)

JOB_TIMEOUT = 900  # seconds per multi-process job (the machine is shared: generous)
REQUIRED_KEYS = (
    "reward/mean", "reward/std", "reward/instruction/mean", "reward/instruction/std",
    "filter/groups_dropped_frac", "response_length/mean", "response_length/clip_ratio", "entropy/mean",
    "mismatch/token_mult_prob_error", "time/generation", "time/reward", "time/train", "time/refit",
    "loss/pg", "grad_norm", "lr",
)


POLICY_VERSION = "rl_warm_policy_v1"  # bump when tiny_hf or warm_start change


@pytest.fixture(scope="module")
def policy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The warm-started tiny policy (stops after a short sentence; ~half say "The"), kept in
    pytest's cache between runs: building it is most of a cold run's CPU time."""
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir(POLICY_VERSION)) if cache is not None else tmp_path_factory.mktemp("policy")
    warm = root / "warm"
    if not (warm / "model.safetensors").is_file():
        shutil.rmtree(root / "random", ignore_errors=True)
        built = warm_start(tiny_hf(root / "random"), root / "warm.partial")
        shutil.rmtree(warm, ignore_errors=True)
        built.rename(warm)
    return warm


def _mixed_task(path: Path) -> Path:
    """Three of four prompts ask for a keyword that never appears (all-zero groups)."""
    recs = keyword_records(16)
    out = []
    for i, r in enumerate(recs):
        kw = "the" if i % 4 == 0 else "zqxj"
        out.append(RLRecord(id=r.id, domain=RewardDomain.INSTRUCTION, source=r.source, prompt=r.prompt,
                            instruction_id_list=["keywords:existence"], kwargs=[{"keywords": [kw]}]))
    write_records(path, out)
    return path


def _run(tmp: Path, cascade: Path, stage: str, *overrides: str, nprocs: int = 2) -> list:
    results = run_local(nprocs, run_stage_argv(cascade, stage, *overrides), timeout=JOB_TIMEOUT,
                        log_dir=tmp / f"logs_{stage}", env=job_env(), cwd=REPO)
    return results


def _ok(results: list) -> str:
    for r in results:
        assert r.returncode == 0, f"rank {r.rank} exited {r.returncode}:\n{r.output[-5000:]}"
    return results[0].output


OPTIONS = {**TP2,
           "loss": {"kl_coef": 0.01, "entropy_coef": 0.001, "aggregation": "sequence",
                    "reward_shaping": "tanh_zscore", "num_minibatches": 2},
           "filters": {"dynamic_sampling": True, "max_refill_rounds": 1},
           "checkpoint": {"save_interval": 2, "keep_last": 2},
           "train": {"steps": 3, "micro_batch_size": 2}}


def test_tp2_every_option_and_partial_dynamic_sampling(policy: Path, tmp_path: Path) -> None:
    data = _mixed_task(tmp_path / "mixed.parquet")
    stage_yaml(tmp_path / "rl.yaml", data=data, extra=OPTIONS)
    cascade = cascade_yaml(tmp_path / "cascade.yaml", run_dir=tmp_path / "run", init=policy,
                           stages=[{"name": "rl", "kind": "rl", "config": str(tmp_path / "rl.yaml")}])
    log = _ok(_run(tmp_path, cascade, "rl"))
    out = tmp_path / "run" / "01_rl"
    lines = read_metrics(out)
    assert [m["step"] for m in lines] == [1, 2, 3]
    for m in lines:
        missing = [k for k in REQUIRED_KEYS if k not in m]
        assert not missing, missing
        assert m["mismatch/token_mult_prob_error"] < 1.001  # refit keeps generator == trainer (fp32)
        assert m["kl/k3"] >= 0.0
        assert m["update/optimizer_steps"] in (1.0, 2.0)
    partial = [m for m in lines if m["filter/batch_filled"] == 0.0]
    assert partial, "expected at least one step whose dynamic sampling could not fill the batch"
    assert any(m["filter/groups_kept"] > 0 and m["update/skipped"] == 0.0 for m in partial)
    assert all(m["filter/groups_dropped"] > 0 for m in lines)
    assert "dynamic sampling filled" in log and "training on the partial batch" in log
    assert sorted(p.name for p in (out / "checkpoints").glob("iter_*")) == ["iter_0000002", "iter_0000003"]
    assert (out / "hf" / "model.safetensors").is_file() and (out / "hf" / "tokenizer.json").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    manifest = json.loads((out / "stage_manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["steps_done"] == 3
    assert (out / "COMPLETE").is_file()


# T=0.7 with one minibatch: the mismatch is read from the training forward's raw logits
RESUME = {**TP2, "rollout": {"temperature": 0.7}, "train": {"steps": 4, "micro_batch_size": 4}}
COMPARED = ("reward/mean", "reward/std", "loss/pg", "grad_norm", "entropy/mean", "response_length/mean",
            "mismatch/token_mult_prob_error")


def test_resume_mid_stage_repeats_the_uninterrupted_steps(policy: Path, tmp_path: Path) -> None:
    data = tmp_path / "kw.parquet"
    write_records(data, keyword_records(24))
    stage_yaml(tmp_path / "rl.yaml", data=data, extra=RESUME)
    stages = [{"name": "full", "kind": "rl", "config": str(tmp_path / "rl.yaml"), "init_path": str(policy)},
              {"name": "cut", "kind": "rl", "config": str(tmp_path / "rl.yaml"), "init_path": str(policy)}]
    cascade = cascade_yaml(tmp_path / "cascade.yaml", run_dir=tmp_path / "run", init=policy, stages=stages)
    cut_dir = tmp_path / "run" / "02_cut"

    # the interrupted run: SIGUSR1 (Slurm's warning signal) once the first step is logged
    ranks = LocalRanks(2, run_stage_argv(cascade, "cut"), env=job_env(), log_dir=tmp_path / "logs_cut1", cwd=REPO)
    try:
        assert ranks.wait_for(lambda: len(read_metrics(cut_dir)) >= 1, timeout=JOB_TIMEOUT)
        ranks.signal(signal.SIGUSR1)
        first = ranks.wait(timeout=JOB_TIMEOUT, fail_fast=False)  # exit 75 is expected
    finally:
        ranks.kill()
    assert [r.returncode for r in first] == [75, 75], first[0].output[-4000:]
    saved = int((cut_dir / "checkpoints" / "latest").read_text().strip().split("_")[1])
    assert 1 <= saved < 4
    # a preemption save mid-stage is complete (optimizer state included), so the resume is exact
    assert json.loads((cut_dir / "checkpoints" / f"iter_{saved:07d}" / "cascade_meta.json").read_text())["has_optimizer"]
    shutil.copy(cut_dir / "metrics.jsonl", tmp_path / "metrics_before_resume.jsonl")

    resumed_log = _ok(_run(tmp_path, cascade, "cut"))
    assert f"RESUMING from step {saved}" in resumed_log
    # the uninterrupted reference (stage "full" runs after "cut" in the chain; its input is the same)
    _ok(_run(tmp_path, cascade, "full"))

    full = {m["step"]: m for m in read_metrics(tmp_path / "run" / "01_full")}
    cut = {m["step"]: m for m in read_metrics(cut_dir)}
    assert sorted(full) == sorted(cut) == [1, 2, 3, 4]  # each step logged once after the resume
    for step in range(1, 5):
        # the generator reports T=1 logprobs; compared at T=0.7 instead they would be far off
        assert full[step]["mismatch/token_mult_prob_error"] < 1.001, full[step]
        for key in COMPARED:
            assert cut[step][key] == pytest.approx(full[step][key], rel=1e-6, abs=1e-7), (step, key)


RISE = {**TP2, "rollout": {"num_generations": 8}, "checkpoint": {"keep_last": 1},
        "train": {"steps": 20, "micro_batch_size": 8}}


@pytest.mark.slow
def test_rl_raises_the_keyword_reward(policy: Path, tmp_path: Path) -> None:
    data = tmp_path / "kw.parquet"
    write_records(data, keyword_records(24))
    stage_yaml(tmp_path / "rl.yaml", data=data, extra=RISE)
    cascade = cascade_yaml(tmp_path / "cascade.yaml", run_dir=tmp_path / "run", init=policy,
                           stages=[{"name": "rl", "kind": "rl", "config": str(tmp_path / "rl.yaml")}])
    _ok(_run(tmp_path, cascade, "rl"))
    rewards = [m["reward/mean"] for m in read_metrics(tmp_path / "run" / "01_rl")]
    assert len(rewards) == 20
    first, last = sum(rewards[:2]) / 2, sum(rewards[-5:]) / 5  # step 1 samples the warm-started policy
    assert last >= first + 0.25 and last >= 0.85, rewards

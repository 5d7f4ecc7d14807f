"""The reward model gives the same losses and held-out rewards under DP=2, PP=2 and TP=2 as on
one rank (2 gloo ranks on CPU, fp32). What each layout exercises:

* DP=2: pairs dealt to ranks, per-pair loss normalised over the global batch;
* PP=2 on SmolLM2 (tied embeddings): the head only on the last stage, tying switched off on both
  stages (no embedding-group all-reduce), rewards gathered from the last stage;
* TP=2 on a random Qwen2 (QKV bias, untied: the 72B RM's family): the replicated head and the
  dropped vocabulary-parallel LM head.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_reward_model_fixtures import (
    RMRun,
    make_pairs,
    qwen2_overrides,
    rm_argv,
    run_rm,
    tiny_qwen2,
    truncated_smollm2,
)

pytestmark = pytest.mark.slow

COMMON = ("train.steps=3", "train.global_batch_size=4", "train.micro_batch_size=1", "train.eval_at_start=false",
          "data.max_val_pairs=6", "checkpoint.save_interval=0", "optim.lr=1.0e-4", "scheduler.warmup_steps=0",
          "optim.use_distributed_optimizer=true")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rm_layouts")
    return {"root": root, "data": make_pairs(root / "data", n_train=24, n_val=6),
            "smol": truncated_smollm2(root / "smollm2-2layers", 2), "qwen2": tiny_qwen2(root / "tiny-qwen2")}


def _run(inputs: dict[str, Path], name: str, model: str, nprocs: int, *extra: str) -> RMRun:
    out = inputs["root"] / name
    over = [*COMMON, *extra, *(qwen2_overrides() if model == "qwen2" else ["model.num_layers=2"])]
    return run_rm(rm_argv(inputs[model], inputs["data"], out, *over), out, nprocs=nprocs, timeout=900).check_ok()


@pytest.fixture(scope="module")
def runs(inputs: dict[str, Path]) -> dict[str, RMRun]:
    return {
        "smol_1": _run(inputs, "smol_1", "smol", 1),
        "smol_dp2": _run(inputs, "smol_dp2", "smol", 2),
        "smol_pp2": _run(inputs, "smol_pp2", "smol", 2, "parallel.pipeline=2"),
        "qwen2_1": _run(inputs, "qwen2_1", "qwen2", 1),
        "qwen2_tp2": _run(inputs, "qwen2_tp2", "qwen2", 2, "parallel.tensor=2"),
    }


def _same(a: RMRun, b: RMRun) -> None:
    la, lb = a.losses(), b.losses()
    assert sorted(la) == sorted(lb) == [1, 2, 3]
    for step in la:
        assert lb[step] == pytest.approx(la[step], abs=2e-5), (step, la, lb)
    assert a.losses()[1] != a.losses()[3]  # it trained
    sa, sb = a.scores(), b.scores()
    assert sorted(sa) == sorted(sb) and len(sa) == 6
    for pid in sa:
        for side in ("chosen", "rejected"):
            assert sb[pid][side] == pytest.approx(sa[pid][side], abs=2e-4), (pid, side)
    assert b.eval()["val/accuracy"] == a.eval()["val/accuracy"]


@pytest.mark.parametrize("layout", ["smol_dp2", "smol_pp2"])
def test_smollm2_layouts_match_one_rank(runs: dict[str, RMRun], layout: str) -> None:
    _same(runs["smol_1"], runs[layout])


def test_qwen2_tensor_parallel_matches_one_rank(runs: dict[str, RMRun]) -> None:
    _same(runs["qwen2_1"], runs["qwen2_tp2"])


def test_exports_agree_across_layouts(runs: dict[str, RMRun]) -> None:
    """The PP=2 / TP=2 exports hold the same backbone keys and head as the 1-rank exports."""
    from safetensors.torch import load_file

    for one, other in (("smol_1", "smol_pp2"), ("qwen2_1", "qwen2_tp2")):
        a, b = runs[one].out / "hf", runs[other].out / "hf"
        ha, hb = load_file(str(a / "reward_head.safetensors")), load_file(str(b / "reward_head.safetensors"))
        assert list(ha) == ["weight"] and ha["weight"].shape == hb["weight"].shape
        assert (ha["weight"] - hb["weight"]).abs().max() < 1e-4
        keys = lambda d: set().union(*(load_file(str(f)).keys() for f in d.glob("*.safetensors")  # noqa: E731
                                       if f.name != "reward_head.safetensors"))
        assert keys(a) == keys(b) and not any(k.startswith("lm_head") for k in keys(a))

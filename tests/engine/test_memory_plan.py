"""The per-GPU memory plan (cascade/engine/memory_plan.py) and `python -m cascade.engine memory`.

(1) the arithmetic against numbers derived by hand; (2) the analytic parameter count against the
meta-device count for Qwen3-8B/14B; (3) every shipped 8B/14B stage fits an 80 GiB GPU; (4) a layout
that cannot fit says fits=false and exits 3; (5) config errors are one line and exit 2; (6) the
estimated weights + gradients + optimizer state against what the CPU engine really allocates.

Run as a script (``python test_memory_plan.py engine OUT_JSON``) this file is the 1-rank engine
worker of (6): Megatron never loads into the pytest process (the CPU shim patches torch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STAGES = sorted(p for d in ("qwen3_8b", "qwen3_14b") for p in (REPO / "nemo_configs" / d).glob("*.yaml")
                if p.name != "cascade.yaml")
GIB = 1024**3


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]), OMP_NUM_THREADS="1",
                HF_HUB_OFFLINE="1")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cascade.engine", "memory", *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)


def _small_stage(**parallel: object):
    """A GPT-shaped toy: h=96, 4 heads of 24 (MHA), SwiGLU F=256=8h/3, no QK-norm, vocab 1000, 4
    layers, untied; SFT at 1024 tokens, micro-batch 1, bf16, 8 GPUs on one node."""
    from cascade.config.schema import ModelConfig, ModelFamily, ParallelConfig, SFTStageConfig
    from cascade.config.schema.common import LaunchConfig
    from cascade.config.schema.sft import SFTDataConfig

    model = ModelConfig(family=ModelFamily.QWEN3, hf_name="toy", num_layers=4, hidden_size=96,
                        ffn_hidden_size=256, num_attention_heads=4, num_query_groups=4, kv_channels=24,
                        vocab_size=1000, max_position_embeddings=2048, qk_layernorm=False)
    return SFTStageConfig(model=model, parallel=ParallelConfig(**parallel),
                          launch=LaunchConfig(nodes=1, gpus_per_node=8), data=SFTDataConfig(seq_length=1024))


def _bytes(plan, prefix: str) -> float:
    (line,) = [ln for ln in plan.lines if ln.phase == "training" and ln.label.startswith(prefix)]
    return line.gib * GIB


# ---- (1) arithmetic by hand ---------------------------------------------------------------------
def test_arithmetic_by_hand() -> None:
    from cascade.engine.memory_plan import CUDA_RESERVE_GIB, layer_activation_coefficient, param_counts, plan_memory

    cfg = _small_stage(tensor=2, sequence_parallel=True)
    pc = param_counts(cfg.model)
    # per layer: QKV 96 x (96 + 2*96) = 27648, proj 96*96 = 9216, MLP 3*96*256 = 73728 -> 110592
    # sharded; two RMSNorms 2*96 = 192 replicated
    assert (pc.layer_sharded, pc.layer_replicated) == (110_592, 192)
    # 4 * 110784 = 443136 + embedding 96000 + output layer 96000 + final norm 96
    assert pc.total == 635_232
    # Korthikanti's GPT layer: 10 + 24/t bytes per token per hidden unit; SP divides all by t
    assert layer_activation_coefficient(cfg.model, cfg.parallel) == 34 / 2
    assert layer_activation_coefficient(cfg.model, _small_stage(tensor=2).parallel) == 10 + 24 / 2

    plan = plan_memory(cfg)
    # params per GPU at TP=2: 4 * (110592/2 + 192) = 221952 + embedding 48000 + output 48000 + norm 96
    params = 318_048
    assert _bytes(plan, "weights") == pytest.approx(2 * params)  # bf16
    assert _bytes(plan, "gradients") == pytest.approx(4 * params)  # fp32 main grads
    assert _bytes(plan, "optimizer") == pytest.approx(12 * params / 4)  # DP = 8 / 2 = 4
    # 17 B x 1024 tokens x 96 hidden per layer, 4 layers
    assert _bytes(plan, "activations") == pytest.approx(4 * 17 * 1024 * 96)
    # 1024 tokens x 1000/2 vocab per GPU x 10 B
    assert _bytes(plan, "logits") == pytest.approx(1024 * 500 * 10)
    total = 2 * params + 4 * params + 3 * params + 6_684_672 + 5_120_000
    assert plan.training_peak_gib * GIB == pytest.approx(total + CUDA_RESERVE_GIB * GIB)
    assert plan.fits and plan.rollout_peak_gib is None

    # full recompute: each layer keeps its SP-split input, 2/2 x 1024 x 96 = 98304 B, plus one
    # layer's activations (1671168 B) while it is recomputed
    full = plan_memory(_small_stage(tensor=2, sequence_parallel=True, recompute="full"))
    assert _bytes(full, "activations") == pytest.approx(4 * 98_304 + 1_671_168)
    # PP=2: the first stage keeps 2 micro-batches of its 2 layers (= 4 layers of activations) and
    # the embedding, the last one micro-batch, the output layer and the logits
    pp = plan_memory(_small_stage(pipeline=2), world_size=2)
    first = 2 * 110_784 + 96_000  # TP=1
    last = 2 * 110_784 + 96_000 + 96
    acts_first, acts_last = 4 * 34 * 1024 * 96, 2 * 34 * 1024 * 96
    peak = max(18 * first + acts_first, 18 * last + acts_last + 1024 * 1000 * 10)  # DP=1: 2+4+12 B/param
    assert pp.training_peak_gib * GIB == pytest.approx(peak + CUDA_RESERVE_GIB * GIB)


def test_rollout_budget_by_hand() -> None:
    """14B code RL at rollout TP 1 cannot hold one 61,440-token rollout in half an 80 GiB GPU."""
    from cascade.config import load_stage_config
    from cascade.engine.memory_plan import VLLM_RUNTIME_RESERVE_GIB, plan_memory

    cfg = load_stage_config(REPO / "nemo_configs/qwen3_14b/code_rl.yaml", ["rollout.tensor_parallel=1"])
    plan = plan_memory(cfg)
    weights = 14_768_307_200 * 2 / GIB  # 27.51 GiB bf16
    kv = 2 * 40 * 8 * 128 * 2 * (4096 + 57344) / GIB  # 163840 B/token x 61440 = 9.375 GiB
    assert weights + VLLM_RUNTIME_RESERVE_GIB + kv > 0.5 * 80
    assert plan.vllm_sequences == 0 and not plan.fits
    tp2 = plan_memory(load_stage_config(REPO / "nemo_configs/qwen3_14b/code_rl.yaml",
                                        ["rollout.tensor_parallel=2"]))
    assert tp2.vllm_sequences == int((40 - weights / 2 - VLLM_RUNTIME_RESERVE_GIB) // (kv / 2))  # 4


# ---- (2) analytic parameter count = meta-device count ------------------------------------------
@pytest.mark.timeout(300)
def test_param_formula_matches_meta_count() -> None:
    from cascade.config import load_stage_config
    from cascade.engine.memory_plan import param_counts

    expected = {"qwen3_8b/sft_stage1_16k.yaml": 8_190_735_360, "qwen3_14b/sft_stage1_16k.yaml": 14_768_307_200}
    procs = {cfg: subprocess.Popen([sys.executable, "-m", "cascade.engine", "params", f"nemo_configs/{cfg}"],
                                   cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cfg in expected}
    for cfg, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        meta = int(out.strip().rsplit("=", 1)[1])
        formula = param_counts(load_stage_config(REPO / "nemo_configs" / cfg).model).total
        assert formula == meta == expected[cfg]


# ---- (3)-(5) the command -------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_stage_fits(stage: Path) -> None:
    proc = _cli(str(stage.relative_to(REPO)))
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0 and last.startswith("fits=true"), proc.stdout + proc.stderr


@pytest.mark.parametrize("args", [["parallel.recompute=none"], ["--gpu-memory-gib", "40"],
                                  ["--gpu-memory-gib", "40", "parallel.recompute=none"]])
def test_layout_that_cannot_fit(args: list[str]) -> None:
    proc = _cli("nemo_configs/qwen3_14b/code_rl.yaml", *args)
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 3 and last.startswith("fits=false "), proc.stdout + proc.stderr
    assert "GiB" in last


@pytest.mark.parametrize("args", [["nemo_configs/qwen3_8b/nope.yaml"],
                                  ["nemo_configs/qwen3_8b/rlhf.yaml", "parallel.bogus=1"],
                                  ["nemo_configs/qwen3_8b/rlhf.yaml", "--gpu-memory-gib", "0"],
                                  ["nemo_configs/qwen3_8b/rlhf.yaml", "launch.nodes=1", "parallel.tensor=16"]])
def test_config_error_is_one_line(args: list[str]) -> None:
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: ")


# ---- run-stage refuses a layout that cannot fit the GPU it landed on ------------------------------
@pytest.mark.parametrize("gpu_gib,fits", [(40, False), (80, True), (None, True)])
def test_run_stage_memory_gate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                               gpu_gib: int | None, fits: bool) -> None:
    """On a (faked) GPU run-stage's check refuses with a one-line LaunchError; without CUDA it skips."""
    from types import SimpleNamespace

    import torch

    from cascade.config import load_stage_config
    from cascade.launch.dist_env import DistEnv
    from cascade.launch.run_stage import LaunchError, _check_memory, _Log

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu_gib is not None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(total_memory=(gpu_gib or 0) * GIB))
    cfg_path = REPO / "nemo_configs/qwen3_14b/code_rl.yaml"
    env = DistEnv(rank=0, local_rank=0, world_size=64)
    stage = SimpleNamespace(config=cfg_path)
    if fits:
        _check_memory(load_stage_config(cfg_path), stage, env, _Log("code_rl", env))
        assert ("memory plan: training peak" in capsys.readouterr().out) == (gpu_gib is not None)
    else:
        with pytest.raises(LaunchError, match=r"^memory plan: training peak [\d.]+ GiB > 40 GiB usable; ") as e:
            _check_memory(load_stage_config(cfg_path), stage, env, _Log("code_rl", env))
        assert "\n" not in str(e.value)


# ---- (6) against the CPU engine's real allocations ----------------------------------------------
@pytest.mark.timeout(300)
def test_estimate_matches_cpu_engine(tmp_path: Path) -> None:
    """Tiny Qwen3 (bf16, distributed optimizer, 1 gloo rank, one optimizer step so Adam's moments
    exist): parameter, gradient-buffer and optimizer-state bytes vs the plan, within 3%."""
    from cascade.config import load_stage_config
    from cascade.engine.memory_plan import plan_memory

    out = tmp_path / "engine.json"
    proc = subprocess.run([sys.executable, __file__, "engine", str(out)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    real = json.loads(out.read_text())
    plan = plan_memory(load_stage_config(HERE / "tiny_sft.yaml", ENGINE_OVERRIDES), world_size=1)
    for key, prefix in (("weights", "weights"), ("grads", "gradients"), ("optimizer", "optimizer")):
        assert real[key] == pytest.approx(_bytes(plan, prefix), rel=0.03), (key, real, plan.table())


ENGINE_OVERRIDES = ["precision.params_dtype=bf16", "optim.use_distributed_optimizer=true"]


def _engine_worker(out: str) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    from cascade.config import load_stage_config
    from cascade.engine import (
        build_model,
        build_optimizer,
        build_scheduler,
        causal_lm_batch,
        init_distributed,
        split_global_batch,
        train_step,
        unwrap,
    )

    cfg = load_stage_config(HERE / "tiny_sft.yaml", ENGINE_OVERRIDES)
    init_distributed(cfg.parallel, seed=1)
    model = build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=True)
    opt = build_optimizer(model, cfg.optim, cfg.precision, cfg.parallel)
    sched = build_scheduler(opt, cfg.optim, cfg.scheduler, total_steps=1)
    tokens = torch.randint(0, cfg.model.vocab_size, (2, 17), generator=torch.Generator().manual_seed(0))
    train_step(model, opt, sched, split_global_batch(causal_lm_batch(tokens, torch.ones(2, 16)), 1))

    def nbytes(t: torch.Tensor) -> int:
        return t.numel() * t.element_size()

    weights = sum(nbytes(p) for chunk in unwrap(model) for p in chunk.parameters())
    grads = sum(nbytes(b.grad_data) for chunk in model for b in chunk.buffers + chunk.expert_parallel_buffers)
    state = 0
    for inner in getattr(opt, "chained_optimizers", [opt]):
        torch_opt = inner.optimizer
        for group in torch_opt.param_groups:
            for p in group["params"]:  # the fp32 master shards
                state += nbytes(p)
                state += sum(nbytes(v) for v in torch_opt.state[p].values()
                             if torch.is_tensor(v) and v.numel() == p.numel())  # Adam m, v
    Path(out).write_text(json.dumps({"weights": weights, "grads": grads, "optimizer": state}))


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "engine":
    _engine_worker(sys.argv[2])


def test_mopd_teachers_counted_resident_or_one_at_a_time() -> None:
    """MOPD holds up to one teacher model per distinct candidate (at most one per domain): resident,
    they are counted each; offloaded (the default), one teacher's weights at a time."""
    from cascade.config import load_stage_config
    from cascade.engine.memory_plan import mopd_teacher_models, plan_memory

    path = REPO / "nemo_configs/nano3_30b_a3b/mopd.yaml"
    offloaded = load_stage_config(path)
    resident = load_stage_config(path, ["mopd.offload_teachers=false"])
    assert mopd_teacher_models(offloaded) == 4  # sft, rlhf_teacher, if_rl, multi_domain_rl
    weights = _bytes(plan_memory(offloaded), "weights")
    assert _bytes(plan_memory(offloaded), "MOPD teacher weights") == pytest.approx(weights)
    assert _bytes(plan_memory(resident), "MOPD teacher weights") == pytest.approx(4 * weights)
    assert plan_memory(offloaded).fits and not plan_memory(resident).fits
    pinned = load_stage_config(path, ["mopd.teachers={math: {checkpoint: /m/a}, genrm: {checkpoint: /m/a}}"])
    assert mopd_teacher_models(pinned) == 1  # two domains, one checkpoint: loaded once
    assert mopd_teacher_models(load_stage_config(REPO / "nemo_configs/nano3_30b_a3b/rlhf.yaml")) == 0

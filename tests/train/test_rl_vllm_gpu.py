"""(gpu) vLLM colocated with the trainer: rollout, sleep/wake, weight refit, and two RL steps with
``rollout.backend: vllm``. Records generation throughput and refit time in
bench/results/rl_vllm_refit_<gpu>.json (and in $CASCADE_GPU_CHECK_OUT when scripts/gpu_check.sh
runs it). Skipped, not errored, on machines without CUDA (tests/conftest.py), without a usable
vLLM (missing, the CPU build, or kernels that do not load) or without the offline assets the tiny
policy's tokenizer comes from. Written against vLLM 0.32.0; not yet run on a GPU.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from test_rl_support import (
    REPO,
    cascade_yaml,
    job_env,
    keyword_records,
    read_metrics,
    run_stage_argv,
    stage_yaml,
)
from test_rl_support import tiny_hf as _tiny_hf_needs_assets

pytestmark = pytest.mark.gpu


def tiny_hf(out: Path, seed: int = 0) -> Path:
    """The tiny policy; skips when the offline assets (its tokenizer files) were not fetched."""
    from cascade.offline import OfflineAssetMissing

    try:
        return _tiny_hf_needs_assets(out, seed=seed)
    except OfflineAssetMissing as e:
        pytest.skip(f"offline assets missing: {e}")


def _hf_logprobs(model_dir: Path, prompt: list[int], tokens: list[int]) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).cuda().eval()
    ids = torch.tensor([prompt + tokens], device="cuda")
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits.float(), -1)[0]
    return [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(tokens)]


def test_colocated_vllm_generate_sleep_refit(gpu_vllm: None, tmp_path: Path) -> None:
    import torch
    import torch.distributed as dist
    from safetensors.torch import load_file

    from cascade.generation import GeneratorConfig, SamplingParams
    from cascade.generation.vllm_colocated import ColocatedVLLMRollout

    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    if not dist.is_initialized():
        dist.init_process_group("nccl")
    a, b = tiny_hf(tmp_path / "a", seed=0), tiny_hf(tmp_path / "b", seed=1)
    engine = ColocatedVLLMRollout(GeneratorConfig(model_path=str(a), backend="vllm", dtype="fp32",
                                                  gpu_memory_utilization=0.3, max_model_len=256))
    prompt = engine.generator.encode("Hello, how are you?")
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=32)
    t0 = time.perf_counter()
    out = engine.generator.generate([prompt] * 64, greedy)
    gen_s = time.perf_counter() - t0
    sample = out[0].samples[0]
    assert sample.logprobs == pytest.approx(_hf_logprobs(a, prompt, list(sample.token_ids)), abs=1e-3)

    engine.offload()  # sleep: the trainer would run here
    weights = load_file(str(b / "model.safetensors"))
    t1 = time.perf_counter()
    engine.refit(weights)
    engine.onload()
    refit_s = time.perf_counter() - t1
    after = engine.generator.generate([prompt], greedy)[0].samples[0]
    assert after.logprobs == pytest.approx(_hf_logprobs(b, prompt, list(after.token_ids)), abs=1e-3)
    tokens = sum(len(o.samples[0].token_ids) for o in out)
    record = {"gpu": torch.cuda.get_device_name(), "generation_tokens_per_s": tokens / gen_s,
              "refit_s": refit_s, "model": "tiny_qwen3 (vocab 49152)", "rows": 64}
    name = torch.cuda.get_device_name().lower().replace(" ", "_")
    (REPO / "bench" / "results" / f"rl_vllm_refit_{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    if os.environ.get("CASCADE_GPU_CHECK_OUT"):
        dest = Path(os.environ["CASCADE_GPU_CHECK_OUT"])
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "vllm_refit.json").write_text(json.dumps(record, indent=2) + "\n")
    engine.close()


def test_rl_steps_with_colocated_vllm(gpu_vllm: None, tmp_path: Path) -> None:
    from cascade.data.records import write_records
    from cascade.engine.launch import run_local

    data = tmp_path / "kw.parquet"
    write_records(data, keyword_records(8))
    policy = tiny_hf(tmp_path / "policy")
    extra = {"rollout": {"backend": "vllm", "gpu_memory_utilization": 0.3}, "precision": {"params_dtype": "bf16"},
             "train": {"steps": 2}, "launch": {"gpus_per_node": 1}}
    stage_yaml(tmp_path / "rl.yaml", data=data, extra=extra)
    cascade = cascade_yaml(tmp_path / "cascade.yaml", run_dir=tmp_path / "run", init=policy,
                           stages=[{"name": "rl", "kind": "rl", "config": str(tmp_path / "rl.yaml")}])
    (r,) = run_local(1, run_stage_argv(cascade, "rl"), timeout=1200, log_dir=tmp_path / "logs",
                     env=job_env(CASCADE_HF_BACKEND="auto"), cwd=REPO, device="gpu")
    assert r.returncode == 0, r.output[-6000:]
    lines = read_metrics(tmp_path / "run" / "01_rl")
    assert [m["step"] for m in lines] == [1, 2]
    assert all(m["mismatch/token_mult_prob_error"] < 1.05 for m in lines)  # NeMo-RL's red-flag level

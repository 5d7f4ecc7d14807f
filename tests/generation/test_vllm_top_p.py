"""Top-p without the full-vocabulary sort keeps exactly the tokens vLLM's sorted top-p keeps.

``cascade.generation.vllm_top_p`` replaces vLLM's CPU top-p (a sort over the vocabulary every
decode step) with a growing ``topk``. These tests compare the kept sets against vLLM's own
``apply_top_k_top_p_pytorch`` on peaked, flat and mixed rows, and check what must stay vLLM's.
"""

from __future__ import annotations

import pytest
import torch

from cascade.generation.vllm_top_p import partial_top_p

sampler = pytest.importorskip("vllm.v1.sample.ops.topk_topp_sampler", reason="vllm(-cpu) is not installed")


def _vllm(logits: torch.Tensor, k: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
    return sampler.apply_top_k_top_p_pytorch(logits.clone(), k, p)


def _rows(vocab: int = 4096) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0, 0.05, 3.0, 1.5])[:, None]  # flat ... peaked
    return torch.randn(8, vocab, generator=g) * scales


@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.95, 0.99])
def test_keeps_the_same_tokens_as_vllms_sorted_top_p(top_p: float) -> None:
    logits = _rows()
    p = torch.full((8,), top_p)
    ours = partial_top_p(logits.clone(), p, first_k=16)  # small first k: the growing path runs too
    assert torch.equal(torch.isfinite(ours), torch.isfinite(_vllm(logits, None, p)))
    kept = torch.isfinite(ours)
    assert torch.equal(ours[kept], logits[kept])  # kept logits are untouched


def test_mixed_rows_and_rows_without_top_p() -> None:
    logits = _rows()
    p = torch.tensor([1.0, 0.9, 1.0, 0.5, 0.95, 0.99, 1.0, 0.7])
    ours = partial_top_p(logits.clone(), p)
    assert torch.equal(torch.isfinite(ours), torch.isfinite(_vllm(logits, None, p)))
    assert torch.isfinite(ours[p == 1.0]).all()


def test_the_largest_token_is_always_kept() -> None:
    logits = torch.tensor([[0.0, 9.0, 1.0, 2.0]])
    out = partial_top_p(logits.clone(), torch.tensor([1e-6]))
    assert torch.isfinite(out).tolist() == [[False, True, False, False]]


def test_top_k_batches_and_no_top_p_take_vllms_function() -> None:
    from cascade.generation import vllm_top_p

    if not vllm_top_p.install():
        pytest.skip("vLLM is not on its CPU platform here")
    try:
        assert sampler.apply_top_k_top_p is vllm_top_p._apply_top_k_top_p
        logits, p, k = _rows(), torch.full((8,), 0.9), torch.full((8,), 20)
        assert torch.equal(sampler.apply_top_k_top_p(logits.clone(), k, p), _vllm(logits, k, p))
        assert torch.equal(sampler.apply_top_k_top_p(logits.clone(), None, None), logits)
    finally:
        vllm_top_p.uninstall()
    assert sampler.apply_top_k_top_p is not vllm_top_p._apply_top_k_top_p


def test_an_engine_samples_the_same_tokens_as_with_vllms_sorted_top_p(tmp_path, smollm2_dir) -> None:
    """A CPU engine runs with the partial top-p in its sampler; vLLM's sorted top-p, put back for
    one call, draws the same seeded tokens."""
    from cascade.generation import GeneratorConfig, SamplingParams, build_generator, vllm_top_p
    from cascade.generation.tiny_model import build_tiny_model

    if torch.cuda.is_available():
        pytest.skip("the CPU sampler")
    model = build_tiny_model(tmp_path / "tiny", smollm2_dir, hidden_size=128)
    gen = build_generator(GeneratorConfig(model_path=str(model), backend="vllm", dtype="fp32", max_model_len=256,
                                          kv_cache_gib=0.25))
    try:
        assert sampler.apply_top_k_top_p is vllm_top_p._apply_top_k_top_p
        prompts = ["<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n", "Once upon a time"]
        sp = SamplingParams(n=3, temperature=0.8, top_p=0.9, max_new_tokens=24, seed=11)
        ours = gen.generate(prompts, sp)
        vllm_top_p.uninstall()
        try:
            theirs = gen.generate(prompts, sp)
        finally:
            vllm_top_p.install()
    finally:
        gen.close()
    assert [[s.token_ids for s in o.samples] for o in ours] == [[s.token_ids for s in o.samples] for o in theirs]

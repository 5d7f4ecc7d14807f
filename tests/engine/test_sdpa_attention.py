"""The local spec's fused core attention computes what Megatron-Core's ``DotProductAttention`` does.

``SDPAttention`` replaces the unfused scores -> mask -> softmax -> matmul path with one
``scaled_dot_product_attention`` call (faster on CPU; see cascade/engine/sdpa_attention.py). It
must not change a number a trainer reads: outputs and gradients for causal rows, packed rows
(block-diagonal mask) and grouped-query heads, and a whole model's logprobs, against the parent
class on the same module. Megatron runs in a subprocess (one gloo rank), as in the other engine tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from one_rank import run_self, tiny_config


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_self(__file__, tmp_path_factory.mktemp("sdpa") / "sdpa.json")


def test_the_local_spec_builds_the_fused_attention(compared: dict) -> None:
    assert compared["core_attention"] == "SDPAttention"
    assert compared["gqa"], "the tiny Qwen3 has fewer key/value groups than heads: GQA is exercised"


@pytest.mark.parametrize("case", ["causal", "packed"])
def test_outputs_and_gradients_match_megatrons_attention(compared: dict, case: str) -> None:
    r = compared[case]
    assert r["fused"], "the fused path ran"
    assert r["out"] < 1e-5 and r["dq"] < 1e-5 and r["dk"] < 1e-5 and r["dv"] < 1e-5, r


def test_a_query_block_against_a_longer_key_cache_takes_the_parents_path(compared: dict) -> None:
    r = compared["decode"]
    assert not r["fused"] and r["out"] == 0.0, r


def test_a_models_logprobs_do_not_change(compared: dict) -> None:
    assert compared["model_logprobs"] < 1e-4, compared


def _worker(out: str) -> None:
    import torch
    from megatron.core.transformer.dot_product_attention import DotProductAttention

    from cascade.engine import build_model, unwrap
    from cascade.engine.batch import MicroBatch, attention_inputs
    from cascade.engine.sdpa_attention import SDPAttention
    from cascade.engine.step import compute_logprobs

    cfg = tiny_config()
    model = build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=False)
    cores = [m for m in unwrap(model)[0].modules() if isinstance(m, DotProductAttention)]
    core = cores[0]
    heads, groups = core.num_attention_heads_per_partition, core.num_query_groups_per_partition
    dim = core.hidden_size_per_attention_head
    res: dict = {"core_attention": type(core).__name__, "gqa": groups < heads}

    def run(cls: type, sq: int, sk: int, mask: torch.Tensor | None) -> tuple[list[torch.Tensor], bool]:
        g = torch.Generator().manual_seed(3)
        q = torch.randn(sq, 2, heads, dim, generator=g, requires_grad=True)
        k = torch.randn(sk, 2, groups, dim, generator=g, requires_grad=True)
        v = torch.randn(sk, 2, groups, dim, generator=g, requires_grad=True)
        core.__class__ = cls
        fused = cls is SDPAttention and core._fused_ok(q, k, mask, None, None)
        o = core(q, k, v, mask)
        o.backward(torch.randn(o.shape, generator=g))
        return [o.detach(), q.grad, k.grad, v.grad], fused

    seg = torch.tensor([[0] * 5 + [1] * 7 + [2] * 4, [0] * 9 + [1] * 7])
    packed_mask, _ = attention_inputs(MicroBatch(tokens=seg, labels=seg, loss_mask=seg.float(), segment_ids=seg))
    for case, sq, sk, mask in (("causal", 16, 16, None), ("packed", 16, 16, packed_mask), ("decode", 1, 16, None)):
        ref, _ = run(DotProductAttention, sq, sk, mask)
        got, fused = run(SDPAttention, sq, sk, mask)
        diff = [float((a - b).abs().max()) for a, b in zip(ref, got)]
        res[case] = {"fused": fused, **dict(zip(("out", "dq", "dk", "dv"), diff))}

    tokens = torch.randint(1, cfg.model.vocab_size, (2, 24), generator=torch.Generator().manual_seed(5))
    mbs = [MicroBatch(tokens=tokens, labels=torch.roll(tokens, -1, 1), loss_mask=torch.ones(2, 24))]
    lps = {}
    with torch.no_grad():
        for cls in (DotProductAttention, SDPAttention):
            for m in cores:
                m.__class__ = cls
            lps[cls.__name__] = torch.cat(compute_logprobs(model, mbs))
    res["model_logprobs"] = float((lps["DotProductAttention"] - lps["SDPAttention"]).abs().max())
    Path(out).write_text(json.dumps(res))


if __name__ == "__main__":
    _worker(sys.argv[1])

"""One rank of an SFT test job: ``python sft_worker.py SCENARIO OUT_DIR``; writes
``OUT_DIR/<scenario>_rank<r>.json``. Megatron loads only here, never in the pytest process.

Scenario ``packing``: the tiny Qwen3 (random init, nemo_configs/base/model/tiny_qwen3.yaml) scores
the same conversations packed several per row (segment ids -> per-sequence attention) and one per
row; the loss and the gradient must agree. A third layout packs without boundaries (what a
broken mask would do) and must not, so the check can fail.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from cascade.config import load_stage_config  # noqa: E402
from cascade.data.tokenizer import TokenizedSample  # noqa: E402
from cascade.engine import (  # noqa: E402
    build_model,
    build_optimizer,
    forward_backward,
    init_distributed,
    split_global_batch,  # noqa: E402
)
from cascade.sft.data import SFTRows, build_rows  # noqa: E402
from cascade.sft.trainer import heldout_loss  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SEQ, PAD = 128, 0


def samples(n: int = 12, seed: int = 3) -> list[TokenizedSample]:
    """Conversations of varied length: a prompt without loss, then an answer with loss."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        prompt, answer = (int(x) for x in torch.randint(4, 40, (2,), generator=g))
        ids = torch.randint(1, 512, (prompt + answer,), generator=g).tolist()
        out.append(TokenizedSample(ids, [0] * prompt + [1] * answer))
    return out


def grads(model) -> torch.Tensor:  # noqa: ANN001
    return torch.cat([p.main_grad.flatten().clone() for chunk in model for p in chunk.parameters()])


def loss_and_grad(model, rows: SFTRows) -> tuple[float, torch.Tensor]:  # noqa: ANN001
    """Token-mean loss and its gradient over all rows (one micro-batch per row)."""
    for chunk in model:
        chunk.zero_grad_buffer()
    mbs = split_global_batch(rows.batch(torch.arange(len(rows))), 1)
    metrics = forward_backward(model, mbs)
    return metrics["lm_loss"], grads(model)


def scenario_packing() -> dict:
    cfg = load_stage_config(REPO / "nemo_configs/base/model/tiny_qwen3.yaml",
                            ["kind=sft", "precision.params_dtype=fp32"])
    init_distributed(cfg.parallel, seed=5)
    model = build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=False)
    opt = build_optimizer(model, replace(cfg.optim, use_distributed_optimizer=False), cfg.precision, cfg.parallel)
    del opt  # built for its side effect: Megatron's grad finalisation (per-token normalisation)
    data = samples()
    packed = build_rows(data, SEQ, PAD, packing=True)
    unpacked = build_rows(data, SEQ, PAD, packing=False)
    leaky = replace(packed, segment_ids=torch.zeros_like(packed.segment_ids))  # no boundaries
    lp, gp = loss_and_grad(model, packed)
    lu, gu = loss_and_grad(model, unpacked)
    ll, gl = loss_and_grad(model, leaky)
    return {
        "rows_packed": len(packed), "rows_unpacked": len(unpacked),
        "sequences": int(packed.sequences.sum()), "max_per_row": int(packed.sequences.max()),
        "efficiency_packed": packed.stats.efficiency, "efficiency_unpacked": unpacked.stats.efficiency,
        "summary": packed.stats.summary(),
        "loss_packed": lp, "loss_unpacked": lu, "loss_no_boundaries": ll,
        "grad_maxdiff": float((gp - gu).abs().max()),
        "grad_maxdiff_no_boundaries": float((gl - gu).abs().max()), "grad_scale": float(gu.abs().max()),
        "heldout_packed": heldout_loss(model, packed, 2, PAD),
        "heldout_unpacked": heldout_loss(model, unpacked, 2, PAD),
    }


SCENARIOS = {"packing": scenario_packing}


def main() -> None:
    scenario, out = sys.argv[1], Path(sys.argv[2])
    result = SCENARIOS[scenario]()
    (out / f"{scenario}_rank{dist.get_rank()}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Micro-batches cut to their longest row: the same rows, the same logprobs and the same update.

RL rows differ in length (prompt + response) and a minibatch pads them all to its longest; cutting
each micro-batch after its last loss token saves the padding's compute. The cut must change
nothing a consumer reads: the unit tests check rows and shapes, the worker (run in a subprocess:
it starts a one-rank process group) checks logprobs, loss and gradient norm on a tiny Qwen3.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from one_rank import run_self, tiny_config

from cascade.engine import batch as batch_mod
from cascade.engine.batch import MicroBatch, loss_lengths, split_global_batch

LENGTHS = (5, 16, 9, 12, 3, 7, 16, 1)  # loss tokens end here; rows are padded to 16


def _batch(seq: int = 16) -> MicroBatch:
    n = len(LENGTHS)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 100, (n, seq), generator=g)
    mask = torch.zeros(n, seq)
    for i, end in enumerate(LENGTHS):
        mask[i, max(0, end - 3):end] = 1.0  # a short "response" ending at `end`
    return MicroBatch(tokens=tokens, labels=torch.roll(tokens, -1, 1), loss_mask=mask,
                      extra={"adv": torch.arange(n, dtype=torch.float)[:, None].expand(n, seq).clone(),
                             "per_row": torch.arange(n, dtype=torch.float)})


@pytest.fixture
def one_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_mod.ps, "get_data_parallel_rank", lambda: 0)
    monkeypatch.setattr(batch_mod.ps, "get_data_parallel_world_size", lambda: 1)
    monkeypatch.setattr(batch_mod.ps, "get_pipeline_model_parallel_world_size", lambda: 1)


def test_loss_lengths_are_one_past_the_last_loss_token() -> None:
    assert loss_lengths(_batch().loss_mask).tolist() == list(LENGTHS)
    assert loss_lengths(torch.zeros(2, 4)).tolist() == [0, 0]


def test_trimmed_micro_batches_hold_every_row_longest_first(one_rank: None) -> None:
    full = _batch()
    mbs = split_global_batch(full, 2, trim_multiple=4)
    assert [mb.seq_length for mb in mbs] == [16, 12, 8, 4]  # 16,16 | 12,9 | 7,5 | 3,1 -> multiples of 4
    rows = torch.cat([mb.extra["per_row"] for mb in mbs]).long().tolist()
    assert sorted(rows) == list(range(len(LENGTHS)))
    assert [LENGTHS[r] for r in rows] == sorted(LENGTHS, reverse=True)
    for mb in mbs:
        for j, r in enumerate(mb.extra["per_row"].long().tolist()):
            n = mb.seq_length  # every kept position is the original row's, per-token extras included
            assert torch.equal(mb.tokens[j], full.tokens[r, :n]) and torch.equal(mb.loss_mask[j], full.loss_mask[r, :n])
            assert torch.equal(mb.extra["adv"][j], full.extra["adv"][r, :n])
            assert full.loss_mask[r, n:].sum() == 0  # nothing under the loss was cut


def test_without_trim_or_with_pipeline_stages_rows_keep_their_order(one_rank: None, monkeypatch) -> None:
    assert [mb.seq_length for mb in split_global_batch(_batch(), 2)] == [16] * 4
    monkeypatch.setattr(batch_mod.ps, "get_pipeline_model_parallel_world_size", lambda: 2)
    mbs = split_global_batch(_batch(), 2, trim_multiple=4)  # pipeline stages need one shape
    assert [mb.seq_length for mb in mbs] == [16] * 4
    assert torch.cat([mb.extra["per_row"] for mb in mbs]).tolist() == list(range(len(LENGTHS)))


def test_the_cut_changes_no_logprob_loss_or_gradient(tmp_path: Path) -> None:
    r = run_self(__file__, tmp_path / "trim.json")
    assert r["lp_max_diff"] < 1e-5, r
    assert r["trimmed_loss"] == pytest.approx(r["full_loss"], rel=1e-5)
    assert r["trimmed_gnorm"] == pytest.approx(r["full_gnorm"], rel=1e-4)
    assert r["trimmed_tokens"] < r["full_tokens"]


def _worker(out: str) -> None:
    from cascade.engine import build_model, build_optimizer, build_scheduler, unwrap
    from cascade.engine.step import compute_logprobs, masked_nll, train_step

    cfg = tiny_config()
    model = build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=False)
    twin = build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=False)
    for src, dst in zip(unwrap(model), unwrap(twin)):
        dst.load_state_dict(src.state_dict())
    full = _batch(seq=32)
    full.tokens.remainder_(cfg.model.vocab_size)
    full.labels.remainder_(cfg.model.vocab_size)
    plain, cut = split_global_batch(full, 2), split_global_batch(full, 2, trim_multiple=1)

    def by_row(mbs: list[MicroBatch], lps: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        return {int(r): lp[j][mb.loss_mask[j] > 0] for mb, lp in zip(mbs, lps)
                for j, r in enumerate(mb.extra["per_row"])}

    a, b = by_row(plain, compute_logprobs(model, plain)), by_row(cut, compute_logprobs(model, cut))
    res = {"lp_max_diff": max(float((a[r] - b[r]).abs().max()) if a[r].numel() else 0.0 for r in a),
           "full_tokens": sum(mb.tokens.numel() for mb in plain), "trimmed_tokens": sum(mb.tokens.numel() for mb in cut)}
    for name, m, mbs in (("full", model, plain), ("trimmed", twin, cut)):
        opt = build_optimizer(m, cfg.optim, cfg.precision, cfg.parallel)
        sched = build_scheduler(opt, cfg.optim, cfg.scheduler, total_steps=2)
        step = train_step(m, opt, sched, mbs, masked_nll)
        res[f"{name}_loss"], res[f"{name}_gnorm"] = step["lm_loss"], step["grad_norm"]
    Path(out).write_text(json.dumps(res))


if __name__ == "__main__":
    _worker(sys.argv[1])

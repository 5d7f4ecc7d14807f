"""Reward-model micro-batches cut to their longest pair: every pair kept whole, rewards still read
at each row's last token, nothing under a row cut away."""

from __future__ import annotations

import pytest
import torch

from cascade.reward_model import head as rmh
from cascade.reward_model.data import PairRows

LAST = [3, 9, 20, 5, 7, 7, 30, 2]  # rows' last-token indices: pairs (3,9) (20,5) (7,7) (30,2)


def _rows() -> PairRows:
    n = len(LAST)
    tokens = torch.zeros(n, 32, dtype=torch.long)
    for r, last in enumerate(LAST):
        tokens[r, : last + 1] = 100 + r
    return PairRows(tokens=tokens, last=torch.tensor(LAST), weight=torch.ones(n),
                    pair_index=torch.tensor([p for p in range(n // 2) for _ in (0, 1)]), truncated=0)


@pytest.fixture
def no_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rmh.ps, "get_pipeline_model_parallel_world_size", lambda: 1)


def test_pairs_grouped_longest_first_and_cut_to_the_multiple(no_pipeline: None) -> None:
    mbs = rmh.micro_batches(_rows(), 1, trim_multiple=8)
    assert [mb.extra["pair"].tolist() for mb in mbs] == [[3, 3], [1, 1], [0, 0], [2, 2]]
    assert [mb.seq_length for mb in mbs] == [32, 24, 16, 8]  # longest row 31, 21, 10, 8 -> multiples of 8
    for mb in mbs:
        p = int(mb.extra["pair"][0])
        assert mb.extra["last"].tolist() == LAST[2 * p: 2 * p + 2]  # chosen then rejected, as before
        assert torch.equal(mb.tokens, _rows().tokens[2 * p: 2 * p + 2, : mb.seq_length])
        assert int(mb.extra["last"].max()) < mb.seq_length


def test_without_trim_every_micro_batch_keeps_the_step_width(no_pipeline: None) -> None:
    mbs = rmh.micro_batches(_rows(), 2)
    assert [mb.seq_length for mb in mbs] == [32, 32]
    assert [mb.extra["pair"].tolist() for mb in mbs] == [[0, 0, 1, 1], [2, 2, 3, 3]]

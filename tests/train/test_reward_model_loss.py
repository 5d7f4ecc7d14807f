"""Bradley-Terry loss and metrics on hand-computed values (no Megatron in this process)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from cascade.reward_model.trainer import bradley_terry, pair_loss


def _sp(x: float) -> float:  # softplus, by hand
    return math.log1p(math.exp(x))


R_C = torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64)
R_R = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
# margins 1, 0, -2 -> losses log(1+e^-1), log 2, log(1+e^2)
LOSSES = [_sp(-1.0), math.log(2.0), _sp(2.0)]


def _mean(metric: torch.Tensor) -> float:
    s, n = metric.tolist()
    return s / n


def test_loss_and_metrics_by_hand() -> None:
    loss_sum, n, m = bradley_terry(R_C, R_R)
    assert LOSSES[0] == pytest.approx(0.31326168751822286)  # the hand values themselves
    assert LOSSES[2] == pytest.approx(2.1269280110429727)
    assert float(loss_sum) == pytest.approx(sum(LOSSES), abs=1e-12)
    assert int(n) == 3 and n.dtype == torch.int
    assert _mean(m["loss"]) == pytest.approx(sum(LOSSES) / 3, abs=1e-12)
    assert _mean(m["accuracy"]) == pytest.approx(1 / 3)  # only margin 1 counts; the tie is wrong
    assert _mean(m["margin"]) == pytest.approx(-1 / 3)
    assert _mean(m["reward/chosen"]) == pytest.approx(1 / 3)
    assert _mean(m["reward/rejected"]) == pytest.approx(2 / 3)


def test_weights_drop_padding_pairs() -> None:
    loss_sum, n, m = bradley_terry(R_C, R_R, torch.tensor([1.0, 1.0, 0.0]))
    assert float(loss_sum) == pytest.approx(LOSSES[0] + LOSSES[1], abs=1e-12)
    assert int(n) == 2
    assert _mean(m["accuracy"]) == pytest.approx(0.5)
    assert _mean(m["margin"]) == pytest.approx(0.5)


def test_gradient_is_minus_sigmoid_of_minus_margin() -> None:
    rc, rr = R_C.clone().requires_grad_(), R_R.clone().requires_grad_()
    bradley_terry(rc, rr)[0].backward()
    want = [-1 / (1 + math.exp(m)) for m in (1.0, 0.0, -2.0)]  # d/dm softplus(-m) = -sigmoid(-m)
    assert rc.grad.tolist() == pytest.approx(want, abs=1e-12)
    assert rr.grad.tolist() == pytest.approx([-w for w in want], abs=1e-12)


def test_large_margins_are_stable() -> None:
    loss_sum, _, m = bradley_terry(torch.tensor([100.0, -100.0]), torch.tensor([-100.0, 100.0]))
    assert float(loss_sum) == pytest.approx(200.0, rel=1e-6)  # log(1+e^-200) ~ 0, log(1+e^200) ~ 200
    assert torch.isfinite(m["loss"]).all()


def test_pair_loss_reads_interleaved_rows() -> None:
    rewards = torch.stack([R_C, R_R], dim=1).flatten()  # [c0, r0, c1, r1, c2, r2]
    mb = SimpleNamespace(extra={"weight": torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])})
    loss_sum, n, m = pair_loss(rewards, mb)
    assert float(loss_sum) == pytest.approx(LOSSES[0] + LOSSES[1], abs=1e-12)
    assert int(n) == 2
    assert _mean(m["accuracy"]) == pytest.approx(0.5)

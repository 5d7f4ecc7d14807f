"""Leaving zero-advantage rows out of the RL update changes no weight.

Rows of a constant-reward group have advantage 0: without a KL or entropy term their loss and
gradient are exactly 0, but their tokens count in the normaliser. ``build_minibatches`` with
``skip_zero_advantage`` drops them and carries their weight (``LEFT_OUT_WEIGHT``), the RL loss adds
it to the normaliser, and a minibatch with no row left takes a zero-gradient optimizer step. The
worker (a subprocess: it starts a one-rank gloo group) trains twin tiny Qwen3 models two steps
each, one on every row and one with the rows left out, for token and sequence aggregation, and
compares gradient norms and weights; the second step is all-zero (Adam's momentum still moves the
weights), so the zero-gradient step is compared too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from one_rank import run_self, tiny_config

from cascade.config.schema.common import ChatMode
from cascade.config.schema.rl import LossConfig, RewardDomain
from cascade.data.records import RLRecord
from cascade.generation import Sample
from cascade.rl.batch import LEFT_OUT_WEIGHT, build_minibatches, left_out_weight, zero_advantage_rows
from cascade.rl.rollout import Group

RECORD = RLRecord(id="p", domain=RewardDomain.MATH, source="test", prompt=[{"role": "user", "content": "x"}],
                  ground_truth="1")


def _group(prompt: list[int], responses: list[list[int]], valid: list[bool] | None = None) -> Group:
    samples = tuple(Sample("x", tuple(r), tuple(-0.3 - 0.01 * i for i in range(len(r))), "stop") for r in responses)
    g = Group("1.0.0", RECORD, ChatMode.INSTRUCT, tuple(prompt), samples, raw_rewards=[0.0] * len(responses))
    g.valid = valid or [True] * len(responses)
    return g


def _groups() -> tuple[list[Group], torch.Tensor]:
    """Two groups of two: the first has advantages ±1, the second (longer rows) is constant."""
    g1 = _group([5, 6, 7], [[20, 21, 22], [23]])
    g2 = _group([8, 9], [[30, 31, 32, 33, 34, 35, 36, 37, 38, 39], [40, 41, 42, 43, 44]])
    return [g1, g2], torch.tensor([[1.0, -1.0], [0.0, 0.0]])


def test_zero_advantage_rows_are_left_out_with_their_normaliser_weight() -> None:
    groups, adv = _groups()
    (full,) = build_minibatches(groups, adv, num_minibatches=1, pad_id=0, row_multiple=2, seq_multiple=4)
    (tok,) = build_minibatches(groups, adv, num_minibatches=1, pad_id=0, row_multiple=2, seq_multiple=4,
                               skip_zero_advantage="token")
    (seq,) = build_minibatches(groups, adv, num_minibatches=1, pad_id=0, row_multiple=2, seq_multiple=4,
                               skip_zero_advantage="sequence")
    assert full.batch_size == 4 and LEFT_OUT_WEIGHT not in full.extra
    assert tok.batch_size == 2 and int(tok.loss_mask.sum()) == 4  # the ±1 rows: 3 + 1 response tokens
    # the rows left out were the longest: the step's length follows the rows that train
    assert tok.seq_length == 8 < full.seq_length == 12
    assert left_out_weight(tok) == 15.0 and tok.extra[LEFT_OUT_WEIGHT][1] == 0  # 10 + 5 tokens, on row 0
    assert left_out_weight(seq) == 2.0  # two sequences
    assert int(full.loss_mask.sum()) == int(tok.loss_mask.sum()) + 15
    assert zero_advantage_rows(groups, adv) == 2


def test_a_minibatch_of_zero_advantage_rows_keeps_no_row_but_its_weight() -> None:
    groups, adv = _groups()
    mbs = build_minibatches(groups, adv, num_minibatches=2, pad_id=0, row_multiple=1, seq_multiple=4,
                            skip_zero_advantage="token")
    assert [int(m.loss_mask.sum()) for m in mbs] == [4, 0]
    assert [left_out_weight(m) for m in mbs] == [0.0, 15.0]


def test_skipping_applies_only_where_it_is_exact() -> None:
    assert LossConfig().zero_advantage_skip() == "token"
    assert LossConfig(aggregation="sequence").zero_advantage_skip() == "sequence"
    assert LossConfig(kl_coef=0.001).zero_advantage_skip() is None
    assert LossConfig(entropy_coef=0.01).zero_advantage_skip() is None
    assert LossConfig(skip_zero_advantage_rows=False).zero_advantage_skip() is None


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_self(__file__, tmp_path_factory.mktemp("zero_adv") / "zero_adv.json")


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_the_update_is_the_same_without_the_zero_advantage_rows(compared: dict, aggregation: str) -> None:
    r = compared[aggregation]
    weight = 15.0 if aggregation == "token" else 2.0  # 10 + 5 tokens, or two sequences
    assert r["left_out"] == [weight, weight]
    assert r["skip"]["step1"]["grad_norm"] == pytest.approx(r["full"]["step1"]["grad_norm"], rel=1e-5)
    assert r["skip"]["step1"]["grad_norm"] > 0
    assert r["skip"]["step2"]["grad_norm"] == r["full"]["step2"]["grad_norm"] == 0.0
    assert r["skip"]["step2"]["micro_batches"] == 0  # no forward at all
    assert r["moved_by_step2"] > 0  # Adam's momentum: the zero-gradient step still updates
    assert r["weight_max_diff"] < 1e-6


def _worker(out_path: str) -> None:
    from cascade.engine import build_model, build_optimizer, build_scheduler, split_global_batch, unwrap
    from cascade.engine.step import train_step
    from cascade.rl.loss_fn import LogitsTap, make_loss_fn

    cfg = tiny_config()
    groups, adv = _groups()
    res: dict = {}
    for aggregation in ("token", "sequence"):
        loss_cfg = LossConfig(aggregation=aggregation)
        a = build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=False)
        b = build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=False)
        for src, dst in zip(unwrap(a), unwrap(b)):
            dst.load_state_dict(src.state_dict())
        out: dict = {}
        for name, model, skip in (("full", a, None), ("skip", b, aggregation)):
            opt = build_optimizer(model, cfg.optim, cfg.precision, cfg.parallel)
            sched = build_scheduler(opt, cfg.optim, cfg.scheduler, total_steps=4)
            steps = {}
            # step 1: both groups; step 2: the constant group alone (every row left out)
            for step, (gs, ad) in enumerate([(groups, adv), (groups[1:], adv[1:])], start=1):
                (mb,) = build_minibatches(gs, ad, num_minibatches=1, pad_id=0, row_multiple=2, seq_multiple=4,
                                          skip_zero_advantage=skip)
                if skip:
                    res.setdefault(f"{aggregation}_left_out", []).append(left_out_weight(mb))
                local = split_global_batch(mb, 2, trim_multiple=4) if mb.loss_mask.sum() > 0 else []
                before = [p.detach().clone() for p in unwrap(model)[0].parameters()]
                tap = LogitsTap(model)
                fn = make_loss_fn(loss_cfg, temperature=1.0, tap=tap)
                metrics = train_step(model, opt, sched, local, fn)
                tap.close()
                metrics["micro_batches"] = len(local)
                if step == 2:
                    out[f"{name}_moved"] = max(float((p - q).abs().max())
                                               for p, q in zip(unwrap(model)[0].parameters(), before))
                steps[f"step{step}"] = metrics
            out[name] = steps
        out["weight_max_diff"] = max(float((x - y).abs().max()) for x, y in
                                     zip(unwrap(a)[0].parameters(), unwrap(b)[0].parameters()))
        out["moved_by_step2"] = out.pop("skip_moved")
        out.pop("full_moved")
        out["left_out"] = res.pop(f"{aggregation}_left_out")
        res[aggregation] = out
    Path(out_path).write_text(json.dumps(res))


if __name__ == "__main__":
    _worker(sys.argv[1])

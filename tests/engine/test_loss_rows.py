"""Projecting the loss positions only changes no loss, gradient or metric a trainer reads.

``cascade.engine.loss_rows`` feeds the output layer the rows under ``loss_mask`` only. The worker
(a subprocess: it starts a one-rank gloo group) trains twin tiny Qwen3 models one step each, one
projecting every position and one the loss rows, and compares: the SFT loss, gradient norm and
updated weights; the RL loss's metrics, including the entropy and the generator mismatch read
through the logits tap, at one and two rows per micro-batch (one row is where Megatron's in-place
cross entropy would overwrite a tapped fp32 tensor); and where selection must not apply.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from one_rank import run_self, tiny_config


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_self(__file__, tmp_path_factory.mktemp("rows") / "rows.json")


def test_sft_step_is_the_same_with_the_loss_rows_only(compared: dict) -> None:
    r = compared["sft"]
    assert r["selected"], "the selection applied"
    assert r["rows"]["lm_loss"] == pytest.approx(r["all"]["lm_loss"], rel=1e-5)
    assert r["rows"]["grad_norm"] == pytest.approx(r["all"]["grad_norm"], rel=1e-4)
    assert r["weight_max_diff"] < 1e-6


@pytest.mark.parametrize("mbs", [1, 2])
def test_rl_loss_and_tapped_metrics_are_the_same(compared: dict, mbs: int) -> None:
    r = compared[f"rl_mbs{mbs}"]
    assert r["rows"]["grad_norm"] == pytest.approx(r["all"]["grad_norm"], rel=1e-4)
    for key in ("entropy/mean", "mismatch/mean_abs_logprob_diff", "mismatch/token_mult_prob_error"):
        name = next(k for k in r["all"] if k.endswith(key))
        assert r["rows"][name] == pytest.approx(r["all"][name], rel=1e-5, abs=1e-6), name
    # the entropy is the model's, not of logits the cross entropy overwrote in place
    assert r["all"][next(k for k in r["all"] if k.endswith("entropy/mean"))] == pytest.approx(r["reference_entropy"], rel=1e-4)


def test_no_selection_without_a_vocabulary_projection_or_when_every_position_has_loss(compared: dict) -> None:
    assert compared["not_selected"] == {"all_loss": True, "no_loss": True, "reward_head": True}


def _worker(out_path: str) -> None:
    import torch

    from cascade.config.schema.rl import LossConfig
    from cascade.engine import build_model, build_optimizer, build_scheduler, loss_rows, unwrap
    from cascade.engine.batch import MicroBatch
    from cascade.engine.step import compute_logprobs, masked_nll, train_step
    from cascade.rl.batch import ADVANTAGES, GEN_LOGPROBS
    from cascade.rl.loss_fn import LogitsTap, make_loss_fn

    cfg = tiny_config()

    def twins() -> tuple[list, list]:
        a = build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=False)
        b = build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=False)
        for src, dst in zip(unwrap(a), unwrap(b)):
            dst.load_state_dict(src.state_dict())
        return a, b

    g = torch.Generator().manual_seed(0)
    rows, seq = 4, 24
    tokens = torch.randint(1, cfg.model.vocab_size, (rows, seq), generator=g)
    mask = torch.zeros(rows, seq)
    for i, (a, b) in enumerate([(6, 20), (10, 24), (3, 9), (12, 18)]):  # prompt, then a response
        mask[i, a:b] = 1.0
    full = MicroBatch(tokens=tokens, labels=torch.roll(tokens, -1, 1), loss_mask=mask)
    res: dict = {}

    def step(model: list, mbs: list, loss_fn, rows_only: bool, temperature: float = 1.0) -> dict:  # noqa: ANN001
        opt = build_optimizer(model, cfg.optim, cfg.precision, cfg.parallel)
        sched = build_scheduler(opt, cfg.optim, cfg.scheduler, total_steps=2)
        return train_step(model, opt, sched, mbs, loss_fn, temperature=temperature, loss_rows_only=rows_only)

    chunk = unwrap(build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=False))[0]
    res["sft"] = {"selected": loss_rows.selection(chunk, mask) is not None}
    a, b = twins()
    mbs = [full.select(torch.arange(0, 2)), full.select(torch.arange(2, 4))]
    res["sft"]["all"], res["sft"]["rows"] = step(a, mbs, masked_nll, False), step(b, mbs, masked_nll, True)
    res["sft"]["weight_max_diff"] = max(float((x - y).abs().max()) for x, y in
                                        zip(unwrap(a)[0].parameters(), unwrap(b)[0].parameters()))

    for per_mb, temp in ((1, 1.0), (2, 0.7)):  # at T 1 the model's own output reaches the cross entropy
        a, b = twins()
        gen_lp = compute_logprobs(a, [full])[0] * 0.9  # a generator that differs a little
        extra = {ADVANTAGES: torch.tensor([1.0, -1.0, 0.5, -0.5]), GEN_LOGPROBS: gen_lp * mask}
        batch = MicroBatch(tokens=full.tokens, labels=full.labels, loss_mask=mask, extra=extra)
        mbs = [batch.select(torch.arange(i, i + per_mb)) for i in range(0, rows, per_mb)]
        with torch.no_grad():  # the reference: entropy at the sampling temperature on the loss tokens
            logits = unwrap(a)[0](full.tokens, None, None).float() / temp
            ent = -(logits.log_softmax(-1).exp() * logits.log_softmax(-1)).sum(-1)
            reference = float(ent[mask.bool()].mean())
        out = {}
        for name, model, rows_only in (("all", a, False), ("rows", b, True)):
            tap = LogitsTap(model)
            fn = make_loss_fn(LossConfig(entropy_coef=0.01), temperature=temp, tap=tap, mismatch=True)
            out[name] = step(model, mbs, fn, rows_only, temp)
            tap.close()
        out["reference_entropy"] = reference
        res[f"rl_mbs{per_mb}"] = out

    class Head(torch.nn.Module):
        pass

    not_selected = {"all_loss": loss_rows.selection(chunk, torch.ones(2, 4)) is None,
                    "no_loss": loss_rows.selection(chunk, torch.zeros(2, 4)) is None}
    chunk.output_layer = Head()
    not_selected["reward_head"] = loss_rows.selection(chunk, mask) is None
    res["not_selected"] = not_selected
    Path(out_path).write_text(json.dumps(res))


if __name__ == "__main__":
    _worker(sys.argv[1])

"""Core attention of the local layer spec: our fused ``SDPAttention`` against Megatron-Core's
``DotProductAttention``, same model, same step, same run.

Both sides run the engine's training step (``cascade.engine.train_step``: Megatron-Core's
``get_forward_backward_func``, optimizer, scheduler; bench/trainer_overhead.py shows it costs what
Megatron's bare loop costs) on one model whose attention modules switch class between steps (they hold no parameters, so the weights are shared), alternating which side goes
first every round. Shapes are the toy cascade's: an SFT row of 1024 packed tokens (block-diagonal
mask) and an RL micro-batch of 4 rows of 352 tokens (causal). Model: the SmolLM2-135M shape
(random weights, fp32, one gloo rank). Tokens/s is the median over rounds; ratio = ours / Megatron.

Run: ``.venv/bin/python -m bench.core_attention [--smoke] [--rounds 3] [--out bench/results]``;
writes <out>/core_attention_cpu2.json and .md. ``--smoke``: the tiny Qwen3 and short rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.machine import describe, git_commit, write_result

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
NAME = "core_attention_cpu2"
SHAPES = {"full": {"config": "nemo_configs/tiny/sft.yaml", "sft": (1, 1024), "rl": (4, 352)},
          "smoke": {"config": "bench/trainer_overhead.yaml", "sft": (1, 64), "rl": (2, 32)}}


def _batches(shape: dict, vocab: int) -> dict:
    import torch

    from cascade.engine.batch import MicroBatch

    g = torch.Generator().manual_seed(0)
    out = {}
    for kind in ("sft", "rl"):
        b, s = shape[kind]
        tok = torch.randint(1, vocab, (b, s), generator=g)
        seg = None
        if kind == "sft":  # packed conversations: four segments in the row
            seg = torch.repeat_interleave(torch.arange(4), s // 4).expand(b, -1).contiguous()
        out[kind] = MicroBatch(tokens=tok, labels=torch.roll(tok, -1, 1), loss_mask=torch.ones(b, s), segment_ids=seg)
    return out


def run(smoke: bool, rounds: int) -> dict:
    import torch
    from megatron.core.transformer.dot_product_attention import DotProductAttention

    from cascade.config import load_stage_config
    from cascade.engine import build_model, build_optimizer, build_scheduler, init_distributed, unwrap
    from cascade.engine.batch import MicroBatch
    from cascade.engine.sdpa_attention import SDPAttention
    from cascade.engine.step import masked_nll, train_step

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29100 + os.getpid() % 800), RANK="0",
                      WORLD_SIZE="1", LOCAL_RANK="0")
    shape = SHAPES["smoke" if smoke else "full"]
    cfg = load_stage_config(REPO / shape["config"], ["precision.params_dtype=fp32", "optim.use_distributed_optimizer=false"])
    init_distributed(cfg.parallel, seed=1)
    model = build_model(cfg.model, cfg.parallel, cfg.precision, use_distributed_optimizer=False)
    opt = build_optimizer(model, cfg.optim, cfg.precision, cfg.parallel)
    sched = build_scheduler(opt, cfg.optim, cfg.scheduler, total_steps=10**6)
    cores = [m for c in unwrap(model) for m in c.modules() if isinstance(m, DotProductAttention)]
    batches = _batches(shape, cfg.model.vocab_size)
    sides = {"ours": SDPAttention, "megatron": DotProductAttention}
    res: dict = {"model": "SmolLM2-135M shape" if not smoke else "tiny Qwen3", "threads": torch.get_num_threads()}
    for kind, mb in batches.items():
        tokens = mb.tokens.numel()

        def step(mb: MicroBatch = mb) -> None:
            train_step(model, opt, sched, [mb], masked_nll)

        tps: dict[str, list[float]] = {s: [] for s in sides}
        for r in range(rounds + 1):  # round 0 warms both sides up
            for side in (sides if r % 2 == 0 else reversed(list(sides))):
                for c in cores:
                    c.__class__ = sides[side]
                t = time.perf_counter()
                step()
                if r:
                    tps[side].append(tokens / (time.perf_counter() - t))
        med = {s: statistics.median(v) for s, v in tps.items()}
        res[kind] = {"rows": mb.batch_size, "seq": mb.seq_length, "packed": mb.segment_ids is not None, "tokens_per_s": med,
                     "per_round": tps, "ratio": med["ours"] / med["megatron"]}
    return res


def to_markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"# Core attention: SDPAttention against Megatron's DotProductAttention ({res['date']}, commit {res['commit']})",
             "", f"Machine: {m['cpu_model']}, {m['cores']} cores, torch threads {res['threads']}, 1-min load "
             f"{res['load_before'][0]} -> {res['load_after'][0]}. Model: {res['model']} (random weights, fp32); "
             "Megatron-Core's training step (forward, backward, optimizer)." + (" **SMOKE**." if res["smoke"] else ""),
             "", "| step | rows x tokens | Megatron tokens/s | ours tokens/s | ratio |", "|---|---|---|---|---|"]
    for kind in ("sft", "rl"):
        r = res[kind]
        what = "SFT (packed, block-diagonal mask)" if r["packed"] else "RL micro-batch (causal)"
        lines.append(f"| {what} | {r['rows']} x {r['seq']} | {r['tokens_per_s']['megatron']:.1f} | "
                     f"{r['tokens_per_s']['ours']:.1f} | **{r['ratio']:.2f}** |")
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    load_before = [round(x, 2) for x in os.getloadavg()]
    machine = describe(os.cpu_count() or 1)
    res = run(a.smoke, 1 if a.smoke else a.rounds)
    res.update(bench=NAME, date=datetime.now(timezone.utc).date().isoformat(), commit=git_commit(REPO), smoke=a.smoke,
               machine=machine, load_before=load_before, load_after=[round(x, 2) for x in os.getloadavg()])
    write_result(a.out, NAME, res, to_markdown(res))


if __name__ == "__main__":
    main()

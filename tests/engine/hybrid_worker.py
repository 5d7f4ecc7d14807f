"""One rank of a nemotron_h (hybrid Mamba-2 / attention / MoE) engine job:
``python hybrid_worker.py SCENARIO OUT_DIR [key=value ...]``; writes ``OUT_DIR/<scenario>_rank<r>.json``.

``single`` (1 rank): saves the random initial weights (every layout then starts from them, loaded
with resharding), trains the uninterrupted baseline, overfits one batch, checks expert-bias
updates and the frozen router. ``layouts`` (2 ranks): EP=2, TP=2 (experts TP-split too) and DP=2
from the same weights and data; an EP=2 checkpoint resumed under TP=2 and under TP=1 x DP=2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

import engine_worker as ew  # noqa: E402  (tests/engine on sys.path)
from cascade.config import load_stage_config
from cascade.engine import (
    Checkpointer,
    MicroBatch,
    build_model,
    build_optimizer,
    build_scheduler,
    causal_lm_batch,
    init_distributed,
    split_global_batch,
    train_step,
)

HERE = Path(__file__).resolve().parent
LAYOUTS = {"ep2": "expert=2", "tp2": "tensor=2,sequence_parallel=1", "dp2": ""}
STEPS, RESUME_AT = 6, 3
ARGS = dict(a.split("=", 1) for a in sys.argv[3:])
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")


def stage_config(extra: list[str] | None = None):
    """The tiny hybrid as an fp32 SFT stage (layouts then differ only in summation order)."""
    overrides = [
        "precision.params_dtype=fp32", "optim.lr=3.0e-3", "optim.min_lr=3.0e-4",
        "optim.weight_decay=0.01", "optim.clip_grad=1.0",
        "scheduler.type=cosine", "scheduler.warmup_steps=1", "scheduler.warmup_start_lr=3.0e-4",
    ]
    return load_stage_config(HERE / "tiny_hybrid_sft.yaml", overrides + (extra or []))


def setup(cfg, parallel):  # noqa: ANN001
    """Layout + model + optimizer + scheduler as a stage builds them (the layout check is told
    the model: the hybrid's torch norms take sequence parallelism)."""
    init_distributed(parallel, seed=cfg.train.seed, model=cfg.model)
    model = build_model(cfg.model, parallel, cfg.precision)
    opt = build_optimizer(model, cfg.optim, cfg.precision, parallel)
    return model, opt, build_scheduler(opt, cfg.optim, cfg.scheduler, total_steps=STEPS)


def router_state(model) -> tuple[list[float], list[float]]:  # noqa: ANN001
    """(sum of router weights, expert bias values) of this rank's MoE layers."""
    weights, bias = [], []
    for name, p in model[0].named_parameters():
        if name.endswith("router.weight"):
            weights.append(float(p.detach().double().sum()))
    for name, b in model[0].named_buffers():
        if name.endswith("expert_bias"):
            bias += b.detach().double().tolist()
    return weights, bias


def probe_rows(model, batch: MicroBatch) -> list[list[float]]:  # noqa: ANN001
    """Per-token logprobs of ``batch``, rows of every DP rank in order."""
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    from cascade.engine import compute_logprobs

    mine = torch.cat(compute_logprobs(model, split_global_batch(batch, ew.MBS))).tolist()
    parts: list = [None] * ps.get_data_parallel_world_size()
    dist.all_gather_object(parts, mine, group=ps.get_data_parallel_group())
    return [row for part in parts for row in part]


def fixed_batch() -> MicroBatch:
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 512, (ew.GLOBAL_BATCH, ew.SEQ + 1), generator=g)
    return causal_lm_batch(tokens, torch.ones(ew.GLOBAL_BATCH, ew.SEQ))


def scenario_single() -> dict:
    cfg, out = stage_config(), {}
    model, opt, sched = setup(cfg, ew.parallel_of(""))
    Checkpointer(OUT / "init", model).save(0)
    _, bias0 = router_state(model)
    gen = ew.data_stream()
    out["losses"] = ew.train(model, opt, sched, STEPS, gen)
    _, bias1 = router_state(model)
    out["expert_bias_moved"] = max(abs(a - b) for a, b in zip(bias0, bias1))
    out["num_params"] = sum(p.numel() for p in model[0].parameters())

    # the same model learns: one fixed batch, repeated
    model, opt, sched = setup(cfg, ew.parallel_of(""))
    Checkpointer(OUT / "init", model).load_latest(load_optimizer=False)
    batch = split_global_batch(fixed_batch(), ew.MBS)
    out["overfit_losses"] = [train_step(model, opt, sched, batch)["lm_loss"] for _ in range(STEPS)]

    # layouts that cannot split the model are refused up front, naming the setting
    from cascade.engine import LayoutError, ModelBuildError, transformer_config
    from cascade.engine.parallel import check_layout
    from cascade.engine.precision import resolve_precision

    for key, spec in (("ep3_error", "expert=3"), ("tp8_error", "tensor=8,sequence_parallel=1"),
                      ("pp2_error", "pipeline=2")):
        try:
            par = ew.parallel_of(spec)
            transformer_config(cfg.model, par, resolve_precision(cfg.precision, par))
        except ModelBuildError as e:
            out[key] = str(e)
    try:
        check_layout(ew.parallel_of("expert=4"), 2, cfg.model)
    except LayoutError as e:
        out["ep_world_error"] = str(e)

    # every shipped Cascade-2 stage's layout can split the real Nano model
    from cascade.engine.model import _check_shapes

    out["nano3_layout_errors"] = {}
    for path in sorted((HERE.parents[1] / "nemo_configs" / "nano3_30b_a3b").glob("*.yaml")):
        if path.name in ("cascade.yaml", "rl_common.yaml"):
            continue
        stage = load_stage_config(path)
        try:
            _check_shapes(stage.model, stage.parallel)
        except ModelBuildError as e:
            out["nano3_layout_errors"][path.name] = str(e)

    # Nano-3 RL's frozen router: weights and expert bias stay put while the rest trains
    frozen = stage_config(["model.moe.freeze_router=true"])
    model, opt, sched = setup(frozen, ew.parallel_of(""))
    w0, b0 = router_state(model)
    out["frozen_losses"] = ew.train(model, opt, sched, 2, ew.data_stream())
    w1, b1 = router_state(model)
    out["frozen_router_delta"] = max(abs(a - b) for a, b in zip(w0 + b0, w1 + b1))
    return out


def _from_init(cfg, spec: str):  # noqa: ANN001
    model, opt, sched = setup(cfg, ew.parallel_of(spec))
    Checkpointer(ARGS["init"], model).load_latest(load_optimizer=False)
    return model, opt, sched


def scenario_layouts() -> dict:
    cfg, out = stage_config(), {}
    names = ARGS.get("layouts", "ep2,tp2,dp2").split(",")
    for name, spec in [(n, LAYOUTS[n]) for n in names]:
        model, opt, sched = _from_init(cfg, spec)
        ckpt, gen, losses = Checkpointer(OUT / f"ckpt_{name}", model, opt, sched), ew.data_stream(), []
        for step in range(1, STEPS + 1):
            losses += ew.train(model, opt, sched, 1, gen)
            if name == "ep2" and step == RESUME_AT:
                ckpt.save(step, {"data_rng": gen.get_state()})
        out[f"{name}_losses"] = losses
    if "hf" in ARGS:  # import / export the HF NemotronH under EP=2 and TP=2
        from safetensors.torch import load_file

        from cascade.engine import export_hf, import_hf

        hf_dir, ref = Path(ARGS["hf"]), torch.tensor(json.loads(Path(ARGS["hf_logprobs"]).read_text()))
        original = load_file(str(hf_dir / "model.safetensors"))
        for name in ("ep2", "tp2"):
            model, _, _ = setup(cfg, ew.parallel_of(LAYOUTS[name]))
            import_hf(model, hf_dir, cfg.model)
            out[f"hf_{name}_logprob_maxdiff"] = float((torch.tensor(probe_rows(model, fixed_batch())) - ref).abs().max())
            export_hf(model, OUT / f"hf_export_{name}", cfg.model)
            got = load_file(str(OUT / f"hf_export_{name}" / "model.safetensors"))
            out[f"hf_{name}_export_diff"] = sorted(set(got) ^ set(original)) + sorted(
                k for k in set(got) & set(original) if not torch.equal(got[k], original[k]))
    for name, spec in [(f"ep2_to_{n}", LAYOUTS[n]) for n in names if n != "ep2"]:
        model, opt, sched = setup(cfg, ew.parallel_of(spec))
        loaded = Checkpointer(OUT / "ckpt_ep2", model, opt, sched).load_latest()
        out[f"{name}_resumed"] = [loaded.step, loaded.restored_optimizer]
        gen = ew.data_stream()
        gen.set_state(loaded.extra_state["data_rng"])
        out[f"{name}_losses"] = ew.train(model, opt, sched, STEPS - loaded.step, gen)
    return out


def _tiny_hf_nemotron_h(cfg, out: Path) -> Path:  # noqa: ANN001
    """A random transformers NemotronHForCausalLM with the tiny hybrid's shapes, saved to ``out``."""
    from transformers import NemotronHConfig, NemotronHForCausalLM

    from cascade.engine.hf_hybrid import hybrid_hf_config

    kw = hybrid_hf_config(cfg.model, torch.float32)
    for key in ("architectures", "model_type", "dtype", "num_hidden_layers"):
        kw.pop(key)
    torch.manual_seed(5)
    hf = NemotronHForCausalLM(NemotronHConfig(**kw)).float().eval()
    with torch.no_grad():  # exercise every tensor: non-trivial router bias, D, dt bias, norms
        for name, p in hf.named_parameters():
            if name.endswith(("norm.weight", "norm_f.weight", ".D", "dt_bias")):
                p.add_(0.1 * torch.randn_like(p))
        for name, b in hf.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.05 * torch.randn_like(b))
    hf.save_pretrained(out)
    return out


def scenario_hf() -> dict:
    """HF NemotronH -> Megatron (logprobs equal transformers') -> HF (every tensor equal)."""
    from safetensors.torch import load_file
    from transformers import NemotronHForCausalLM

    from cascade.engine import compute_logprobs, export_hf, import_hf

    cfg, out = stage_config(), {}
    hf_dir = _tiny_hf_nemotron_h(cfg, OUT / "hf_tiny")
    model, opt, sched = setup(cfg, ew.parallel_of(""))
    import_hf(model, hf_dir, cfg.model)
    probe = fixed_batch()
    mine = torch.cat(compute_logprobs(model, split_global_batch(probe, ew.MBS)))
    hf = NemotronHForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = hf(input_ids=probe.tokens).logits.float()
    ref = torch.log_softmax(logits, -1).gather(-1, probe.labels.unsqueeze(-1)).squeeze(-1)
    out["logprob_maxdiff"] = float((mine - ref).abs().max())
    out["hf_logprobs"] = ref.tolist()
    export_hf(model, OUT / "hf_export", cfg.model)
    a, b = load_file(str(hf_dir / "model.safetensors")), load_file(str(OUT / "hf_export" / "model.safetensors"))
    out["missing"] = sorted(set(a) ^ set(b))
    out["unequal"] = sorted(k for k in set(a) & set(b) if not torch.equal(a[k], b[k]))
    NemotronHForCausalLM.from_pretrained(OUT / "hf_export")  # transformers reads our export
    return out


def main() -> None:
    t0 = time.time()
    result = globals()[f"scenario_{sys.argv[1]}"]()
    result["seconds"] = time.time() - t0
    ew.OUT = OUT
    ew.write(result)


if __name__ == "__main__":
    main()

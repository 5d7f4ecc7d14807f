"""One rank of an engine test job: ``python engine_worker.py SCENARIO OUT_DIR [key=value ...]``.

Started by tests/engine through ``cascade.engine.launch`` (1 or 2 gloo ranks). Each rank writes
``OUT_DIR/<scenario>_rank<r>.json`` and the tests assert on it. Several checks share a process
because importing Megatron costs ~5 s per process on two cores.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from cascade.config import load_stage_config  # noqa: E402
from cascade.config.schema.common import OptimConfig, ParallelConfig  # noqa: E402
from cascade.engine import (  # noqa: E402
    Checkpointer,
    MicroBatch,
    build_model,
    build_optimizer,
    build_scheduler,
    causal_lm_batch,
    compute_logprobs,
    import_hf,
    init_distributed,
    split_global_batch,
    train_step,
)

HERE = Path(__file__).resolve().parent
SEQ, GLOBAL_BATCH, MBS, STEPS = 32, 8, 2, 6
ARGS = dict(a.split("=", 1) for a in sys.argv[3:])
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")


def stage_config(extra: list[str] | None = None):
    """The tiny Qwen3 SFT config the layout and resume tests train (fp32: tight comparisons)."""
    overrides = [
        "model.num_layers=4", "precision.params_dtype=fp32",
        "optim.lr=1.0e-3", "optim.min_lr=1.0e-4", "optim.weight_decay=0.01", "optim.clip_grad=1.0",
        "scheduler.type=cosine", "scheduler.warmup_steps=1", "scheduler.warmup_start_lr=1.0e-4",
    ]
    return load_stage_config(HERE / "tiny_sft.yaml", overrides + (extra or []))


def data_stream() -> torch.Generator:
    """The training data: global batches drawn from this generator (its state = data position)."""
    return torch.Generator().manual_seed(7)


def global_batch(g: torch.Generator) -> MicroBatch:
    """The next global batch of the stream ``g``."""
    tokens = torch.randint(0, 512, (GLOBAL_BATCH, SEQ + 1), generator=g)
    mask = (torch.rand(GLOBAL_BATCH, SEQ, generator=g) > 0.25).float()  # ragged loss masks
    return causal_lm_batch(tokens, mask)


def parallel_of(spec: str) -> ParallelConfig:
    """``"tensor=2,pipeline=1"`` -> ParallelConfig."""
    kw = dict(item.split("=") for item in spec.split(",") if item)
    return ParallelConfig(**{k: int(v) for k, v in kw.items()})


def setup(cfg, parallel: ParallelConfig, hf_dir: str | None, *, dist_opt: bool = True):
    """Layout + model (+ HF weights) + optimizer + scheduler, as a stage would build them."""
    init_distributed(parallel, seed=cfg.train.seed)
    model = build_model(cfg.model, parallel, cfg.precision, use_distributed_optimizer=dist_opt)
    optim = OptimConfig(**{**cfg.optim.__dict__, "use_distributed_optimizer": dist_opt})
    opt = build_optimizer(model, optim, cfg.precision, parallel)
    sched = build_scheduler(opt, optim, cfg.scheduler, total_steps=STEPS)
    if hf_dir is not None:
        import_hf(model, hf_dir, cfg.model)
        opt.reload_model_params()
    return model, opt, sched


def train(model, opt, sched, n_steps: int, gen: torch.Generator) -> list[float]:
    """``n_steps`` optimizer steps on the next global batches of ``gen``; their losses."""
    return [
        train_step(model, opt, sched, split_global_batch(global_batch(gen), MBS))["lm_loss"]
        for _ in range(n_steps)
    ]


def probe_logprobs(model) -> list[list[float]]:
    """Per-token logprobs of a fixed global batch, rows of every DP rank in order."""
    from megatron.core import parallel_state as ps

    probe = global_batch(torch.Generator().manual_seed(999))
    mine = torch.cat(compute_logprobs(model, split_global_batch(probe, MBS))).tolist()
    parts: list = [None] * ps.get_data_parallel_world_size()
    dist.all_gather_object(parts, mine, group=ps.get_data_parallel_group())
    return [row for part in parts for row in part]


# ---- scenarios ---------------------------------------------------------------------------------
def scenario_layouts() -> dict:
    """2 ranks: losses and logprobs under TP2, PP2, PP2 x VP2, DP2 (distributed and plain
    optimizer); a TP2 checkpoint resumed under TP1 (DP2) and PP2; HF export at TP2 and PP2."""
    from cascade.engine import export_hf

    cfg, hf_dir, out = stage_config(), ARGS["hf_dir"], {}
    layouts = {
        "tp2": ("tensor=2", True), "pp2": ("pipeline=2", True),
        "pp2vp2": ("pipeline=2,virtual_pipeline=2", True),
        "dp2": ("", True), "dp2_plain_optimizer": ("", False),
    }
    for name, (spec, dist_opt) in layouts.items():
        model, opt, sched = setup(cfg, parallel_of(spec), hf_dir, dist_opt=dist_opt)
        out[f"{name}_logprobs"] = probe_logprobs(model)
        if name in ("tp2", "pp2"):
            export_hf(model, OUT / f"export_{name}", cfg.model, tokenizer_dir=hf_dir)
        ckpt, gen, losses = Checkpointer(OUT / "ckpt_tp2", model, opt, sched), data_stream(), []
        for step in range(1, STEPS + 1):
            losses += train(model, opt, sched, 1, gen)
            if name == "tp2" and step == 3:
                ckpt.save(step, {"data_rng": gen.get_state()})
        out[f"{name}_losses"] = losses
    from engine_worker_single import _model_config, _round_trip

    # tied embeddings split over two pipeline stages (the output layer's copy lives on stage 2)
    _round_trip("smolshape_pp2", ARGS["llama_dir"], _model_config(ARGS["llama_dir"]), out,
                parallel=parallel_of("pipeline=2"))
    for name, spec in (("tp2_to_dp2", ""), ("tp2_to_pp2", "pipeline=2")):
        model, opt, sched = setup(cfg, parallel_of(spec), None)
        loaded = Checkpointer(OUT / "ckpt_tp2", model, opt, sched).load_latest()
        out[f"{name}_resumed_step"] = loaded.step
        out[f"{name}_restored"] = [loaded.restored_optimizer, loaded.restored_rng]
        gen = data_stream()
        gen.set_state(loaded.extra_state["data_rng"])
        out[f"{name}_losses"] = train(model, opt, sched, STEPS - loaded.step, gen)
    return out


def scenario_resume() -> dict:
    """2 ranks (DP2, distributed optimizer) from the latest checkpoint, or from HF when none.

    ``pause_after=N``: after step N wait for SIGTERM/SIGUSR1, then save and stop.
    ``crash_at=N``: rank 0 SIGKILLs itself inside the save of step N, before the commit."""
    import signal

    from cascade.runtime import preemption

    cfg = stage_config()
    model, opt, sched = setup(cfg, parallel_of(""), None)
    ckpt = Checkpointer(ARGS["ckpt"], model, opt, sched, save_interval=int(ARGS.get("interval", 0)))
    start = ckpt.load_latest()
    gen = data_stream()  # its position is checkpointed in extra_state
    if start is None:
        import_hf(model, ARGS["hf_dir"], cfg.model)
        opt.reload_model_params()
    else:
        gen.set_state(start.extra_state["data_rng"])
    crash_at = int(ARGS.get("crash_at", -1))
    if crash_at > 0 and dist.get_rank() == 0:
        commit = Checkpointer._commit

        def crash(self, partial, final, step, *rest):  # noqa: ANN001
            if step == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return commit(self, partial, final, step, *rest)

        Checkpointer._commit = crash
    out: dict = {"start": start.step if start else 0, "losses": {}}
    pause_after = int(ARGS.get("pause_after", -1))
    preemption.install()
    for step in range((start.step if start else 0) + 1, int(ARGS.get("until", STEPS)) + 1):
        out["losses"][step] = train(model, opt, sched, 1, gen)[0]
        write(out)  # progressively, so a killed run still reports its losses
        print(f"step {step} done loss={out['losses'][step]:.6f}", flush=True)
        if step == pause_after:
            while not preemption.should_stop():
                time.sleep(0.05)
        if ckpt.save_if_due(step, {"data_rng": gen.get_state()}, stop=preemption.should_stop()):
            out["stopped_at"] = step
            got = preemption.received_signal()
            out["signal"] = got.name if got else None
            break
    return out


def write(result: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{sys.argv[1]}_rank{dist.get_rank()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)


def main() -> None:
    scenario = sys.argv[1]
    t0 = time.time()
    if scenario in ("layouts", "resume"):
        result = globals()[f"scenario_{scenario}"]()
    else:
        sys.path.insert(0, str(HERE))
        import engine_worker_single as single  # 1-rank checks (HF, errors, GPU)

        result = getattr(single, f"scenario_{scenario}")()
    result["seconds"] = time.time() - t0
    write(result)


if __name__ == "__main__":
    main()

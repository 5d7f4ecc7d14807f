"""GPU tier (marker `gpu`, skipped without CUDA). Written and reviewed against Megatron-Core 0.19.2
and Transformer Engine 2.20, not yet run on a GPU.

What each test would catch on a first GPU run:

* ``test_bf16_on_cuda`` (CUDA only; TE optional): the engine trains in bf16 on the GPU with
  whichever layer spec this machine supports (TE when it imports, else Megatron's local spec, and
  the reason is reported), its logprobs stay close to transformers' fp32 ones, packed sequences
  (``thd`` with TE, a block mask without) score like the same sequences alone.
* ``test_fp8_is_really_active`` (TE + FP8-capable GPU, else skipped with TE's reason): FP8 must be
  *on*, not only give a finite loss: TE modules report ``fp8`` for the last forward, the recipe
  TE received is the configured one (hybrid, delayed scaling, amax history 1024 / max), and the
  delayed-scaling state (``fp8_meta["scaling_fwd"/"scaling_bwd"].amax_history`` and ``.scale``,
  TE 2.20 names) was updated by the steps; current scaling (``tensorwise``) runs FP8 too.
* ``test_two_gpu_layouts`` (>= 2 GPUs, else skipped): TP=2 with sequence parallelism and CP=2
  (TE only) give the DP=2 losses, and packed batches under TP=2 + SP match unpacked ones.

Each check runs in ranks started by ``cascade.engine.launch`` with ``device="gpu"`` (one GPU per
rank); this file is also the worker those ranks run (``python test_gpu.py SCENARIO OUT k=v``),
reusing engine_worker's helpers. With ``CASCADE_GPU_CHECK_OUT`` set (scripts/gpu_check.sh), each
result dict is also copied there.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

if __name__ != "__main__":
    import pytest

    def _visible_gpus() -> int:
        try:
            import torch

            return torch.cuda.device_count() if torch.cuda.is_available() else 0
        except ImportError:
            return 0

    def _run(scenario: str, nprocs: int, out: Path, args: dict[str, str], timeout: float) -> list[dict]:
        from conftest import JobFailed, job_env

        from cascade.engine.launch import run_local

        argv = [str(Path(__file__)), scenario, str(out), *(f"{k}={v}" for k, v in args.items())]
        results = run_local(nprocs, argv, timeout=timeout, log_dir=out / f"logs_{scenario}",
                            env=job_env(), cwd=REPO, device="gpu")
        for r in results:
            if r.returncode != 0:
                raise JobFailed(f"{scenario} rank {r.rank} exited {r.returncode}:\n{r.output[-6000:]}")
        res = [json.loads((out / f"{scenario}_rank{r}.json").read_text()) for r in range(nprocs)]
        dest = os.environ.get("CASCADE_GPU_CHECK_OUT")
        if dest:
            Path(dest).mkdir(parents=True, exist_ok=True)
            shutil.copy(out / f"{scenario}_rank0.json", Path(dest) / f"{scenario}.json")
        return res

    @pytest.mark.gpu
    @pytest.mark.timeout(600)
    def test_bf16_on_cuda(tiny_hf: dict, tmp_path: Path) -> None:
        res = _run("gpu_bf16", 1, tmp_path, {"hf_dir": tiny_hf["hf_dir"]}, timeout=480)[0]
        assert res["on_gpu"], res
        if res["have_te"]:
            assert any(n.startswith("TELayerNormColumnParallelLinear") for n in res["te_modules"]), res
        else:  # the local spec, and the reason TE is not used is on record
            assert res["te_modules"] == [] and res["te_reason"], res
        assert res["bf16_logprob_maxdiff"] < 0.1  # bf16 weights and activations vs fp32 reference
        assert all(math.isfinite(x) for x in res["bf16_losses"]), res["bf16_losses"]
        assert res["bf16_losses"][-1] < res["bf16_losses"][0]
        assert res["packed_maxdiff"] < 0.05, res  # packed rows score like the sequences alone

    @pytest.mark.gpu
    @pytest.mark.timeout(600)
    def test_fp8_is_really_active(tiny_hf: dict, tmp_path: Path) -> None:
        res = _run("gpu_fp8", 1, tmp_path, {"hf_dir": tiny_hf["hf_dir"]}, timeout=480)[0]
        if res.get("skip"):
            pytest.skip(res["skip"])
        d = res["delayed"]
        assert d["modules"] > 0 and d["fp8_on"] == d["modules"], d  # every TE module ran in FP8
        assert d["recipe"] == "DelayedScaling" and d["format"] == "HYBRID", d
        assert (d["amax_history_len"], d["amax_compute_algo"], d["margin"]) == (1024, "max", 0), d
        assert d["history_rows"] == 1024, d
        assert d["amax_fwd_updated"] == d["modules"] and d["amax_bwd_updated"] == d["modules"], d
        assert d["scale_updated"] > 0, d  # scales moved off their initial 1.0
        t = res["tensorwise"]
        assert t["modules"] > 0 and t["fp8_on"] == t["modules"] and t["recipe"] == "Float8CurrentScaling", t
        for key in ("delayed", "tensorwise"):
            losses = res[key]["losses"]
            assert all(math.isfinite(x) for x in losses), (key, losses)
            assert abs(losses[0] - res["bf16_losses"][0]) < 0.1, (key, losses, res["bf16_losses"])

    @pytest.mark.gpu
    @pytest.mark.timeout(900)
    def test_two_gpu_layouts(tiny_hf: dict, tmp_path: Path) -> None:
        gpus = _visible_gpus()
        if gpus < 2:
            pytest.skip(f"needs 2 GPUs (TP=2 + SP, CP=2, packed under TP); {gpus} visible")
        res = _run("gpu_layouts2", 2, tmp_path, {"hf_dir": tiny_hf["hf_dir"]}, timeout=780)
        r0 = res[0]
        base = r0["dp2_losses"]
        assert all(math.isfinite(x) for x in base), base
        assert max(abs(a - b) for a, b in zip(r0["tp2_sp_losses"], base)) < 0.05, r0
        if r0["have_te"]:
            assert max(abs(a - b) for a, b in zip(r0["cp2_losses"], base)) < 0.05, r0
        else:
            assert r0["cp2_skipped"], r0
        assert r0["packed_tp2_sp_maxdiff"] < 0.05, r0
        assert res[1]["tp2_sp_losses"] == r0["tp2_sp_losses"]  # both TP ranks report one loss


# ---- worker (runs in the ranks; Megatron never loads into the pytest process) ------------------
def _te_modules(chunk) -> list:
    return [m for m in chunk.modules() if isinstance(getattr(m, "fp8_meta", None), dict)]


def _fp8_state(chunk) -> dict:
    """What TE recorded about FP8 in ``chunk`` (TE 2.20 attribute names)."""
    mods = _te_modules(chunk)
    out: dict = {"modules": len(mods), "fp8_on": sum(bool(getattr(m, "fp8", False)) for m in mods)}
    recipe = mods[0].fp8_meta.get("recipe") if mods else None
    out["recipe"] = type(recipe).__name__ if recipe is not None else None
    if recipe is not None and hasattr(recipe, "amax_history_len"):  # DelayedScaling
        out.update(format=getattr(recipe.fp8_format, "name", str(recipe.fp8_format)),
                   amax_history_len=recipe.amax_history_len,
                   amax_compute_algo=recipe.amax_compute_algo, margin=recipe.margin)
        fwd = [m.fp8_meta["scaling_fwd"] for m in mods if "scaling_fwd" in m.fp8_meta]
        bwd = [m.fp8_meta["scaling_bwd"] for m in mods if "scaling_bwd" in m.fp8_meta]
        out["history_rows"] = int(fwd[0].amax_history.shape[0]) if fwd else 0
        out["amax_fwd_updated"] = sum(int(bool((s.amax_history != 0).any())) for s in fwd)
        out["amax_bwd_updated"] = sum(int(bool((s.amax_history != 0).any())) for s in bwd)
        out["scale_updated"] = sum(int(bool((s.scale != 1).any())) for s in fwd + bwd)
    return out


def _packed_maxdiff(model) -> float:
    """Max |logprob| difference between two sequences packed in one row and each alone."""
    import torch

    from cascade.engine import MicroBatch, compute_logprobs

    g = torch.Generator().manual_seed(5)
    lens = [12, 20]
    seqs = [torch.randint(0, 512, (n + 1,), generator=g) for n in lens]
    packed = MicroBatch(
        tokens=torch.cat([s[:-1] for s in seqs])[None], labels=torch.cat([s[1:] for s in seqs])[None],
        loss_mask=torch.ones(1, sum(lens)),
        position_ids=torch.cat([torch.arange(n) for n in lens])[None],
        segment_ids=torch.cat([torch.full((n,), i) for i, n in enumerate(lens)])[None],
    )
    together = compute_logprobs(model, [packed])[0][0].float().cpu()
    alone = [compute_logprobs(model, [MicroBatch(s[:-1][None], s[1:][None], torch.ones(1, len(s) - 1))])[0][0]
             for s in seqs]
    return float((together - torch.cat(alone).float().cpu()).abs().max())


def scenario_gpu_bf16(ew) -> dict:
    import torch

    import engine_worker_single as single
    from cascade.config.schema.common import ParallelConfig
    from cascade.engine import compute_logprobs, device
    from cascade.engine.model import unwrap

    cfg = ew.stage_config(["precision.params_dtype=bf16"])
    res: dict = {"on_gpu": device.ON_GPU, "have_te": device.HAVE_TE, "te_reason": device.TE_REASON,
                 "gpu": torch.cuda.get_device_name()}
    model, opt, sched = ew.setup(cfg, ParallelConfig(), ew.ARGS["hf_dir"])
    names = {type(m).__name__ for m in unwrap(model)[0].modules()}
    res["te_modules"] = sorted(n for n in names if n.startswith("TE"))
    ours = torch.cat(compute_logprobs(model, [single._probe_mb()])).float().cpu()
    ref = single._hf_logprobs(ew.ARGS["hf_dir"], single._probe_mb().tokens, single._probe_mb().labels)
    res["bf16_logprob_maxdiff"] = (ours - ref).abs().max().item()
    res["packed_maxdiff"] = _packed_maxdiff(model)
    res["packed_format"] = "thd" if device.HAVE_TE else "block mask"
    res["bf16_losses"] = ew.train(model, opt, sched, 3, ew.data_stream())
    return res


def scenario_gpu_fp8(ew) -> dict:
    from cascade.config.schema.common import ParallelConfig
    from cascade.engine import device
    from cascade.engine.model import unwrap

    if not device.HAVE_TE:
        return {"skip": f"FP8 needs Transformer Engine: {device.TE_REASON}"}
    import transformer_engine.pytorch as tep

    avail, reason = tep.is_fp8_available(return_reason=True)
    if not avail:
        return {"skip": f"this GPU has no FP8 support: {reason}"}
    res: dict = {}
    bf16 = ew.stage_config(["precision.params_dtype=bf16"])
    model, opt, sched = ew.setup(bf16, ParallelConfig(), ew.ARGS["hf_dir"])
    res["bf16_losses"] = ew.train(model, opt, sched, 3, ew.data_stream())
    for recipe in ("delayed", "tensorwise"):
        cfg = ew.stage_config(["precision.fp8=hybrid", f"precision.fp8_recipe={recipe}",
                               "precision.params_dtype=bf16"])
        model, opt, sched = ew.setup(cfg, ParallelConfig(), ew.ARGS["hf_dir"])
        losses = ew.train(model, opt, sched, 3, ew.data_stream())
        res[recipe] = {"losses": losses, **_fp8_state(unwrap(model)[0])}
    return res


def scenario_gpu_layouts2(ew) -> dict:
    from cascade.config.schema.common import ParallelConfig
    from cascade.engine import device

    cfg = ew.stage_config(["precision.params_dtype=bf16"])
    res: dict = {"have_te": device.HAVE_TE}

    def losses(parallel: ParallelConfig) -> list[float]:
        model, opt, sched = ew.setup(cfg, parallel, ew.ARGS["hf_dir"])
        return ew.train(model, opt, sched, 3, ew.data_stream())

    res["dp2_losses"] = losses(ParallelConfig())
    res["tp2_sp_losses"] = losses(ParallelConfig(tensor=2, sequence_parallel=True))
    if device.HAVE_TE:
        res["cp2_losses"] = losses(ParallelConfig(context=2))
    else:
        res["cp2_skipped"] = f"CP needs TE attention: {device.TE_REASON}"
    model, _, _ = ew.setup(cfg, ParallelConfig(tensor=2, sequence_parallel=True), ew.ARGS["hf_dir"])
    res["packed_tp2_sp_maxdiff"] = _packed_maxdiff(model)
    return res


def _worker_main() -> None:
    import time

    sys.path.insert(0, str(HERE))
    import engine_worker as ew  # reads SCENARIO OUT k=v from sys.argv, as here

    t0 = time.time()
    result = globals()[f"scenario_{sys.argv[1]}"](ew)
    result["seconds"] = time.time() - t0
    ew.write(result)


if __name__ == "__main__":
    _worker_main()

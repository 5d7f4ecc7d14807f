#!/usr/bin/env bash
# Submit a whole cascade to Slurm: one sbatch per stage (side stages first), each with
# --dependency=afterok:<the stages it depends on> and --kill-on-invalid-dep=yes, so a failed
# stage cancels everything downstream. Prints the job ids and a status command; the ids also go
# to <run_dir>/jobs.json. Stages already COMPLETE are skipped, so re-submitting is safe.
#
#   launchers/cascade.sh CASCADE_YAML [--from STAGE] [--dry-run] [key=value ...] [-- SBATCH_OPTIONS...]
#   launchers/cascade.sh nemo_configs/qwen3_8b/cascade.yaml --dry-run
#   launchers/cascade.sh nemo_configs/tiny/cascade.yaml --dry-run run_dir=/tmp/toy launch.time=01:00:00 sft.train.steps=2
#   launchers/cascade.sh nemo_configs/qwen3_8b/cascade.yaml --from math_rl_24k -- --account=me
#   python -m cascade.launch status runs/qwen3_8b          # which stage failed, what it cancelled
# key=value (anywhere before --): run_dir=... goes to the cascade, STAGE.key=value to that stage, other keys
# to every stage (launch.* also changes the sbatch line); all are checked against every stage first.
#
# Partition/account/QoS: SBATCH_PARTITION / SBATCH_ACCOUNT / SBATCH_QOS, or after `--`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit $(( $# < 1 ? 2 : 0 ))
fi
PY=${CASCADE_PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m cascade.launch submit "$@"

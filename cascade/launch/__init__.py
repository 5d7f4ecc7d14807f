"""Slurm-facing only: generated sbatch scripts, the run-stage entry point, the afterok chain
submitter, status. The top layer: it may import everything below (the stage runtime, the stage
graph), and nothing below imports it.

    python -m cascade.launch generate [--check] [--cascade YAML]   render launchers/<cascade>/stage_NN_*.sh
    python -m cascade.launch run-stage CASCADE STAGE [key=value ...]   what every rank runs
    python -m cascade.launch submit CASCADE [--from STAGE] [--dry-run]  (launchers/cascade.sh)
    python -m cascade.launch run-local CASCADE [key=value ...]          the chain without Slurm
    python -m cascade.launch status RUN_DIR_OR_CASCADE [--wait S]
    python -m cascade.launch shape CASCADE STAGE         the stage's job shape (nodes, tasks, time)
    python -m cascade.launch local-log CASCADE STAGE     where a local (no Slurm) run logs
"""

"""A stage's Slurm job shape (nodes, processes, walltime, signal lead) from its typed config.

The numbers live in each stage YAML's `launch:` section (cascade/config/schema/common.py,
LaunchConfig); the parallel layout fixes the minimum: one model replica needs TP*PP*CP ranks,
and the world size must be a multiple of it (the rest is data parallelism).
"""

from __future__ import annotations

from dataclasses import dataclass

from cascade.config import ConfigError, load_stage_config
from cascade.stages import ResolvedStage


@dataclass(frozen=True)
class JobShape:
    nodes: int
    tasks_per_node: int  # processes per node (one per GPU)
    gpus_per_node: int  # 0: CPU job
    time: str
    signal_lead_s: int
    model_parallel_size: int  # TP * PP * CP
    container_image: str
    container_mounts: str  # comma-separated SRC:DST, as pyxis takes them

    @property
    def world_size(self) -> int:
        return self.nodes * self.tasks_per_node

    def sbatch_args(self) -> list[str]:
        """The resource options of `sbatch` (the #SBATCH lines and cascade.sh's command line)."""
        # --gpus-per-node=0 stays explicit: on the command line it must override the #SBATCH
        # line of a script whose default cascade asks for GPUs (a shared side_*.sh)
        return [f"--nodes={self.nodes}", f"--ntasks-per-node={self.tasks_per_node}",
                f"--gpus-per-node={self.gpus_per_node}", f"--time={self.time}",
                f"--signal=B:USR1@{self.signal_lead_s}"]


def shape_from_config(config: object, source: str) -> JobShape:
    launch = config.launch  # type: ignore[attr-defined]
    mp = config.parallel.model_parallel_size  # type: ignore[attr-defined]
    nodes = launch.node_count(mp)
    per_node = launch.tasks_per_node()
    if (nodes * per_node) % mp:
        raise ConfigError(
            f"{source}: launch gives {nodes} node(s) x {per_node} process(es) = {nodes * per_node} ranks, "
            f"not a multiple of TP*PP*CP = {mp}; set launch.nodes / launch.procs_per_node"
        )
    return JobShape(
        nodes=nodes,
        tasks_per_node=per_node,
        gpus_per_node=launch.gpus_per_node,
        time=launch.time,
        signal_lead_s=launch.signal_lead_s,
        model_parallel_size=mp,
        container_image=launch.container_image or "",
        container_mounts=",".join(launch.container_mounts),
    )


def job_shape(stage: ResolvedStage, overrides: list[str] | tuple[str, ...] = ()) -> JobShape:
    """The job shape of `stage` with the cascade's own overrides and then `overrides` applied
    (so `launch.nodes=1` on the command line reaches the sbatch line)."""
    config = load_stage_config(stage.config, [*stage.overrides, *overrides])
    return shape_from_config(config, str(stage.config))

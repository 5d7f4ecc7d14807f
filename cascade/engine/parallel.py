"""Process groups from the config: torch.distributed + Megatron-Core's parallel state.

Why here: every stage derives its layout (TP, PP with virtual stages, CP, SP; DP is what is left of
the world) from the same typed ``ParallelConfig``, and the layouts that cannot run on the current
machine are refused before any process group exists, with a message that names the setting.
"""

from __future__ import annotations

import datetime
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from megatron.core import parallel_state as ps
from megatron.core import tensor_parallel

from cascade.config.schema.common import ModelConfig, ModelFamily, ParallelConfig
from cascade.engine import device
from cascade.engine.launch import free_port


class LayoutError(ValueError):
    """A parallel layout that this machine or this world size cannot run."""


@dataclass(frozen=True)
class Layout:
    """The resolved layout of this process (sizes and ranks)."""

    world_size: int
    rank: int
    tp: int
    pp: int
    vp: int | None
    cp: int
    dp: int
    sequence_parallel: bool
    tp_rank: int
    pp_rank: int
    dp_rank: int
    cp_rank: int


def check_layout(parallel: ParallelConfig, world_size: int, model: ModelConfig | None = None) -> int:
    """Validate ``parallel`` for this machine and world size; return the data-parallel size.

    ``model``: the nemotron_h family's local layer spec has sequence-parallel torch norms
    (``cascade.engine.hybrid``), so sequence parallelism is allowed on CPU for it."""
    sp_norms = model is not None and model.family is ModelFamily.NEMOTRON_H
    if device.ON_CPU and parallel.sequence_parallel and not sp_norms:
        raise LayoutError(
            "parallel.sequence_parallel=true needs Transformer Engine or apex norms, which do not "
            "exist on CPU; set parallel.sequence_parallel=false for CPU runs"
        )
    if device.ON_CPU and parallel.context > 1:
        raise LayoutError(
            f"parallel.context={parallel.context} needs Transformer Engine attention, which does not "
            "run on CPU; set parallel.context=1 for CPU runs"
        )
    if world_size % parallel.model_parallel_size:
        raise LayoutError(
            f"world size {world_size} is not a multiple of tensor*pipeline*context = "
            f"{parallel.tensor}*{parallel.pipeline}*{parallel.context}"
        )
    if world_size % parallel.expert_model_parallel_size:
        etp = parallel.expert_tensor or parallel.tensor
        raise LayoutError(
            f"world size {world_size} is not a multiple of expert_tensor*expert*pipeline = "
            f"{etp}*{parallel.expert}*{parallel.pipeline} (the experts' layout)"
        )
    return world_size // parallel.model_parallel_size


def _env_from_slurm() -> None:
    """srun starts one task per GPU without torchrun's env vars: derive them."""
    if "RANK" in os.environ or "SLURM_PROCID" not in os.environ:
        return
    os.environ["RANK"] = os.environ["SLURM_PROCID"]
    os.environ["WORLD_SIZE"] = os.environ.get("SLURM_NTASKS", "1")
    os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
    os.environ.setdefault("MASTER_PORT", "29500")
    if "MASTER_ADDR" not in os.environ:
        nodes = os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1")
        os.environ["MASTER_ADDR"] = nodes.split(",")[0].split("[")[0]


def init_process_group(timeout_minutes: int = 30) -> None:
    """torch.distributed from torchrun/srun env vars; a 1-process group when there are none."""
    if dist.is_initialized():
        return
    _env_from_slurm()
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    if device.ON_GPU:
        local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local_rank >= gpus:
            raise LayoutError(
                f"LOCAL_RANK={local_rank} but this node has {gpus} visible GPU(s): start at most one "
                "rank per GPU (or CASCADE_DEVICE=cpu for a CPU run)"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend=device.dist_backend(), timeout=datetime.timedelta(minutes=timeout_minutes)
    )


def seed_all(seed: int) -> None:
    """Seed python, numpy, torch and Megatron's model-parallel RNG tracker (per PP stage, as
    Megatron-LM does, so stages do not share dropout streams)."""
    seed = seed + 100 * ps.get_pipeline_model_parallel_rank()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    tensor_parallel.model_parallel_cuda_manual_seed(seed, force_reset_rng=True)


def init_distributed(
    parallel: ParallelConfig, seed: int = 1234, *, model: ModelConfig | None = None
) -> Layout:
    """Start torch.distributed (if needed) and Megatron's parallel state for ``parallel``.

    Calling it again with another layout re-creates the Megatron groups (tests switch layouts
    inside one process group this way).
    """
    init_process_group()
    check_layout(parallel, dist.get_world_size(), model)
    if ps.model_parallel_is_initialized():
        ps.destroy_model_parallel()
    ps.initialize_model_parallel(
        tensor_model_parallel_size=parallel.tensor,
        pipeline_model_parallel_size=parallel.pipeline,
        virtual_pipeline_model_parallel_size=parallel.virtual_pipeline,
        context_parallel_size=parallel.context,
        expert_model_parallel_size=parallel.expert,
        expert_tensor_parallel_size=parallel.expert_tensor,
    )
    seed_all(seed)
    return current_layout(parallel)


def current_layout(parallel: ParallelConfig) -> Layout:
    """Sizes and ranks of this process under the initialised parallel state."""
    return Layout(
        world_size=dist.get_world_size(),
        rank=dist.get_rank(),
        tp=parallel.tensor,
        pp=parallel.pipeline,
        vp=parallel.virtual_pipeline,
        cp=parallel.context,
        dp=ps.get_data_parallel_world_size(),
        sequence_parallel=parallel.sequence_parallel,
        tp_rank=ps.get_tensor_model_parallel_rank(),
        pp_rank=ps.get_pipeline_model_parallel_rank(),
        dp_rank=ps.get_data_parallel_rank(),
        cp_rank=ps.get_context_parallel_rank(),
    )


def destroy_distributed() -> None:
    """Tear down Megatron's groups and the default process group (end of a run or a test)."""
    if ps.model_parallel_is_initialized():
        ps.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()

"""Megatron distributed checkpoints, committed atomically, resumable under another layout.

Why: a preempted or crashed job must never resume from half a checkpoint, and a resumed job
must continue the same loss curve. Layout of a checkpoint root::

    root/latest                      text: name of the newest committed checkpoint
    root/iter_0000040/               committed (Megatron dist-checkpoint + cascade_meta.json)
    root/iter_0000050.partial/       being written, or left by a crash: never loaded

Commit protocol: every rank writes its shards into ``iter_N.partial``; after a barrier rank 0
writes ``cascade_meta.json``, renames the directory to ``iter_N`` (the commit point: a rename is
atomic), then replaces ``latest`` through a temp file + ``os.replace``. A crash at any point
leaves ``latest`` on the previous checkpoint.

What is saved: model (sharded per TP/PP, resharded on load), optimizer (the distributed
optimizer in Megatron's ``fully_reshardable`` format, so TP/PP/DP may all change), LR
scheduler, the step, ``extra_state`` from the caller (data position: must be the same on every
rank) and every rank's RNG states (python, numpy, torch, CUDA, Megatron's tracker). RNG states are
restored only when the layout is unchanged, since they are per rank.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from megatron.core import dist_checkpointing, tensor_parallel
from megatron.core import parallel_state as ps
from megatron.core.dist_checkpointing.mapping import ShardedObject
from megatron.core.dist_checkpointing.strategies import torch as _mcore_torch_strategy
from megatron.core.optimizer import DistributedOptimizer, MegatronOptimizer
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
from megatron.core.transformer.module import MegatronModule

from cascade import fileio
from cascade.config.schema.common import CheckpointConfig
from cascade.engine import device
from cascade.engine.model import unwrap

log = logging.getLogger(__name__)
# Megatron 0.19's *synchronous* torch_dist save goes through its async path with strategy "mcore"
# and warns that MCore async save is deprecated on every first save; we never save asynchronously.
_mcore_torch_strategy._logged_mcore_async_deprecation = True

LATEST = fileio.LATEST
META = fileio.CKPT_META
PARTIAL = ".partial"
_COMMITTED = re.compile(r"^iter_\d{7,}$")
_SD_METADATA = {
    # The distributed optimizer's layout-independent format (TP/PP/DP may change between save and
    # load). Megatron 0.19 no longer supports `fully_sharded_model_space` (flattened ranges).
    "distrib_optim_sharding_type": "fully_reshardable",
    "singleton_local_shards": False,
    "chained_optim_avoid_prefix": True,
}


@dataclass(frozen=True)
class LoadedCheckpoint:
    """What a load restored: the step it was saved at and the caller's ``extra_state``."""

    step: int
    path: Path
    extra_state: dict
    restored_rng: bool
    restored_optimizer: bool


def _layout() -> dict[str, int]:
    lay = dict(
        tp=ps.get_tensor_model_parallel_world_size(),
        pp=ps.get_pipeline_model_parallel_world_size(),
        vp=ps.get_virtual_pipeline_model_parallel_world_size() or 1,
        cp=ps.get_context_parallel_world_size(),
        dp=ps.get_data_parallel_world_size(),
    )
    # Expert layout only where it is not the default, so dense checkpoints keep their layout key
    ep, etp = ps.get_expert_model_parallel_world_size(), ps.get_expert_tensor_parallel_world_size()
    if ep != 1 or etp != lay["tp"]:
        lay.update(ep=ep, etp=etp)
    return lay


def _rng_sharded_object(state: Any) -> ShardedObject:
    lay = _layout()
    return ShardedObject(
        "rng_state",
        state,
        (lay["pp"], lay["tp"], lay["cp"], lay["dp"]),
        (
            ps.get_pipeline_model_parallel_rank(),
            ps.get_tensor_model_parallel_rank(),
            ps.get_context_parallel_rank(),
            ps.get_data_parallel_rank(),
        ),
        replica_id=0,
    )


def capture_rng() -> dict:
    """Every RNG state of this process."""
    return {
        "random": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if device.ON_GPU else None,
        "tracker": tensor_parallel.get_cuda_rng_tracker().get_states(),
    }


def restore_rng(state: dict) -> None:
    """Inverse of ``capture_rng``."""
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.ON_GPU and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"])
    tensor_parallel.get_cuda_rng_tracker().set_states(state["tracker"])


def _allocate_optimizer_state(optimizer: MegatronOptimizer) -> None:
    """torch's AdamW allocates its state at the first step, but Megatron's DistributedOptimizer
    must hold state before it can describe what to load. Megatron fills it the same way for
    FSDP: one zero-gradient step, whose values the load then overwrites."""
    for opt in getattr(optimizer, "chained_optimizers", [optimizer]):
        if isinstance(opt, DistributedOptimizer) and not opt.optimizer.state:
            opt._init_optimizer_states_with_dummy_values()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def checkpoint_name(step: int) -> str:
    return f"iter_{step:07d}"


def committed_checkpoints(root: str | Path) -> list[Path]:
    """Committed checkpoint directories under ``root``, oldest first."""
    return fileio.committed_checkpoints(root)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The committed checkpoint ``latest`` names (None when nothing was committed); the one rule
    is ``cascade.fileio.read_latest``."""
    return fileio.read_latest(root)


LOW_DISK_BYTES = 1 << 30


def _explain_save_failure(partial: Path, error: Exception) -> Exception:
    """A save that failed on a (nearly) full filesystem says so, with the free space and the
    size of the previous checkpoint; other failures pass through unchanged. The partial
    directory never becomes `latest`, so the last committed checkpoint stays usable."""
    try:
        free = shutil.disk_usage(partial.parent).free
    except OSError:
        return error
    if free >= LOW_DISK_BYTES:
        return error
    previous = sorted(p for p in partial.parent.glob("iter_*") if p.is_dir() and not p.name.endswith(PARTIAL))
    size = sum(f.stat().st_size for p in previous[-1:] for f in p.rglob("*") if f.is_file())
    need = f"; the previous checkpoint took {size / 2**30:.1f} GiB" if size else ""
    return OSError(f"saving checkpoint {partial.name.removesuffix(PARTIAL)} to {partial.parent} failed: only "
                   f"{free / 2**20:.0f} MiB free on that filesystem{need}. Free space (or point the run dir "
                   f"elsewhere) and rerun: the stage resumes from its last committed checkpoint. "
                   f"({type(error).__name__}: {error})")


class Checkpointer:
    """Saves and restores one run's model/optimizer/scheduler under ``root``."""

    def __init__(
        self,
        root: str | Path,
        model: Sequence[MegatronModule],
        optimizer: MegatronOptimizer | None = None,
        scheduler: OptimizerParamScheduler | None = None,
        *,
        save_interval: int = 0,
        keep_last: int = 2,
    ) -> None:
        self.root = Path(root)
        self.model = list(model)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.save_interval = save_interval
        self.keep_last = keep_last

    @classmethod
    def from_config(
        cls,
        root: str | Path,
        model: Sequence[MegatronModule],
        optimizer: MegatronOptimizer | None,
        scheduler: OptimizerParamScheduler | None,
        cfg: CheckpointConfig,
    ) -> "Checkpointer":
        """A Checkpointer with a stage config's ``checkpoint`` section."""
        if cfg.async_save:
            raise ValueError(
                "checkpoint.async_save=true is not supported: cascade.engine saves synchronously "
                "so that a commit is never in flight at preemption; set checkpoint.async_save=false"
            )
        return cls(root, model, optimizer, scheduler,
                   save_interval=cfg.save_interval, keep_last=cfg.keep_last)

    # ---- state dicts -------------------------------------------------------------------------
    def _model_keys(self) -> list[str]:
        return ["model"] if len(self.model) == 1 else [f"model{i}" for i in range(len(self.model))]

    def _sharded_state(self, *, optimizer: bool, rng: Any, is_loading: bool) -> dict:
        sd: dict[str, Any] = {}
        # A fresh dict each time: Megatron caches process groups (dp_cp_group) inside it.
        metadata = dict(_SD_METADATA)
        for key, chunk in zip(self._model_keys(), unwrap(self.model)):
            sd[key] = chunk.sharded_state_dict(metadata=metadata)
        if optimizer:
            if is_loading:
                _allocate_optimizer_state(self.optimizer)
            sd["optimizer"] = self.optimizer.sharded_state_dict(
                sd, is_loading=is_loading, metadata=metadata
            )
        if rng is not None:
            sd["rng_state"] = _rng_sharded_object(rng)
        return sd

    # ---- save --------------------------------------------------------------------------------
    def should_save(self, step: int) -> bool:
        return self.save_interval > 0 and step % self.save_interval == 0

    def save_if_due(self, step: int, extra_state: dict | None = None, stop: bool = False) -> bool:
        """Save at the interval, or now when the caller must stop (its preemption flag, agreed
        across ranks: ``cascade.runtime.preemption.should_stop()``); returns ``stop``."""
        if stop or self.should_save(step):
            self.save(step, extra_state)
        return stop

    def save(self, step: int, extra_state: dict | None = None, *, weights_only: bool = False) -> Path:
        """Write and commit checkpoint ``step`` (collective: every rank calls it). ``weights_only``
        leaves the optimizer state out (a finished stage's last checkpoint: the next stage reads
        weights only)."""
        with_opt = self.optimizer is not None and not weights_only
        final = self.root / checkpoint_name(step)
        partial = final.with_name(final.name + PARTIAL)
        rank0 = dist.get_rank() == 0
        if rank0:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
        dist.barrier()
        t0 = time.time()
        sd = self._sharded_state(optimizer=with_opt, rng=capture_rng(), is_loading=False)
        if self.scheduler is not None:
            sd["scheduler"] = self.scheduler.state_dict()
        sd["step"] = step
        sd["extra_state"] = dict(extra_state or {})
        try:
            dist_checkpointing.save(sd, str(partial))
        except Exception as e:  # the writer's own message says nothing useful on a full disk
            raise _explain_save_failure(partial, e) from e
        dist.barrier()
        if rank0:
            self._commit(partial, final, step, time.time() - t0, with_opt)
        dist.barrier()
        return final

    def _commit(self, partial: Path, final: Path, step: int, seconds: float, has_optimizer: bool) -> None:
        meta = dict(step=step, layout=_layout(), saved_at=time.time(), save_seconds=seconds,
                    has_optimizer=has_optimizer)
        _write_atomic(partial / META, json.dumps(meta, indent=2))
        if final.exists():  # re-saving a step (e.g. after resuming from it): replace it
            trash = final.with_name(final.name + ".old")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(partial, final)
            shutil.rmtree(trash)
        else:
            os.replace(partial, final)
        _fsync_dir(self.root)
        fileio.write_latest(self.root, final)
        log.info("checkpoint %s committed (%.1fs)", final, seconds)
        self._prune(keep=final)

    def _prune(self, keep: Path) -> None:
        for p in self.root.glob(f"iter_*{PARTIAL}"):
            if p != keep:
                shutil.rmtree(p, ignore_errors=True)
        if self.keep_last <= 0:
            return
        done = [p for p in committed_checkpoints(self.root) if p != keep]
        for p in done[: max(0, len(done) - (self.keep_last - 1))]:
            shutil.rmtree(p, ignore_errors=True)

    # ---- load --------------------------------------------------------------------------------
    def load_latest(self, **kwargs: Any) -> LoadedCheckpoint | None:
        """Restore the newest committed checkpoint; None when there is none (a fresh run)."""
        path = latest_checkpoint(self.root)
        return None if path is None else self.load(path, **kwargs)

    def load(
        self, path: str | Path, *, load_optimizer: bool = True, load_rng: bool = True
    ) -> LoadedCheckpoint:
        """Restore checkpoint ``path`` into this run's model (and optimizer, scheduler, RNG).

        The saved TP/PP layout may differ from the current one (model and optimizer reshard);
        RNG states are then left alone. With ``load_optimizer=False`` (a new stage starting from
        a checkpoint) only the weights are loaded and the optimizer's master copy is refreshed.
        """
        path = Path(path)
        meta = json.loads((path / META).read_text())
        same_layout = meta["layout"] == _layout()
        with_opt = load_optimizer and self.optimizer is not None and meta["has_optimizer"]
        with_rng = load_rng and same_layout
        sd = self._sharded_state(
            optimizer=with_opt, rng=capture_rng() if with_rng else None, is_loading=True
        )
        loaded = dist_checkpointing.load(sd, str(path))  # sharded parts + the common state
        for key, chunk in zip(self._model_keys(), unwrap(self.model)):
            chunk.load_state_dict(loaded[key], strict=True)
        if with_opt:
            self.optimizer.load_state_dict(loaded["optimizer"])
            if self.scheduler is not None and "scheduler" in loaded:
                self.scheduler.load_state_dict(loaded["scheduler"])
        elif self.optimizer is not None:
            self.optimizer.reload_model_params()
        if with_rng:
            restore_rng(loaded["rng_state"])
        elif load_rng:
            log.info("checkpoint layout %s differs from %s: RNG states not restored",
                     meta["layout"], _layout())
        return LoadedCheckpoint(
            step=int(loaded["step"]),
            path=path,
            extra_state=dict(loaded.get("extra_state", {})),
            restored_rng=with_rng,
            restored_optimizer=with_opt,
        )

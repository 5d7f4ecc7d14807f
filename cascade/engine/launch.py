"""Start N local ranks of a Python program with torch.distributed's env vars (CPU tests, toy runs).

Why not torchrun: tests need each rank's pid (to deliver SIGTERM/SIGKILL like Slurm does), a hard
timeout that kills the whole process group (a missing psutil or a rank that died makes the others
hang in a collective), and each rank's output kept apart.

Which device the ranks use is explicit (``device``): ``"cpu"`` (the default, what the CPU test tier
and toy runs want) sets ``CASCADE_DEVICE=cpu`` so that a rank never takes the GPU path by accident
on a machine that has one; ``"gpu"`` gives rank ``r`` the local GPU ``r`` (``LOCAL_RANK``) and is
refused when more ranks than visible GPUs are asked for (two ranks on one GPU would fail later
with "invalid device ordinal", or silently share it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEVICES = ("cpu", "gpu")


class LaunchError(ValueError):
    """Ranks that this machine cannot start as asked (e.g. more GPU ranks than GPUs)."""


def visible_gpu_count() -> int:
    """GPUs the ranks could use (torch's count honours CUDA_VISIBLE_DEVICES)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(nprocs: int, device: str | None, env: dict[str, str] | None) -> str:
    """``device``, else ``CASCADE_DEVICE`` from ``env``, else ``"cpu"``; checked against this
    machine for ``"gpu"``."""
    chosen = (device or (env or {}).get("CASCADE_DEVICE") or "cpu").strip().lower()
    chosen = "gpu" if chosen == "cuda" else chosen
    if chosen not in DEVICES:
        raise LaunchError(f"device {chosen!r}: expected one of {list(DEVICES)}")
    if chosen == "gpu":
        gpus = visible_gpu_count()
        if nprocs > gpus:
            shown = os.environ.get("CUDA_VISIBLE_DEVICES")
            where = f" (CUDA_VISIBLE_DEVICES={shown!r})" if shown is not None else ""
            raise LaunchError(
                f"{nprocs} GPU ranks requested but {gpus} GPU(s) visible{where}: each rank needs "
                "its own GPU; start fewer ranks, or use device='cpu'"
            )
    return chosen


def free_port() -> int:
    """A TCP port nobody listens on right now (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RankResult:
    rank: int
    returncode: int
    output: str


class LocalRanks:
    """``nprocs`` processes running ``python argv...`` as ranks 0..nprocs-1 of one world (gloo on
    CPU, NCCL with one GPU per rank on GPU)."""

    def __init__(
        self,
        nprocs: int,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        log_dir: str | Path,
        cwd: str | Path | None = None,
        device: Literal["cpu", "gpu"] | None = None,
    ) -> None:
        self.device = resolve_device(nprocs, device, env)
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        port = str(free_port())
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        for rank in range(nprocs):
            rank_env = dict(os.environ, **(env or {}))
            rank_env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nprocs),
                            MASTER_ADDR="127.0.0.1", MASTER_PORT=port, PYTHONUNBUFFERED="1",
                            CASCADE_DEVICE=self.device)
            rank_env.pop("SLURM_PROCID", None)
            log = self.log_dir / f"rank{rank}.log"
            self.logs.append(log)
            with open(log, "w") as out:
                self.procs.append(subprocess.Popen(
                    [sys.executable, *argv], env=rank_env, cwd=cwd, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                ))

    def output(self, rank: int) -> str:
        return self.logs[rank].read_text(errors="replace")

    def signal(self, sig: int, ranks: Sequence[int] | None = None) -> None:
        for r in range(len(self.procs)) if ranks is None else ranks:
            if self.procs[r].poll() is None:
                os.kill(self.procs[r].pid, sig)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Poll ``predicate`` until true (True) or timeout / all ranks exited (False)."""
        end = time.time() + timeout
        while time.time() < end:
            if predicate():
                return True
            if all(p.poll() is not None for p in self.procs):
                return predicate()
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            p.wait()

    def wait(self, timeout: float, *, fail_fast: bool = True) -> list[RankResult]:
        """Wait for every rank; kill all on timeout, or (``fail_fast``) once one rank fails."""
        end = time.time() + timeout
        while any(p.poll() is None for p in self.procs):
            failed = any(p.poll() not in (None, 0) for p in self.procs)
            if time.time() > end or (fail_fast and failed):
                time.sleep(0.5 if failed else 0)  # let a failing rank flush its traceback
                self.kill()
                break
            time.sleep(0.05)
        return [RankResult(r, p.returncode, self.output(r)) for r, p in enumerate(self.procs)]


def run_local(
    nprocs: int,
    argv: Sequence[str],
    *,
    timeout: float,
    log_dir: str | Path,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    device: Literal["cpu", "gpu"] | None = None,
) -> list[RankResult]:
    """Run ``nprocs`` ranks to completion (or kill them all after ``timeout`` seconds)."""
    return LocalRanks(nprocs, argv, env=env, log_dir=log_dir, cwd=cwd, device=device).wait(timeout)

"""Preemption and time limits, trainer side: a signal sets a flag that the training loop polls.

Slurm sends USR1 `signal_lead_s` before the time limit (`--signal=B:USR1@N`, forwarded by the
batch script to every rank) and SIGTERM on scancel/preemption. A handler must not save from
inside the signal (the rank may be mid-collective), so it only records the request; the loop
calls `should_stop()` once per step, at the same point on every rank, saves a checkpoint and
returns `REQUEUE_EXIT_CODE`. The launcher then requeues the job, which resumes from that save:

    preemption.install()                      # run-stage does this before calling the recipe
    for step in range(start, steps):
        train_step(step)
        if preemption.should_stop():          # collective when torch.distributed is initialised
            save_checkpoint(step)
            return preemption.REQUEUE_EXIT_CODE
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

# sysexits.h EX_TEMPFAIL: "temporary failure; the user is invited to retry". The batch script
# requeues the job when the stage exits with it.
REQUEUE_EXIT_CODE = 75
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGUSR1, signal.SIGTERM)
REQUEUE_FLAG_ENV = "CASCADE_REQUEUE_FLAG"

_received: signal.Signals | None = None
_received_at: float | None = None


def _handler(signum: int, frame: FrameType | None) -> None:
    global _received, _received_at
    if _received is None:
        _received, _received_at = signal.Signals(signum), time.time()
        rank = os.environ.get("RANK", "0")
        print(
            f"[preemption] rank {rank}: got {_received.name}: will save a checkpoint and stop "
            "at the end of this step",
            file=sys.stderr,
            flush=True,
        )


def install(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
    """Record USR1/TERM instead of dying. Idempotent; call from the main thread."""
    for sig in signals:
        signal.signal(sig, _handler)


def reset() -> None:
    """Forget a received signal (tests, or a stage that runs a second phase)."""
    global _received, _received_at
    _received, _received_at = None, None


def request_stop(sig: signal.Signals = signal.SIGUSR1) -> None:
    """Ask the loop to stop as if `sig` had arrived (tests; a trainer's own time budget)."""
    _handler(int(sig), None)


def stop_requested() -> bool:
    """This rank's flag, without talking to other ranks."""
    return _received is not None


def received_signal() -> signal.Signals | None:
    return _received


def should_stop() -> bool:
    """True when any rank got a stop signal. With torch.distributed initialised and more than one
    rank this is a MAX all-reduce, so every rank stops at the same step: call it at the same
    point of the loop on every rank."""
    local = _received is not None
    dist = sys.modules.get("torch.distributed")  # never import torch just to answer this
    if dist is None or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    import torch

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    flag = torch.tensor([1 if local else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def flag_requeue() -> None:
    """Tell the batch script to requeue: write the file it named in CASCADE_REQUEUE_FLAG.

    Every rank writes it before exiting, because `srun --kill-on-bad-exit` kills the other ranks
    as soon as the first one exits non-zero, which hides their exit code (srun reports 143)."""
    path = os.environ.get(REQUEUE_FLAG_ENV)
    if not path:
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(f"{os.environ.get('RANK', '0')} {time.time():.0f}\n")
    except OSError as e:  # the exit code still carries the request
        print(f"[preemption] could not write {path}: {e}", file=sys.stderr, flush=True)

"""Which accelerator the engine runs on, decided once per process before Megatron-Core loads.

Why a module of its own: the CPU shim must patch torch *before* ``megatron.core`` is imported,
so every engine module that touches Megatron imports this one first. On a GPU machine nothing is
patched and Megatron runs as upstream intends (NCCL, Transformer Engine when it imports).

``CASCADE_DEVICE`` picks the device: ``cpu`` forces the CPU path even where CUDA exists (the CPU
test tier and toy runs on a GPU machine must not take the GPU path by accident; the local
launcher sets it for its ranks), ``gpu`` (or ``cuda``) requires CUDA and fails at once without
it, unset or ``auto`` uses CUDA when torch sees a device.

Transformer Engine is imported for real before Megatron (``cascade.engine.te_status.probe``): a TE
that is installed but broken is reported and hidden from Megatron, and the local layer spec is
used instead of a TE spec that would fail later.
"""

from __future__ import annotations

import os

import torch

from cascade.engine import te_status as _te

_CHOICES = ("auto", "cpu", "gpu", "cuda")
REQUESTED: str = (os.environ.get("CASCADE_DEVICE") or "auto").strip().lower()
if REQUESTED not in _CHOICES:
    raise RuntimeError(f"CASCADE_DEVICE={REQUESTED!r}: expected one of {list(_CHOICES)}")


def _hide_cuda() -> None:
    """CASCADE_DEVICE=cpu on a machine with CUDA: make torch (and so the CPU shim and Megatron)
    see no device, and keep CUDA uninitialised in this process and its children."""
    if not torch.cuda.is_initialized():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    torch.cuda.is_available = lambda: False
    torch.cuda.device_count = lambda: 0


if REQUESTED == "cpu":
    _hide_cuda()
    ON_GPU: bool = False
else:
    ON_GPU = torch.cuda.is_available()
    if REQUESTED in ("gpu", "cuda") and not ON_GPU:
        raise RuntimeError(f"CASCADE_DEVICE={REQUESTED} but torch sees no CUDA device")
ON_CPU: bool = not ON_GPU

# Before Megatron (the CPU shim imports it too): a TE whose import fails must look absent to
# Megatron's own probes.
TE_AVAILABLE, TE_REASON = _te.probe(ON_GPU)

if ON_CPU:
    from cascade.engine import cpu as _cpu

    _cpu.install()

import megatron.core  # noqa: E402,F401  (after the shim and the TE probe, by design)

HAVE_TE: bool = ON_GPU and TE_AVAILABLE


def dist_backend() -> str:
    """torch.distributed backend for this machine: NCCL on GPU, gloo on CPU."""
    return "nccl" if ON_GPU else "gloo"


def current_device() -> torch.device:
    """The device model tensors live on (the local GPU, or the CPU)."""
    return torch.device("cuda", torch.cuda.current_device()) if ON_GPU else torch.device("cpu")

"""Throughput and MFU: tokens/s and model FLOPs utilisation, with the peak FLOPs stated.

Why: MFU is the number users compare across runs and frameworks, so its definition is fixed and
printed: ``MFU = 6 * N * tokens_per_s / (peak_flops_per_device * devices)``, where ``N`` counts
every parameter once (tied embeddings once) and ``tokens_per_s`` counts real (non-pad) tokens,
so packing waste shows up as lost MFU. The 6N rule leaves out attention's ``s^2`` term (small
against 6N below ~8K tokens for 8B models, ~15% at 32K): MFU here is a lower bound.

Peaks are dense (no sparsity) tensor-core numbers from the vendors' data sheets, per precision.
A device not in ``PEAK_TFLOPS`` (or a CPU) has no MFU (``None``, shown as n/a) unless
``CASCADE_PEAK_TFLOPS`` gives its per-device peak.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# (substring of torch.cuda.get_device_name(), precision) -> dense peak TFLOP/s per device.
# NVIDIA data sheets: H100 SXM bf16 989.4 / fp8 1978.9 / tf32 494.7; H200 = H100 SXM compute;
# H100 PCIe 756 / 1513 / 378; A100 bf16 312 / tf32 156; B200 bf16 2250 / fp8 4500.
PEAK_TFLOPS: dict[tuple[str, str], float] = {
    ("H200", "bf16"): 989.4, ("H200", "fp16"): 989.4, ("H200", "fp8"): 1978.9, ("H200", "fp32"): 494.7,
    ("H100 PCIe", "bf16"): 756.0, ("H100 PCIe", "fp16"): 756.0, ("H100 PCIe", "fp8"): 1513.0,
    ("H100 PCIe", "fp32"): 378.0,
    ("H100", "bf16"): 989.4, ("H100", "fp16"): 989.4, ("H100", "fp8"): 1978.9, ("H100", "fp32"): 494.7,
    ("A100", "bf16"): 312.0, ("A100", "fp16"): 312.0, ("A100", "fp32"): 156.0,
    ("B200", "bf16"): 2250.0, ("B200", "fp16"): 2250.0, ("B200", "fp8"): 4500.0, ("B200", "fp32"): 1100.0,
}
PEAK_ENV = "CASCADE_PEAK_TFLOPS"


@dataclass(frozen=True)
class Peak:
    """The per-device peak used for MFU, and where it came from (printed at start)."""

    device: str
    precision: str
    tflops: float | None
    source: str

    def describe(self) -> str:
        if self.tflops is None:
            return f"MFU n/a: no peak FLOPs known for {self.device} ({self.precision}); set {PEAK_ENV}"
        return f"MFU peak {self.tflops:g} TFLOP/s per device ({self.device}, {self.precision}, {self.source})"


def device_name() -> str:
    """The accelerator's marketing name, or ``cpu``."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def training_precision(params_dtype: str, fp8: str | None) -> str:
    """Which peak applies: fp8 when Transformer Engine FP8 is on, else the parameter dtype."""
    return "fp8" if fp8 is not None else params_dtype


def peak_flops(precision: str, name: str | None = None) -> Peak:
    """The dense peak for this device and precision (longest matching name wins)."""
    name = name or device_name()
    env = os.environ.get(PEAK_ENV)
    if env:
        return Peak(name, precision, float(env), f"${PEAK_ENV}")
    matches = [(key, tf) for (key, prec), tf in PEAK_TFLOPS.items() if prec == precision and key in name]
    if not matches:
        return Peak(name, precision, None, "unknown device")
    key, tf = max(matches, key=lambda m: len(m[0]))
    return Peak(name, precision, tf, f"data sheet, dense {key}")


def mfu(tokens_per_s: float, num_params: int, peak: Peak, devices: int) -> float | None:
    """Model FLOPs utilisation (6N rule), or None when the peak is unknown."""
    if peak.tflops is None or devices < 1:
        return None
    return 6.0 * num_params * tokens_per_s / (peak.tflops * 1e12 * devices)


def count_parameters(model: Sequence[torch.nn.Module]) -> int:
    """Parameters of the whole model, each counted once, from this rank's chunks.

    Collective over the model-parallel group: TP-split weights are summed over TP ranks,
    TP-replicated ones (norms) counted on TP rank 0 only, and the output layer that shares the
    input embedding on the last pipeline stage is skipped."""
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    from cascade.engine import unwrap
    from cascade.engine.device import current_device

    tp_rank = ps.get_tensor_model_parallel_rank()
    local = 0
    for chunk in unwrap(list(model)):
        for p in chunk.parameters():
            if getattr(p, "shared", False) and getattr(p, "shared_embedding", False):
                continue  # the last stage's copy of a tied embedding (Megatron marks it `shared`)
            if not getattr(p, "tensor_model_parallel", False) and tp_rank != 0:
                continue
            local += p.numel()
    total = torch.tensor([local], dtype=torch.int64, device=current_device())
    if dist.is_initialized() and ps.get_model_parallel_group() is not None:
        dist.all_reduce(total, group=ps.get_model_parallel_group())
    return int(total.item())

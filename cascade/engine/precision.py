"""Numeric precision from the config: parameter dtype (bf16 by default) and FP8 through
Transformer Engine.

Why a module: FP8 has preconditions (an NVIDIA GPU, a Transformer Engine that imports) and known
unsafe combinations; an FP8 request that cannot be honoured must fail loudly here, when the
engine builds the model at stage start, never train in bf16 behind the user's back. What can be
checked without a machine (fp8 needs bf16 parameters, fp8_param needs fp8) is refused at config
load time by ``PrecisionConfig``. The one adjustment we make on our own (FP8 params off when
TP > 2, NeMo-RL #1164: NaNs) is returned in ``PrecisionPlan.notes`` so trainers log it.

The FP8 fields go to Megatron-Core 0.19.2's TransformerConfig under their own names (``fp8`` is
the format, ``fp8_recipe``, ``fp8_margin``, ``fp8_amax_history_len``, ``fp8_amax_compute_algo``,
``fp8_param``), from which Megatron builds TE's recipe (``DelayedScaling`` for ``delayed``) and
wraps each layer in ``fp8_autocast``. Reviewed against those sources; not yet run on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cascade.config.schema.common import ParallelConfig, PrecisionConfig
from cascade.engine import device

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class PrecisionError(ValueError):
    """A precision setting this machine cannot honour."""


@dataclass(frozen=True)
class PrecisionPlan:
    """The precision actually used, with the reasons for any change to the request."""

    params_dtype: torch.dtype
    fp8: str | None
    fp8_recipe: str | None
    fp8_param: bool
    notes: list[str] = field(default_factory=list)
    fp8_margin: int = 0
    fp8_amax_history_len: int = 1024
    fp8_amax_compute_algo: str = "max"

    @property
    def bf16(self) -> bool:
        return self.params_dtype == torch.bfloat16

    @property
    def fp16(self) -> bool:
        return self.params_dtype == torch.float16

    def transformer_kwargs(self) -> dict:
        """The TransformerConfig fields this plan sets."""
        kw: dict = dict(
            bf16=self.bf16,
            fp16=self.fp16,
            params_dtype=self.params_dtype,
            pipeline_dtype=self.params_dtype,
        )
        if self.fp8 is not None:
            kw.update(
                fp8=self.fp8,
                fp8_recipe=self.fp8_recipe,
                fp8_param=self.fp8_param,
                fp8_margin=self.fp8_margin,
                fp8_amax_history_len=self.fp8_amax_history_len,
                fp8_amax_compute_algo=self.fp8_amax_compute_algo,
            )
        return kw


def resolve_precision(
    precision: PrecisionConfig,
    parallel: ParallelConfig,
    *,
    use_distributed_optimizer: bool | None = None,
) -> PrecisionPlan:
    """Check ``precision`` against this machine and layout; return what the engine will use.

    ``use_distributed_optimizer`` (when known) is checked against ``fp8_param``: Megatron gathers
    FP8 parameter copies only through the distributed optimizer's parameter all-gather.
    """
    if precision.fp8 is None:
        return PrecisionPlan(_DTYPES[precision.params_dtype], None, None, False)
    what = f"precision.fp8={precision.fp8!r}"
    if device.ON_CPU:
        raise PrecisionError(
            f"{what} needs Transformer Engine on an NVIDIA GPU (H100 or newer); this process has "
            f"no GPU ({'CASCADE_DEVICE=cpu' if device.REQUESTED == 'cpu' else 'no CUDA device'}), "
            "so FP8 cannot run here. Set precision.fp8=null (bf16) for CPU runs."
        )
    if not device.TE_AVAILABLE:
        raise PrecisionError(f"{what} needs Transformer Engine, which is unusable here: {device.TE_REASON}")
    if precision.params_dtype != "bf16":
        raise PrecisionError(f"{what} needs params_dtype bf16, not {precision.params_dtype}")
    notes: list[str] = []
    fp8_param = precision.fp8_param
    if fp8_param and use_distributed_optimizer is False:
        raise PrecisionError(
            "precision.fp8_param=true needs optim.use_distributed_optimizer=true (Megatron "
            "all-gathers FP8 parameter copies only in the distributed optimizer)"
        )
    if fp8_param and parallel.tensor > 2:
        fp8_param = False
        notes.append(
            f"precision.fp8_param turned off: tensor parallel {parallel.tensor} > 2 with FP8 "
            "parameters gives NaNs (NeMo-RL #1164); FP8 compute stays on"
        )
    return PrecisionPlan(
        _DTYPES[precision.params_dtype], precision.fp8, precision.fp8_recipe, fp8_param, notes,
        fp8_margin=precision.fp8_margin,
        fp8_amax_history_len=precision.fp8_amax_history_len,
        fp8_amax_compute_algo=precision.fp8_amax_compute_algo,
    )

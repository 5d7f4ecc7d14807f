"""CPU shim: lets the real Megatron-Core run on a machine without a GPU (gloo instead of NCCL).

Why: Megatron-Core 0.19 hard-codes CUDA in a few hundred places (``torch.cuda.current_device()``
for new buffers, ``device="cuda"`` literals in the pipeline schedules, ``Tensor.cuda()``, CUDA
streams and synchronize, the CUDA RNG tracker, optimizers that dispatch on
``param.type() == "torch.cuda.FloatTensor"``). On CPU we redirect each of these to the CPU, so the
same engine code path trains on a laptop, in CI and on the cluster.

This module is imported only when no GPU is present (see ``cascade.engine.device``). ``install()``
patches torch and must run before ``megatron.core`` is imported; it then imports Megatron-Core and
patches the few module globals that were bound at import time. It is idempotent.

Two more patches fix Megatron's distributed-optimizer checkpoint load with torch's AdamW (the
optimizer Megatron falls back to without TE/apex, i.e. on CPU): a KeyError('step') in the
``fully_reshardable`` load, and a ``step`` tensor shared by all parameters after a load (found by
tests/engine/test_checkpoint.py: resumed losses drifted from the uninterrupted run).

Not fixable here (they need Transformer Engine or apex kernels): sequence parallelism (torch norms
refuse it), context parallelism (needs TE attention) and FP8. ``cascade.engine.parallel`` and
``cascade.engine.precision`` reject those on CPU with a clear message.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

_CPU = torch.device("cpu")
_installed = False


def _is_cuda_device(dev: Any) -> bool:
    if isinstance(dev, torch.device):
        return dev.type == "cuda"
    if isinstance(dev, str):
        return dev.startswith("cuda")
    # Megatron passes torch.cuda.current_device() (an int index) as a device.
    return isinstance(dev, int) and not isinstance(dev, bool)


class _CudaToCpu(TorchFunctionMode):
    """Rewrites ``device='cuda'``/``device=<int>`` and ``pin_memory=True`` in torch calls."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        # Every torch call of the process comes through here (forward, backward, the losses):
        # calls without a CUDA device or pinning (nearly all) pass straight on, uncopied.
        if func is torch.Tensor.pin_memory:
            return args[0]
        if not kwargs:
            kwargs = {}
        elif _is_cuda_device(kwargs.get("device")) or kwargs.get("pin_memory"):
            kwargs = dict(kwargs)
            if _is_cuda_device(kwargs.get("device")):
                kwargs["device"] = _CPU
            if kwargs.get("pin_memory"):
                kwargs["pin_memory"] = False
        if func is torch.Tensor.to and len(args) > 1 and _is_cuda_device(args[1]):
            args = (args[0], _CPU, *args[2:])
        return func(*args, **kwargs)


class _NoStream:
    """Stands in for torch.cuda.Stream / Event: CPU ops are synchronous."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None

    def query(self) -> bool:
        return True

    def record_event(self, *args: Any, **kwargs: Any) -> "_NoStream":
        # MoE token dispatch records an event on its copy stream and later synchronizes on it
        return _NoStream()


_orig_tensor_type = torch.Tensor.type


def _tensor_type(self: torch.Tensor, dtype: Any = None, non_blocking: bool = False, **kw: Any) -> Any:
    # Megatron optimizers check `param.type() in ("torch.cuda.FloatTensor", ...)`.
    if dtype is None and not kw:
        name = _orig_tensor_type(self)
        return name if name.startswith("torch.cuda.") else name.replace("torch.", "torch.cuda.", 1)
    return _orig_tensor_type(self, dtype, non_blocking, **kw)


def _backward_under_mode() -> None:
    """Function modes do not reach autograd's backward: custom Functions' backward (Megatron's
    recompute re-runs forward there, e.g. `torch.ones(..., device="cuda")` for causal masks)
    would see the raw CUDA request. Run every Python backward under the same rewrite."""
    from torch.autograd import function as autograd_function

    original = autograd_function.BackwardCFunction.apply

    def apply(self, *args):  # noqa: ANN001
        with _CudaToCpu():
            return original(self, *args)

    autograd_function.BackwardCFunction.apply = apply


def _patch_torch() -> None:
    _CudaToCpu().__enter__()  # modes are per thread: this covers the main (training) thread
    _backward_under_mode()
    cuda = torch.cuda
    cuda.current_device = lambda: _CPU
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.Tensor.type = _tensor_type
    cuda.synchronize = lambda *a, **k: None
    cuda.empty_cache = lambda *a, **k: None
    cuda.current_stream = lambda *a, **k: _NoStream()
    cuda.default_stream = lambda *a, **k: _NoStream()
    cuda.Stream = _NoStream
    cuda.Event = _NoStream
    cuda.stream = lambda *a, **k: contextlib.nullcontext()
    # The CUDA RNG API goes to the CPU generator (Megatron's RNG tracker forks it for dropout/init).
    cuda.get_rng_state = lambda device="cuda": torch.get_rng_state()
    cuda.set_rng_state = lambda new_state, device="cuda": torch.set_rng_state(new_state)
    cuda.manual_seed = lambda seed: torch.default_generator.manual_seed(int(seed))
    cuda.manual_seed_all = lambda seed: None  # torch.manual_seed calls it; the CPU seed is set already


def _patch_megatron() -> None:
    from megatron.core.tensor_parallel import random as mrandom
    from megatron.core.transformer import transformer_block
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    mrandom._get_cuda_rng_state = lambda *a, **k: torch.get_rng_state()
    mrandom._set_cuda_rng_state = lambda new_state, *a, **k: torch.set_rng_state(new_state)
    # With TE importable (the Megatron-Bridge env) the final norm would be TENorm even under the
    # local spec, and TE kernels refuse the CPU.
    transformer_block.LayerNormImpl = WrappedTorchNorm
    if importlib.util.find_spec("transformer_engine") is not None:
        _use_torch_optimizer_kernels()
    _let_reshardable_load_skip_step()
    _unshare_restored_adam_steps()
    _moe_split_sizes_as_numpy()
    # Mamba-2 (nemotron_h): the mixer's mamba_ssm/causal_conv1d/Triton kernels -> torch references
    from cascade.engine import cpu_kernels

    cpu_kernels.install()


def _moe_split_sizes_as_numpy() -> None:
    """The MoE all-to-all dispatcher moves its split sizes "to the CPU as numpy" only when they
    are CUDA tensors; on CPU they stay tensors, which ``all_to_all_single`` refuses as split
    sizes. Convert them whatever the device."""
    from megatron.core.transformer.moe import moe_utils, token_dispatcher

    original = moe_utils.maybe_move_tensor_to_cpu

    def move(tensor, as_numpy=False, record_stream=False):  # noqa: ANN001
        if as_numpy and torch.is_tensor(tensor) and not tensor.is_cuda:
            return tensor.numpy()
        return original(tensor, as_numpy=as_numpy, record_stream=record_stream)

    moe_utils.maybe_move_tensor_to_cpu = token_dispatcher.maybe_move_tensor_to_cpu = move


def _unshare_restored_adam_steps() -> None:
    """DistributedOptimizer.load_state_dict gives every parameter's torch-AdamW state the *same*
    ``step`` tensor; torch increments it in place once per parameter, so after a resume the bias
    correction uses a wrong step. Give each parameter its own copy."""
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    original = DistributedOptimizer.load_state_dict

    def load_state_dict(self, state_dict):  # noqa: ANN001
        original(self, state_dict)
        for state in self.optimizer.state.values():
            if isinstance(state.get("step"), torch.Tensor):
                state["step"] = state["step"].clone()

    DistributedOptimizer.load_state_dict = load_state_dict


class _MissingIsNone(dict):
    def __missing__(self, key: str) -> None:
        return None


def _let_reshardable_load_skip_step() -> None:
    """Megatron's `fully_reshardable` optimizer load copies every tensor of the inner optimizer's
    state from the checkpoint, but it restores the step count separately and never passes it.
    torch's AdamW (the CPU fallback; TE/apex FusedAdam keep the step in the param group) holds
    the step as a state tensor, so the load fails with KeyError('step'). Missing keys are skipped
    instead; the step itself is restored by DistributedOptimizer.load_state_dict."""
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    original = DistributedOptimizer._set_main_param_and_optimizer_states

    def set_states(self, model_param, tensors):  # noqa: ANN001
        return original(self, model_param, _MissingIsNone(tensors))

    DistributedOptimizer._set_main_param_and_optimizer_states = set_states


def _use_torch_optimizer_kernels() -> None:
    """With TE importable, Megatron's optimizer and grad clipping pick TE's fused CUDA kernels;
    point them back at the torch fallbacks Megatron uses when neither TE nor apex exists."""
    import megatron.core.optimizer as mopt
    from megatron.core import utils as mutils
    from megatron.core.optimizer import clip_grads
    from megatron.core.optimizer import distrib_optimizer as dopt
    from megatron.core.optimizer import optimizer as mo

    mopt.Adam, mopt.SGD, mopt.USING_PYTORCH_OPTIMIZER = torch.optim.AdamW, torch.optim.SGD, True
    dopt.Adam, dopt.HAVE_APEX_OR_TE = torch.optim.AdamW, False
    dopt.USING_TE_OPTIMIZER = dopt.USING_APEX_OPTIMIZER = False
    for mod in (clip_grads, mo):
        mod.multi_tensor_applier = mutils.local_multi_tensor_applier
        mod.multi_tensor_scale_impl = mutils.local_multi_tensor_scale
    clip_grads.l2_norm_impl = mutils.local_multi_tensor_l2_norm
    if hasattr(clip_grads, "multi_tensor_scale_tensor_impl"):
        clip_grads.multi_tensor_scale_tensor_impl = None


def install() -> None:
    """Patch torch, import Megatron-Core, patch its import-time globals. Safe to call twice."""
    global _installed
    if _installed:
        return
    if torch.cuda.is_available():
        raise RuntimeError("cascade.engine.cpu is the no-GPU shim; it must not run on a GPU machine")
    _patch_torch()
    _patch_megatron()
    _installed = True

"""GPU tier (marker `gpu`): the CPU reference Mamba-2 kernels (cascade/engine/cpu_kernels.py)
against the real ``mamba_ssm`` / ``causal_conv1d`` CUDA/Triton kernels Megatron-Core calls on a GPU,
on the same random inputs. Skipped without CUDA or without those packages (the lent GPU machine has
neither package; the cluster container does). Not yet run on a GPU.

What it would catch: a semantic difference between what the CPU tier trains and what the GPU
kernels compute (dt softplus/bias, group-to-head mapping, D and z gating, conv tap order).
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.gpu


def _need_kernels() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    for pkg in ("mamba_ssm", "causal_conv1d"):
        if importlib.util.find_spec(pkg) is None:
            pytest.skip(f"{pkg} is not installed")


def test_ssd_scan_and_conv_match_the_cuda_kernels() -> None:
    _need_kernels()
    import torch
    from causal_conv1d import causal_conv1d_fn
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    from cascade.engine.cpu_kernels import causal_conv1d, ssd_chunk_scan

    g = torch.Generator(device="cuda").manual_seed(0)
    b, seqlen, h, p, ng, n = 2, 300, 8, 64, 2, 128  # 300 tokens: three chunks of 128, the last partial
    r = lambda *s: torch.randn(*s, device="cuda", generator=g)  # noqa: E731
    x, B, C, z = r(b, seqlen, h, p), r(b, seqlen, ng, n), r(b, seqlen, ng, n), r(b, seqlen, h, p)
    dt, dt_bias, D = r(b, seqlen, h), r(h) * 0.5, r(h)
    A = -torch.rand(h, device="cuda", generator=g) * 4 - 0.5
    kw = dict(D=D, z=z, dt_bias=dt_bias, dt_softplus=True, return_final_states=True)
    y_ref, s_ref = mamba_chunk_scan_combined(x, dt, A, B, C, 128, **kw)
    y, s = ssd_chunk_scan(x, dt, A, B, C, 128, **kw)
    torch.testing.assert_close(y, y_ref, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(s, s_ref.float(), rtol=1e-3, atol=1e-3)

    xc, w, bias = r(b, 256, seqlen), r(256, 4), r(256)
    torch.testing.assert_close(causal_conv1d(xc, w, bias, activation="silu"),
                               causal_conv1d_fn(xc, w, bias, activation="silu"), rtol=1e-4, atol=1e-4)

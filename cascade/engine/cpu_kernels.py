"""Pure-torch stand-ins for the Mamba-2 kernels Megatron-Core's ``MambaMixer`` calls (CPU only).

Why: ``megatron.core.ssm.mamba_mixer`` calls CUDA/Triton kernels from ``mamba_ssm`` and
``causal_conv1d`` (and Megatron's own Triton decode kernels), which do not exist or cannot run
without a GPU. So that the *same* mixer code trains a hybrid model on CPU, ``install()`` binds
the mixer module's kernel names to the reference implementations below, with the signatures
Megatron-Core 0.19.2 calls them with:

* ``mamba_chunk_scan_combined`` (mamba_ssm): the chunked SSD scan (``ssd_chunk_scan``);
* ``mamba_split_conv1d_scan_combined`` (mamba_ssm): split ``zxBCdt``, causal conv + SiLU, scan,
  gate (``split_conv1d_scan``), the training path (``use_mamba_mem_eff_path``);
* ``causal_conv1d_fn`` (causal_conv1d): causal depthwise conv (``causal_conv1d``);
* ``selective_state_update`` / ``causal_conv1d_update`` (Megatron's Triton decode kernels);
* ``RMSNormGated`` (mamba_ssm's Triton norm): ``GatedRMSNorm`` and its sharded-state subclass.

Everything is differentiable through autograd and computed in fp32. Not covered (they raise):
variable-length/packed-sequence prefill (``causal_conv1d_varlen_*``, ``mamba_chunk_scan_combined_
varlen``), which only Megatron's dynamic inference engine uses. Tests: tests/engine/
test_cpu_kernels.py checks each against the plain recurrence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _up(t: Tensor) -> Tensor:
    """At least fp32 (bf16/fp16 inputs are computed in fp32; fp64 stays fp64 for tests)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _expand_groups(t: Tensor, nheads: int) -> Tensor:
    """(b, l, g, n) -> (b, l, h, n): head i reads group i // (h / g)."""
    return t.repeat_interleave(nheads // t.shape[2], dim=2)


def _dt_discretize(dt: Tensor, dt_bias: Tensor | None, softplus: bool, limit: tuple) -> Tensor:
    dt = _up(dt)
    if dt_bias is not None:
        dt = dt + _up(dt_bias)
    if softplus:
        dt = F.softplus(dt)
    lo, hi = limit
    if lo > 0.0 or hi != float("inf"):
        dt = dt.clamp(min=lo, max=hi)
    return dt


def ssd_chunk_scan(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    initial_states: Tensor | None = None,
    seq_idx: Tensor | None = None,
    dt_softplus: bool = False,
    dt_limit: tuple = (0.0, float("inf")),
    return_final_states: bool = False,
    **unsupported: object,
) -> Tensor | tuple[Tensor, Tensor]:
    """The Mamba-2 SSD scan, chunk by chunk (``mamba_chunk_scan_combined``).

    x (b, l, h, p), dt (b, l, h), A (h,), B and C (b, l, g, n), D (h,) or (h, p), z like x,
    initial_states (b, h, p, n). Recurrence: ``s_t = exp(dt_t A) s_{t-1} + dt_t x_t B_t^T``,
    ``y_t = s_t C_t + D x_t``, then ``y * silu(z)``. Inside a chunk the scan is the masked
    quadratic form; between chunks the state is carried, which is what the GPU kernel does.
    """
    if seq_idx is not None or any(v is not None for v in unsupported.values()):
        raise NotImplementedError("CPU SSD scan: packed sequences (seq_idx/cu_seqlens) are GPU-only")
    out_dtype = x.dtype
    b, seqlen, h, p = x.shape
    n = B.shape[-1]
    dt = _dt_discretize(dt, dt_bias, dt_softplus, dt_limit)
    xf, Bf, Cf = _up(x), _expand_groups(_up(B), h), _expand_groups(_up(C), h)
    pad = (-seqlen) % chunk_size
    if pad:  # dt = 0 on padding: no decay, no input; the real positions are unaffected
        xf, dt = F.pad(xf, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        Bf, Cf = F.pad(Bf, (0, 0, 0, 0, 0, pad)), F.pad(Cf, (0, 0, 0, 0, 0, pad))
    nc, L = (seqlen + pad) // chunk_size, chunk_size
    xc = xf.reshape(b, nc, L, h, p)
    Bc, Cc = Bf.reshape(b, nc, L, h, n), Cf.reshape(b, nc, L, h, n)
    dtc = dt.reshape(b, nc, L, h)
    cum = torch.cumsum(dtc * _up(A), dim=2)  # (b, c, L, h): log-decay from the chunk start
    # Within a chunk: y_t += sum_{s<=t} (C_t . B_s) exp(cum_t - cum_s) dt_s x_s
    seg = cum.unsqueeze(3) - cum.unsqueeze(2)  # (b, c, t, s, h)
    causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
    decay = torch.exp(seg.masked_fill(~causal[None, None, :, :, None], float("-inf")))
    scores = torch.einsum("bctjn,bcsjn->bctsj", Cc, Bc) * decay * dtc.unsqueeze(2)
    y = torch.einsum("bctsj,bcsjp->bctjp", scores, xc)
    # Each chunk's own contribution to the state at its end, then the carried state
    to_end = torch.exp(cum[:, :, -1:, :] - cum) * dtc  # (b, c, L, h)
    chunk_states = torch.einsum("bcsj,bcsjn,bcsjp->bcjpn", to_end, Bc, xc)
    state = (
        _up(initial_states) if initial_states is not None else xf.new_zeros(b, h, p, n)
    )
    entering = []
    for c in range(nc):
        entering.append(state)
        state = torch.exp(cum[:, c, -1, :])[:, :, None, None] * state + chunk_states[:, c]
    carried = torch.stack(entering, dim=1)  # (b, c, h, p, n): state before each chunk
    y = y + torch.einsum("bctjn,bcjpn,bctj->bctjp", Cc, carried, torch.exp(cum))
    y = y.reshape(b, nc * L, h, p)[:, :seqlen]
    if D is not None:
        Df = _up(D)
        y = y + _up(x) * (Df[:, None] if Df.dim() == 1 else Df)
    if z is not None:
        y = y * F.silu(_up(z))
    y = y.to(out_dtype)
    return (y, state) if return_final_states else y


def causal_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    seq_idx: Tensor | None = None,
    initial_states: Tensor | None = None,
    return_final_states: bool = False,
    final_states_out: Tensor | None = None,
    activation: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Causal depthwise conv (``causal_conv1d_fn``): x (b, d, l), weight (d, w), bias (d,).

    ``out[:, c, t] = bias[c] + sum_k weight[c, k] x[:, c, t - (w - 1) + k]`` with zeros (or
    ``initial_states`` (b, d, w-1)) before the start; with ``seq_idx`` (b, l) taps never reach
    into another packed sequence.
    """
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"causal_conv1d: activation {activation!r}")
    dtype, width = x.dtype, weight.shape[-1]
    xf, wf = _up(x), _up(weight)
    prefix = (
        _up(initial_states) if initial_states is not None
        else xf.new_zeros(xf.shape[0], xf.shape[1], width - 1)
    )
    full = torch.cat([prefix, xf], dim=-1)  # (b, d, w-1+l)
    seqlen = x.shape[-1]
    out = xf.new_zeros(xf.shape) if bias is None else _up(bias)[None, :, None].expand_as(xf).clone()
    for k in range(width):
        shift = width - 1 - k  # tap k reads x[t - shift]
        tap = full[..., k : k + seqlen]
        if seq_idx is not None and shift:
            prev = F.pad(seq_idx, (shift, 0), value=-1)[:, :seqlen]
            tap = tap * (prev == seq_idx)[:, None, :]
        out = out + wf[:, k, None] * tap
    if activation is not None:
        out = F.silu(out)
    out = out.to(dtype)
    if return_final_states:
        final = full[..., -(width - 1):].to(dtype)
        if final_states_out is not None:
            final_states_out.copy_(final)
            final = final_states_out
        return out, final
    return out


def split_conv1d_scan(
    zxbcdt: Tensor,
    conv1d_weight: Tensor,
    conv1d_bias: Tensor,
    dt_bias: Tensor,
    A: Tensor,
    D: Tensor,
    chunk_size: int,
    initial_states: Tensor | None = None,
    seq_idx: Tensor | None = None,
    dt_limit: tuple = (0.0, float("inf")),
    return_final_states: bool = False,
    activation: str = "silu",
    rmsnorm_weight: Tensor | None = None,
    rmsnorm_eps: float = 1e-6,
    outproj_weight: Tensor | None = None,
    outproj_bias: Tensor | None = None,
    headdim: int | None = None,
    ngroups: int = 1,
    norm_before_gate: bool = True,
) -> Tensor | tuple[Tensor, Tensor]:
    """``mamba_split_conv1d_scan_combined``: zxbcdt (b, l, 2*d_inner + 2*g*n + h) -> (b, l, d).

    Split into z, xBC, dt; causal conv + activation over xBC; SSD scan with dt softplus;
    ``y * silu(z)`` (or the gated RMSNorm when ``rmsnorm_weight`` is given); optional out proj.
    """
    if D.dim() == 1:
        nheads, p = D.shape[0], headdim
    else:
        nheads, p = D.shape
    dim = nheads * p
    dstate = (conv1d_weight.shape[0] - dim) // ngroups // 2
    d_nonssm = (zxbcdt.shape[-1] - 2 * dim - 2 * ngroups * dstate - nheads) // 2
    if d_nonssm:
        raise NotImplementedError("CPU split_conv1d_scan: extra non-SSM (SwiGLU) channels")
    z, xBC, dt = torch.split(zxbcdt, [dim, dim + 2 * ngroups * dstate, nheads], dim=-1)
    xBC = causal_conv1d(
        xBC.transpose(1, 2), conv1d_weight, conv1d_bias, seq_idx=seq_idx, activation=activation
    ).transpose(1, 2)
    x, B, C = torch.split(xBC, [dim, ngroups * dstate, ngroups * dstate], dim=-1)
    b, seqlen = zxbcdt.shape[:2]
    zh = z.reshape(b, seqlen, nheads, p)
    res = ssd_chunk_scan(
        x.reshape(b, seqlen, nheads, p), dt, A,
        B.reshape(b, seqlen, ngroups, dstate), C.reshape(b, seqlen, ngroups, dstate), chunk_size,
        D=D, z=zh if rmsnorm_weight is None else None, dt_bias=dt_bias,
        initial_states=initial_states, seq_idx=seq_idx, dt_softplus=True, dt_limit=dt_limit,
        return_final_states=return_final_states,
    )
    y, final = res if return_final_states else (res, None)
    y = y.reshape(b, seqlen, dim)
    if rmsnorm_weight is not None:
        y = gated_rms_norm(y, rmsnorm_weight, z, rmsnorm_eps, dim // ngroups, norm_before_gate)
    if outproj_weight is not None:
        y = F.linear(y, outproj_weight, outproj_bias)
    return (y, final) if return_final_states else y


def selective_state_update(
    state: Tensor,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
    state_batch_indices: Tensor | None = None,
    intermediate_ssm_states: Tensor | None = None,
) -> Tensor:
    """One (or a few) decode steps of the recurrence, updating ``state`` in place.

    Megatron's decode layout: state (B, h, p, n), x/dt/z (b, [s,] h, p), A (h, p, n),
    B/C (b, [s,] g, n), D/dt_bias (h, p); ``state_batch_indices`` (b,) picks state rows.
    """
    if state.dim() != 4:
        raise NotImplementedError("CPU selective_state_update: only the per-head state layout")
    squeeze = x.dim() == 3
    if squeeze:
        x, dt, B, C = x.unsqueeze(1), dt.unsqueeze(1), B.unsqueeze(1), C.unsqueeze(1)
        z = z.unsqueeze(1) if z is not None else None
    rows = state_batch_indices if state_batch_indices is not None else slice(None)
    s = _up(state[rows])
    h = x.shape[2]
    outs = []
    for t in range(x.shape[1]):
        d = _dt_discretize(dt[:, t], dt_bias, dt_softplus, (0.0, float("inf")))  # (b, h, p)
        Bt = _expand_groups(_up(B[:, t : t + 1]), h)[:, 0]  # (b, h, n)
        Ct = _expand_groups(_up(C[:, t : t + 1]), h)[:, 0]
        s = torch.exp(d[..., None] * _up(A)) * s + (d * _up(x[:, t]))[..., None] * Bt[:, :, None]
        y = torch.einsum("bhpn,bhn->bhp", s, Ct)
        if D is not None:
            y = y + _up(x[:, t]) * _up(D)
        if z is not None:
            y = y * F.silu(_up(z[:, t]))
        if intermediate_ssm_states is not None:
            intermediate_ssm_states[rows, t] = s.to(intermediate_ssm_states.dtype)
        outs.append(y.to(x.dtype))
    state[rows] = s.to(state.dtype)
    out = torch.stack(outs, dim=1)
    return out[:, 0] if squeeze else out


def causal_conv1d_update(
    x: Tensor,
    conv_state: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    silu_activation: bool | str,
    conv_state_indices: Tensor | None,
    intermediate_conv_states: Tensor | None = None,
) -> Tensor:
    """Decode conv steps (Megatron's Triton ``causal_conv1d_update``): x (b, [s,] d),
    conv_state (B, d, state_len) rolled in place; returns the conv output like x."""
    if intermediate_conv_states is not None:
        raise NotImplementedError("CPU causal_conv1d_update: intermediate conv states")
    squeeze = x.dim() == 2
    xs = x.unsqueeze(1) if squeeze else x
    rows = conv_state_indices if conv_state_indices is not None else slice(None)
    st = conv_state[rows]
    width = weight.shape[-1]
    outs = []
    for t in range(xs.shape[1]):
        st = torch.cat([st[..., 1:], xs[:, t, :, None].to(st.dtype)], dim=-1)
        o = (_up(st[..., -width:]) * _up(weight)).sum(-1)
        if bias is not None:
            o = o + _up(bias)
        outs.append(F.silu(o) if silu_activation else o)
    conv_state[rows] = st
    out = torch.stack(outs, dim=1).to(x.dtype)
    return out[:, 0] if squeeze else out


def gated_rms_norm(
    x: Tensor, weight: Tensor, z: Tensor | None, eps: float, group_size: int, norm_before_gate: bool
) -> Tensor:
    """RMSNorm over groups of ``group_size`` channels, gated by ``silu(z)`` before or after."""
    dtype = x.dtype
    xf = _up(x)
    if z is not None and not norm_before_gate:
        xf = xf * F.silu(_up(z))
    g = xf.reshape(*xf.shape[:-1], -1, group_size)
    g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + eps)
    out = g.reshape(xf.shape) * _up(weight)
    if z is not None and norm_before_gate:
        out = out * F.silu(_up(z))
    return out.to(dtype)


class GatedRMSNorm(nn.Module):
    """mamba_ssm's ``RMSNormGated`` constructor and forward, in torch."""

    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-5,
        group_size: int | None = None,
        norm_before_gate: bool = True,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.eps, self.norm_before_gate = eps, norm_before_gate
        self.group_size = group_size or hidden_size
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        return gated_rms_norm(x, self.weight, z, self.eps, self.group_size, self.norm_before_gate)


def _sharded_norm_class() -> type:
    """The mixer's ``ExtendedRMSNorm`` (norm weight TP-sharded on axis 0) over ``GatedRMSNorm``:
    without mamba_ssm Megatron derives it from a MagicMock, so it is rebuilt here."""
    from megatron.core import parallel_state
    from megatron.core.transformer.utils import make_sharded_tensors_for_checkpoint

    class ShardedGatedRMSNorm(GatedRMSNorm):
        def sharded_state_dict(self, prefix="", sharded_offsets=(), metadata=None):  # noqa: ANN001
            tp_group = getattr(self, "tp_group", None) or parallel_state.get_tensor_model_parallel_group()
            return make_sharded_tensors_for_checkpoint(
                self.state_dict(prefix="", keep_vars=True), prefix, {"weight": 0},
                sharded_offsets, tp_group=tp_group, dp_cp_group=metadata["dp_cp_group"],
            )

    return ShardedGatedRMSNorm


def install() -> None:
    """Bind Megatron-Core's Mamba mixer kernel names to the torch references (CPU only)."""
    from megatron.core.ssm import mamba_mixer as mm

    mm.mamba_chunk_scan_combined = ssd_chunk_scan
    mm.mamba_split_conv1d_scan_combined = split_conv1d_scan
    mm.causal_conv1d_fn = causal_conv1d
    mm.selective_state_update = selective_state_update
    mm.causal_conv1d_update = causal_conv1d_update
    mm.RMSNormGated = GatedRMSNorm
    mm.ExtendedRMSNorm = _sharded_norm_class()
    mm.HAVE_MAMBA_SSM = True
    mm.MAMBA_HAS_STATE_DTYPE = False


__all__ = [
    "GatedRMSNorm", "causal_conv1d", "causal_conv1d_update", "gated_rms_norm", "install",
    "selective_state_update", "split_conv1d_scan", "ssd_chunk_scan",
]

"""The CPU reference Mamba-2 kernels against the plain recurrence they must compute.

The chunked SSD scan is only correct if the state carried between chunks is: every case below
uses a sequence longer than one chunk and not a multiple of it.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cascade.engine.cpu_kernels import (
    causal_conv1d,
    causal_conv1d_update,
    gated_rms_norm,
    selective_state_update,
    split_conv1d_scan,
    ssd_chunk_scan,
)

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(autouse=True)
def float64_default():
    """The comparisons run in float64; the default goes back afterwards (a module-level switch
    leaked float64 into every later test of the same process)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def naive_scan(x, dt, A, B, C, D=None, z=None, init=None):
    """s_t = exp(dt_t A) s_{t-1} + dt_t x_t B_t^T;  y_t = s_t C_t + D x_t;  y *= silu(z)."""
    b, seqlen, h, p = x.shape
    heads_per_group = h // B.shape[2]
    s = torch.zeros(b, h, p, B.shape[-1]) if init is None else init.clone()
    ys = []
    for t in range(seqlen):
        Bt = B[:, t].repeat_interleave(heads_per_group, dim=1)  # (b, h, n)
        Ct = C[:, t].repeat_interleave(heads_per_group, dim=1)
        s = torch.exp(dt[:, t] * A)[:, :, None, None] * s + (dt[:, t, :, None] * x[:, t])[..., None] * Bt[:, :, None]
        y = torch.einsum("bhpn,bhn->bhp", s, Ct)
        if D is not None:
            y = y + x[:, t] * (D[:, None] if D.dim() == 1 else D)
        ys.append(y)
    y = torch.stack(ys, dim=1)
    if z is not None:
        y = y * F.silu(z)
    return y, s


def _inputs(b=2, seqlen=37, h=4, p=3, g=2, n=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    x, B, C, z = r(b, seqlen, h, p), r(b, seqlen, g, n), r(b, seqlen, g, n), r(b, seqlen, h, p)
    dt_raw, dt_bias = r(b, seqlen, h), r(h) * 0.5
    A = -torch.rand(h, generator=gen) * 2 - 0.1
    return x, dt_raw, dt_bias, A, B, C, z, r


@pytest.mark.parametrize("chunk_size", [1, 4, 8, 16, 64])
def test_ssd_chunk_scan_matches_recurrence_across_chunk_boundaries(chunk_size):
    x, dt_raw, dt_bias, A, B, C, z, r = _inputs()
    D = r(4)
    init = r(2, 4, 3, 5)
    y, final = ssd_chunk_scan(
        x, dt_raw, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias, dt_softplus=True,
        initial_states=init, return_final_states=True,
    )
    y_ref, s_ref = naive_scan(x, F.softplus(dt_raw + dt_bias), A, B, C, D=D, z=z, init=init)
    torch.testing.assert_close(y, y_ref, **TOL)
    torch.testing.assert_close(final, s_ref, **TOL)


def test_ssd_chunk_scan_float32_inputs_within_1e5():
    x, dt_raw, dt_bias, A, B, C, z, r = _inputs(seqlen=50, seed=3)
    D = r(4, 3)  # D per channel (D_has_hdim)
    y = ssd_chunk_scan(*(t.float() for t in (x, dt_raw, A, B, C)), 16, D=D.float(),
                       dt_bias=dt_bias.float(), dt_softplus=True)
    assert y.dtype == torch.float32
    y_ref, _ = naive_scan(x, F.softplus(dt_raw + dt_bias), A, B, C, D=D)
    torch.testing.assert_close(y.double(), y_ref, **TOL)


def test_ssd_chunk_scan_gradients_match_recurrence():
    x, dt_raw, dt_bias, A, B, C, z, r = _inputs(b=1, seqlen=19, seed=5)
    leaves = [t.clone().requires_grad_() for t in (x, dt_raw, A, B, C)]
    ssd_chunk_scan(*leaves, 8, dt_softplus=True).pow(2).sum().backward()
    ref = [t.clone().requires_grad_() for t in (x, dt_raw, A, B, C)]
    naive_scan(ref[0], F.softplus(ref[1]), ref[2], ref[3], ref[4])[0].pow(2).sum().backward()
    for a, b in zip(leaves, ref):
        assert torch.isfinite(a.grad).all()
        torch.testing.assert_close(a.grad, b.grad, **TOL)


def naive_conv(x, w, bias, init=None):
    b, d, seqlen = x.shape
    width = w.shape[1]
    hist = torch.zeros(b, d, width - 1) if init is None else init
    full = torch.cat([hist, x], dim=-1)
    out = torch.empty_like(x)
    for t in range(seqlen):
        for c in range(d):
            out[:, c, t] = bias[c] + sum(w[c, k] * full[:, c, t + k] for k in range(width))
    return out


@pytest.mark.parametrize("width", [2, 4])
def test_causal_conv1d_matches_direct_sum(width):
    gen = torch.Generator().manual_seed(1)
    x, w, bias = torch.randn(2, 6, 11, generator=gen), torch.randn(6, width, generator=gen), torch.randn(6, generator=gen)
    init = torch.randn(2, 6, width - 1, generator=gen)
    out, final = causal_conv1d(x, w, bias, initial_states=init, return_final_states=True, activation="silu")
    torch.testing.assert_close(out, F.silu(naive_conv(x, w, bias, init)), **TOL)
    torch.testing.assert_close(final, x[..., -(width - 1):], **TOL)
    torch.testing.assert_close(causal_conv1d(x, w, bias), naive_conv(x, w, bias), **TOL)


def test_causal_conv1d_seq_idx_keeps_packed_sequences_apart():
    gen = torch.Generator().manual_seed(2)
    x, w, bias = torch.randn(1, 3, 10, generator=gen), torch.randn(3, 4, generator=gen), torch.randn(3, generator=gen)
    seq_idx = torch.tensor([[0] * 4 + [1] * 6])
    out = causal_conv1d(x, w, bias, seq_idx=seq_idx)
    torch.testing.assert_close(out[..., :4], naive_conv(x[..., :4], w, bias), **TOL)
    torch.testing.assert_close(out[..., 4:], naive_conv(x[..., 4:], w, bias), **TOL)


def test_decode_steps_continue_the_prefill_scan():
    """Prefill t tokens with the chunked scan, then decode the rest one token at a time with
    selective_state_update / causal_conv1d_update: the outputs are those of one long scan."""
    x, dt_raw, dt_bias, A, B, C, z, r = _inputs(b=2, seqlen=23, seed=7)
    h, p, n = 4, 3, 5
    D = r(h)
    y_all, _ = naive_scan(x, F.softplus(dt_raw + dt_bias), A, B, C, D=D, z=z)
    cut = 17
    _, state = ssd_chunk_scan(x[:, :cut], dt_raw[:, :cut], A, B[:, :cut], C[:, :cut], 8, D=D,
                              z=z[:, :cut], dt_bias=dt_bias, dt_softplus=True, return_final_states=True)
    rep = lambda t: t[..., None].expand(*t.shape, p)  # noqa: E731  (Megatron's per-channel decode layout)
    for t in range(cut, 23):
        y = selective_state_update(
            state, x[:, t], rep(dt_raw[:, t]), A[:, None, None].expand(h, p, n), B[:, t], C[:, t],
            D=D[:, None].expand(h, p), z=z[:, t], dt_bias=dt_bias[:, None].expand(h, p), dt_softplus=True,
        )
        torch.testing.assert_close(y, y_all[:, t], **TOL)

    xs = torch.randn(2, 6, 9)
    w, bias = torch.randn(6, 4), torch.randn(6)
    ref = naive_conv(xs, w, bias)
    conv_state = torch.zeros(2, 6, 4)
    for t in range(9):
        torch.testing.assert_close(causal_conv1d_update(xs[..., t], conv_state, w, bias, False, None), ref[..., t], **TOL)


def test_split_conv1d_scan_is_conv_then_scan_then_gate():
    gen = torch.Generator().manual_seed(11)
    b, seqlen, h, p, g, n, width = 2, 21, 4, 3, 2, 5, 4
    dim, conv_dim = h * p, h * p + 2 * g * n
    zxbcdt = torch.randn(b, seqlen, 2 * dim + 2 * g * n + h, generator=gen)
    w, cb = torch.randn(conv_dim, width, generator=gen) * 0.3, torch.randn(conv_dim, generator=gen)
    dt_bias, A, D = torch.randn(h, generator=gen), -torch.rand(h, generator=gen) - 0.1, torch.randn(h, generator=gen)
    y = split_conv1d_scan(zxbcdt, w, cb, dt_bias, A, D, 8, headdim=p, ngroups=g, norm_before_gate=False)
    z, xBC, dt = torch.split(zxbcdt, [dim, conv_dim, h], dim=-1)
    xBC = F.silu(naive_conv(xBC.transpose(1, 2), w, cb)).transpose(1, 2)
    x, B, C = torch.split(xBC, [dim, g * n, g * n], dim=-1)
    y_ref, _ = naive_scan(x.reshape(b, seqlen, h, p), F.softplus(dt + dt_bias), A,
                          B.reshape(b, seqlen, g, n), C.reshape(b, seqlen, g, n), D=D, z=z.reshape(b, seqlen, h, p))
    torch.testing.assert_close(y, y_ref.reshape(b, seqlen, dim), **TOL)


def test_gated_rms_norm_normalises_each_group_after_the_gate():
    gen = torch.Generator().manual_seed(4)
    x, z, w = torch.randn(3, 8, generator=gen), torch.randn(3, 8, generator=gen), torch.randn(8, generator=gen)
    out = gated_rms_norm(x, w, z, 1e-5, 4, norm_before_gate=False)
    gx = (x * F.silu(z)).reshape(3, 2, 4)
    ref = (gx / torch.sqrt(gx.pow(2).mean(-1, keepdim=True) + 1e-5)).reshape(3, 8) * w
    torch.testing.assert_close(out, ref, **TOL)

"""Channels-last maps: dwconv_gate_ca and naf_ffn read them in place on the CPU and return
channels-last outputs on every backend (layernorm2d's are in test_layernorm2d.py), and
to_channels_last copies any map there, bit for bit."""
import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for

CL = torch.channels_last

# (B, C, H, W, gate): the CPU kernel vectorises eight gated channels at a time (float, C' % 8
# == 0) and runs a plain loop otherwise.
DGC_CASES = [
    pytest.param((2, 16, 5, 7, True), id="eight-lane-path-odd-sizes"),
    pytest.param((1, 10, 4, 3, True), id="generic-path-five-gated-channels"),
    pytest.param((1, 8, 6, 5, False), id="no-gate-eight-channels"),
    pytest.param((3, 6, 1, 9, False), id="one-row-generic"),
    pytest.param((1, 16, 2, 1, True), id="one-column-borders-everywhere"),
    pytest.param((1, 128, 24, 20, True), id="nafnet-width-threaded"),
]
FFN_CASES = [
    pytest.param((2, 16, 17, 19, 16), id="two-images-tile-tail"),
    pytest.param((1, 5, 3, 7, 3), id="odd-channels"),
    pytest.param((1, 64, 16, 33, 64), id="nafnet-width"),
]


def _dgc_inputs(case, device, dtype=torch.float32):
    B, C, H, W, gate = case
    Cg = C // 2 if gate else C
    x = (torch.randn(B, C, H, W, dtype=dtype) + 0.5).to(device).contiguous(memory_format=CL)
    ws = [torch.randn(C, 1, 3, 3, dtype=dtype) / 3, torch.randn(C, dtype=dtype),
          torch.randn(Cg, Cg, 1, 1, dtype=dtype) / Cg ** 0.5, torch.randn(Cg, dtype=dtype)]
    return x, [w.to(device) for w in ws], gate


def _is_channels_last(t):
    return t.is_contiguous(memory_format=CL) and (not t.is_contiguous() or t.shape[1] == 1)


@pytest.mark.parametrize("case", DGC_CASES)
def test_dwconv_gate_ca_channels_last(backend, case, seed):
    if backend == "triton" and device_for(backend).type == "cpu" and case[1] > 16:
        pytest.skip("the threaded case is for the CPU kernel; the interpreter is slow")
    x, ws, gate = _dgc_inputs(case, device_for(backend))
    x.requires_grad_()
    ws = [w.requires_grad_() for w in ws]
    out = sr_ops.dwconv_gate_ca(x, *ws, gate=gate)
    assert _is_channels_last(out)
    leaves = [t.detach().cpu().contiguous().requires_grad_() for t in (x, *ws)]
    ref = reference.dwconv_gate_ca(*leaves, gate=gate)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)
    g = torch.randn(out.shape, dtype=out.dtype).to(out.device)
    for a, b in zip(torch.autograd.grad(out, (x, *ws), g), torch.autograd.grad(ref, leaves, g.cpu())):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", DGC_CASES[:3])
def test_dwconv_gate_ca_channels_last_float64(case, seed):
    x, ws, gate = _dgc_inputs(case, "cpu", torch.float64)
    ref = reference.dwconv_gate_ca(x.contiguous(), *ws, gate=gate)
    torch.testing.assert_close(sr_ops.dwconv_gate_ca(x, *ws, gate=gate), ref, rtol=1e-10, atol=1e-10)


def test_dwconv_gate_ca_channels_last_nan_stays_local(seed):
    """A NaN spoils the 3x3 neighbourhood it feeds, its channel's pooled mean, and through
    the attention every channel of that image -- not the other image."""
    x, ws, gate = _dgc_inputs((2, 16, 6, 6, True), "cpu")
    x = x.detach().clone()
    x[0, 3, 2, 2] = float("nan")
    out = sr_ops.dwconv_gate_ca(x, *ws, gate=gate)
    assert out[0].isnan().all() and not out[1].isnan().any()
    torch.testing.assert_close(out[1:], reference.dwconv_gate_ca(x[1:].contiguous(), *ws, gate=gate), rtol=1e-4,
                               atol=1e-4)


def _ffn_inputs(shape, device, dtype=torch.float32):
    B, C, H, W, Fh = shape
    r = lambda *s, scale=1.0: (torch.randn(*s, dtype=dtype) * scale).to(device)  # noqa: E731
    y = (r(B, C, H, W, scale=2.0) + 1).contiguous(memory_format=CL)
    return [y, r(C) + 1, r(C), r(2 * Fh, C, 1, 1, scale=C ** -0.5), r(2 * Fh), r(C, Fh, 1, 1, scale=Fh ** -0.5),
            r(C), r(1, C, 1, 1)]


@pytest.mark.parametrize("shape", FFN_CASES)
def test_naf_ffn_channels_last(backend, shape, seed):
    if backend == "cuda":
        pytest.skip("naf_ffn has no CUDA kernel")
    t = [a.requires_grad_() for a in _ffn_inputs(shape, device_for(backend))]
    out = sr_ops.naf_ffn(*t)
    assert _is_channels_last(out)
    leaves = [a.detach().cpu().contiguous().requires_grad_() for a in t]
    ref = reference.naf_ffn(*leaves)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)
    g = torch.randn(out.shape).to(out.device)
    for a, b in zip(torch.autograd.grad(out, t, g), torch.autograd.grad(ref, leaves, g.cpu())):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=2e-3)


@pytest.mark.parametrize("shape", FFN_CASES)
def test_naf_ffn_channels_last_float64(shape, seed):
    t = _ffn_inputs(shape, "cpu", torch.float64)
    ref = reference.naf_ffn(t[0].contiguous(), *t[1:])
    torch.testing.assert_close(sr_ops.naf_ffn(*t), ref, rtol=1e-10, atol=1e-10)


def test_fake_kernels_promise_the_channels_last_layout():
    x, ws, gate = _dgc_inputs((1, 16, 5, 4, True), "cpu")
    torch.library.opcheck(torch.ops.sr_ops.dwconv_gate_ca.default, (x, *ws, gate))
    t = _ffn_inputs((1, 8, 4, 5, 4), "cpu")
    w_in, w_out, gamma = t[3].flatten(1), t[5].flatten(1), t[7].flatten()
    torch.library.opcheck(torch.ops.sr_ops.naf_ffn.default, (t[0], t[1], t[2], w_in, t[4], w_out, t[6], gamma, 1e-6))


# --- to_channels_last ---------------------------------------------------------------

LAYOUT_CASES = [
    pytest.param((1, 64, 37, 29), torch.float32, id="float32-pixel-block-tail"),
    pytest.param((2, 3, 5, 7), torch.float16, id="float16-two-bytes"),
    pytest.param((2, 5, 3, 4), torch.int64, id="int64-eight-bytes"),
    pytest.param((1, 7, 3, 3), torch.bool, id="bool-one-byte"),
    pytest.param((2, 4, 3, 2), torch.complex64, id="complex64-eight-bytes"),
    pytest.param((1, 3, 2, 3), torch.complex128, id="complex128-aten-copy"),
    pytest.param((3, 1, 4, 4), torch.float32, id="one-channel"),
    pytest.param((0, 4, 3, 3), torch.float32, id="empty-batch"),
]


@pytest.mark.parametrize("shape,dtype", LAYOUT_CASES)
def test_to_channels_last_equals_torch(backend, shape, dtype):
    x = (torch.randn(shape) * 10).to(dtype).to(device_for(backend))
    want = x.contiguous(memory_format=CL)
    out = sr_ops.to_channels_last(x)
    assert torch.equal(out, want) and out.stride() == want.stride() and out.dtype == dtype


def test_to_channels_last_non_contiguous_and_already_channels_last():
    x = torch.randn(5, 6, 2, 7).permute(2, 3, 0, 1)[:, :5]  # (2, 5, 5, 6), no layout at all
    out = sr_ops.to_channels_last(x)
    assert torch.equal(out, x) and out.stride() == x.contiguous(memory_format=CL).stride()
    assert sr_ops.to_channels_last(out) is out  # as Tensor.contiguous: nothing to do
    direct = torch.ops.sr_ops.to_channels_last(out)  # the op itself never returns its input
    assert direct is not out and torch.equal(direct, out)


def test_to_channels_last_gradient_compile_and_opcheck():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sr_ops.to_channels_last, (x,))
    torch.library.opcheck(torch.ops.sr_ops.to_channels_last.default, (x,))
    f = torch.compile(lambda t: sr_ops.to_channels_last(t) * 2, fullgraph=True)
    assert torch.equal(f(x.detach()), x.detach() * 2)


def test_to_channels_last_bad_inputs():
    with pytest.raises(ValueError, match=r"^x must have 4 dims \(B, C, H, W\), got shape \(3, 4, 5\)$"):
        sr_ops.to_channels_last(torch.randn(3, 4, 5))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        sr_ops.to_channels_last([1.0])
    with pytest.raises(ValueError, match=r"x must have 4 dims"):
        torch.ops.sr_ops._to_channels_last_fwd(torch.randn(3, 4, 5))


# --- the NAFNet model on the CPU ----------------------------------------------------------

def test_nafnet_runs_channels_last_on_the_cpu_and_returns_a_contiguous_image(seed):
    from sr_ops.models.nafnet import NAFBlock, NAFNetSR

    block = NAFBlock(16).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.5, 0.1)
        x = torch.randn(1, 16, 9, 11)
        assert _is_channels_last(block(x))
        net = NAFNetSR(2, width=16, depth=2).eval()
        out = net(torch.rand(1, 3, 9, 11))
    assert out.shape == (1, 3, 18, 22) and out.is_contiguous()

"""naf_ffn (NAFNet's FFN half) on every backend that has it, against the reference and
against NAFNet's own module sequence."""
import pytest
import torch
import torch.nn.functional as F

import sr_ops
from sr_ops import reference
from sr_ops.models.nafnet import NAFBlock


def _has_naf_ffn(backend):
    return backend in ("reference", "cpu", "triton")  # no CUDA kernel yet (sr_ops/ops/naf_ffn.py)


@pytest.fixture
def naf_backend(backend):
    if not _has_naf_ffn(backend):
        pytest.skip(f"naf_ffn has no {backend} backend")
    return backend


def make(B, C, H, W, Fh, dtype=torch.float32, grad=False, mean=1.0):
    def r(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, dtype=dtype) * scale + shift).requires_grad_(grad)
    return dict(y=r(B, C, H, W, scale=2.0, shift=mean), norm_weight=r(C, shift=1.0), norm_bias=r(C),
                w_in=r(2 * Fh, C, 1, 1, scale=C ** -0.5), b_in=r(2 * Fh), w_out=r(C, Fh, 1, 1, scale=Fh ** -0.5),
                b_out=r(C), gamma=r(1, C, 1, 1))


CASES = [
    pytest.param((2, 16, 17, 19, 16), id="two-images-323px-tile-tail"),  # 323 = 256 + 67: a short last tile
    pytest.param((1, 5, 3, 7, 3), id="odd-channels-F-not-C"),
    pytest.param((1, 1, 1, 1, 1), id="one-channel-one-pixel"),  # variance 0: rstd = 1/sqrt(eps)
    pytest.param((1, 64, 16, 33, 64), id="nafnet-width-c64"),
]


def nafnet_sequence(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps=1e-6):
    """NAFNet's code: x = conv5(sg(conv4(norm2(y)))); return y + x * gamma, in float64."""
    d = torch.float64
    mu = y.to(d).mean(1, keepdim=True)
    var = (y.to(d) - mu).pow(2).mean(1, keepdim=True)
    x = (y.to(d) - mu) / (var + eps).sqrt() * norm_weight.to(d).view(1, -1, 1, 1) + norm_bias.to(d).view(1, -1, 1, 1)
    x = F.conv2d(x, w_in.to(d), b_in.to(d))
    a, b = x.chunk(2, dim=1)
    return y.to(d) + F.conv2d(a * b, w_out.to(d), b_out.to(d)) * gamma.to(d)


@pytest.mark.parametrize("shape", CASES)
def test_matches_nafnet_in_float64(naf_backend, shape, seed):
    t = make(*shape, dtype=torch.float64)
    torch.testing.assert_close(sr_ops.naf_ffn(**t), nafnet_sequence(**t), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", CASES)
def test_float32_forward_and_backward_match_reference(naf_backend, shape, seed):
    t = make(*shape, grad=True)
    out, ref = sr_ops.naf_ffn(**t), reference.naf_ffn(**t)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, list(t.values()), g)
    want = torch.autograd.grad(ref, list(t.values()), g)
    for name, a, b in zip(t, got, want):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3, msg=lambda m: f"grad of {name}: {m}")


def test_large_mean_does_not_cancel(naf_backend, seed):
    t = make(1, 8, 9, 9, 8, mean=1e4)  # a one-pass variance loses every digit here
    torch.testing.assert_close(sr_ops.naf_ffn(**t).double(), nafnet_sequence(**t), rtol=1e-4, atol=1e-2)


def test_non_contiguous_and_flattened_weights(naf_backend, seed):
    t = make(1, 6, 11, 10, 4)
    y = t["y"].transpose(2, 3).contiguous().transpose(2, 3)
    flat = dict(t, y=y, w_in=t["w_in"].flatten(1), w_out=t["w_out"].flatten(1), gamma=t["gamma"].flatten())
    torch.testing.assert_close(sr_ops.naf_ffn(**flat), reference.naf_ffn(**t), rtol=1e-4, atol=1e-4)


def test_non_finite_inputs_propagate_like_the_reference(naf_backend, seed):
    t = make(1, 4, 6, 7, 4)
    t["y"][0, :, 2, 3] = float("nan")
    t["y"][0, 1, 4, 5] = float("inf")
    out, ref = sr_ops.naf_ffn(**t), reference.naf_ffn(**t)
    assert torch.equal(out.isnan(), ref.isnan()) and out.isnan().any()
    keep = ~ref.isnan()
    torch.testing.assert_close(out[keep], ref[keep], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_keep_their_dtype(naf_backend, dtype, seed):
    t = make(1, 8, 5, 6, 8)
    half = {k: v.to(dtype) for k, v in t.items()}
    out = sr_ops.naf_ffn(**half)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), reference.naf_ffn(**{k: v.float() for k, v in half.items()}),
                               rtol=2e-2, atol=5e-2)


def test_gradcheck_float64(naf_backend, seed):
    t = make(1, 3, 4, 5, 2, dtype=torch.float64, grad=True)
    assert torch.autograd.gradcheck(lambda *a: sr_ops.naf_ffn(*a), tuple(t.values()), fast_mode=True)


def test_gradgradcheck_float64(naf_backend, seed):
    t = make(1, 2, 3, 3, 2, dtype=torch.float64, grad=True)
    assert torch.autograd.gradgradcheck(lambda *a: sr_ops.naf_ffn(*a), tuple(t.values()), fast_mode=True)


def test_backward_is_the_same_at_any_thread_count(seed):
    t = make(2, 16, 40, 37, 8, grad=True)  # 1480 px per image: several parts of tiles
    g = torch.randn(t["y"].shape)
    saved = torch.get_num_threads()
    try:
        runs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            runs.append(torch.autograd.grad(sr_ops.naf_ffn(**t), list(t.values()), g))
    finally:
        torch.set_num_threads(saved)
    for name, a, b in zip(t, *runs):
        assert torch.equal(a, b), f"grad of {name} changed with the thread count"


def test_opcheck(naf_backend, seed):
    t = make(1, 4, 5, 6, 3, grad=True)
    args = (t["y"], t["norm_weight"], t["norm_bias"], t["w_in"].flatten(1), t["b_in"], t["w_out"].flatten(1),
            t["b_out"], t["gamma"].flatten(), 1e-6)
    torch.library.opcheck(torch.ops.sr_ops.naf_ffn.default, args)


def test_compiles_with_fullgraph(seed):
    t = make(1, 8, 9, 10, 8)
    compiled = torch.compile(lambda t: sr_ops.naf_ffn(**t), fullgraph=True)
    torch.testing.assert_close(compiled(t), reference.naf_ffn(**t), rtol=1e-4, atol=1e-4)


def test_nafblock_uses_it_and_equals_the_module_sequence(seed):
    block = NAFBlock(8).double()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.3 + 0.2)
    x = torch.randn(1, 8, 13, 12, dtype=torch.float64)
    y = torch.addcmul(x, F.conv2d(sr_ops.dwconv_gate_ca(F.conv2d(block.norm1(x), block.conv1.weight, block.conv1.bias),
                                                        block.conv2.weight, block.conv2.bias, block.sca[1].weight,
                                                        block.sca[1].bias), block.conv3.weight, block.conv3.bias),
                      block.beta)
    want = nafnet_sequence(y, block.norm2.weight, block.norm2.bias, block.conv4.weight, block.conv4.bias,
                           block.conv5.weight, block.conv5.bias, block.gamma)
    torch.testing.assert_close(block(x), want, rtol=1e-10, atol=1e-10)


T = make(1, 4, 5, 6, 3)


@pytest.mark.parametrize("change, exc, match", [
    pytest.param(dict(y=T["y"][0]), ValueError, r"y must have 4 dims \(B, C, H, W\)", id="y-3d"),
    pytest.param(dict(w_in=T["w_in"][:5]), ValueError, r"w_in must be \(2F, C=4, 1, 1\)", id="w_in-odd-rows"),
    pytest.param(dict(w_in=T["w_in"][:, :3]), ValueError, r"w_in must be \(2F, C=4", id="w_in-wrong-C"),
    pytest.param(dict(w_out=T["w_out"][:, :2]), ValueError, r"w_out must have shape \(4, 3, 1, 1\)", id="w_out-F"),
    pytest.param(dict(b_in=T["b_in"][:5]), ValueError, r"b_in must have shape \(6,\)", id="b_in-length"),
    pytest.param(dict(gamma=torch.randn(5)), ValueError, r"gamma must be \(C,\) or \(1, C, 1, 1\)", id="gamma"),
    pytest.param(dict(norm_weight=T["norm_weight"].long()), TypeError, "norm_weight must be a floating",
                 id="int-weight"),
    pytest.param(dict(eps=-1.0), ValueError, "eps must be a finite non-negative", id="eps-negative"),
    pytest.param(dict(eps=float("nan")), ValueError, "eps must be a finite non-negative", id="eps-nan"),
    pytest.param(dict(y=torch.randn(1, 0, 5, 6)), ValueError, "C >= 1", id="no-channels"),
])
def test_bad_inputs(naf_backend, change, exc, match):
    with pytest.raises(exc, match=match):
        sr_ops.naf_ffn(**(T | change))


def _op_args(t):
    return (t["y"], t["norm_weight"], t["norm_bias"], t["w_in"].flatten(1), t["b_in"], t["w_out"].flatten(1),
            t["b_out"], t["gamma"].flatten(), 1e-6)


def test_backward_runs_under_flop_counter_mode(naf_backend, seed):
    t = make(1, 8, 5, 6, 4, grad=True)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False):  # it raised 'Cannot access storage of TensorWrapper' (torch.func.vjp)
        out = sr_ops.naf_ffn(**t)
        got = torch.autograd.grad(out, list(t.values()), torch.ones_like(out))
    want = torch.autograd.grad(reference.naf_ffn(**t), list(t.values()), torch.ones_like(out))
    for name, a, b in zip(t, got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=lambda m: f"grad of {name}: {m}")


def test_opcheck_backward(naf_backend, seed):
    t = make(1, 4, 5, 6, 3)
    args = _op_args(t)
    grad = torch.randn_like(t["y"])
    torch.library.opcheck(torch.ops.sr_ops.naf_ffn_backward.default, (grad, *args))


def test_backward_agrees_with_the_cpu_kernel(seed):
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("no compiled CPU kernels")
    t = make(2, 12, 9, 37, 5, dtype=torch.float64)  # 666 px: a chunk tail and several tiles
    args = _op_args(t)
    grad = torch.randn_like(t["y"])
    kernel = torch.ops.sr_ops._naf_ffn_bwd(grad, *args)
    from sr_ops.reference.naf_ffn import naf_ffn_backward

    closed = naf_ffn_backward(grad, *args)
    for a, b in zip(kernel, closed):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_deterministic_gradients_at_one_two_three_threads(naf_backend, seed):
    t = make(2, 16, 40, 37, 8, grad=True)  # 2960 px: several pixel chunks, a tail
    g = torch.randn(t["y"].shape)
    saved, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    runs = []
    try:
        torch.use_deterministic_algorithms(True)
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            runs.append(torch.autograd.grad(sr_ops.naf_ffn(**t), list(t.values()), g))
    finally:
        torch.set_num_threads(saved)
        torch.use_deterministic_algorithms(det)
    for run in runs[1:]:
        for name, a, b in zip(t, runs[0], run):
            assert torch.equal(a, b), f"grad of {name} changed with the thread count"


@pytest.mark.parametrize("shape", [(0, 4, 3, 5), (2, 4, 0, 5), (1, 4, 3, 0)], ids=["B0", "H0", "W0"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_zero_sizes_give_empty_output_and_zero_gradients(naf_backend, shape, channels_last):
    B, C, H, W = shape
    t = make(B, C, H, W, 3, grad=True)
    if channels_last:
        t["y"] = t["y"].detach().to(memory_format=torch.channels_last).requires_grad_()
    out = sr_ops.naf_ffn(**t)
    assert out.shape == shape and out.dtype == t["y"].dtype
    grads = torch.autograd.grad(out, list(t.values()), torch.ones_like(out))
    for name, gr, x in zip(t, grads, t.values()):
        assert gr.shape == x.shape, name
        assert torch.equal(gr, torch.zeros_like(x)), f"grad of {name} must be 0"


def test_zero_channels_still_raise():
    t = make(1, 1, 3, 3, 1)
    t = dict(t, y=torch.randn(1, 0, 3, 3), norm_weight=torch.randn(0), norm_bias=torch.randn(0),
             w_in=torch.randn(2, 0, 1, 1), w_out=torch.randn(0, 1, 1, 1), b_out=torch.randn(0), gamma=torch.randn(0))
    with pytest.raises(ValueError, match="y must have at least one channel"):
        sr_ops.naf_ffn(**t)


def test_an_inf_norm_weight_spoils_only_what_it_feeds(backend):
    """An inf in the LayerNorm's weight makes that channel of the normalised map inf; the
    Triton tile's padding rows (F up to 16) once multiplied it by their zero weights and spread
    the NaN to every output (fuzz seed 15855)."""
    g = torch.Generator().manual_seed(3)
    C, F = 2, 1
    y = torch.randn(1, C, 3, 5, generator=g)
    args = [torch.randn(s, generator=g) for s in [(C,), (C,), (2 * F, C, 1, 1), (2 * F,), (C, F, 1, 1), (C,), (C,)]]
    args[0][0] = float("inf")
    got = sr_ops.naf_ffn(y, *args)
    with sr_ops.use_backend("reference"):
        want = sr_ops.naf_ffn(y.double(), *(a.double() for a in args))
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())

"""docs/design.md, Dtypes: float16 and bfloat16 are computed in float32 and rounded once at the
end. Each backend's half result is held to "the float32 computation rounded once", both
against a float64 truth on the same (rounded) inputs: at most 1.5x its error. An
intermediate rounded to the half type (GELU(x) before the norm, a bfloat16 store that
truncates) shows as 2-3x.

The float32 and float64 computations are written out here in eager PyTorch, apart from the
references, so that the references are under test too."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import sr_ops

from _helpers import device_for

HALF = [torch.float16, torch.bfloat16]


def _layernorm2d(x, w, b, eps=1e-6):
    mu = x.mean(1, keepdim=True)
    var = (x - mu).pow(2).mean(1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w[:, None, None] + b[:, None, None]


def _eca(x, w):
    pooled = x.mean((2, 3)).unsqueeze(1)
    logits = F.conv1d(pooled, w.reshape(1, 1, -1), padding=w.numel() // 2).squeeze(1)
    return x * torch.sigmoid(logits)[:, :, None, None]


def _naf_ffn(y, nw, nb, w_in, b_in, w_out, b_out, gamma, eps=1e-6):
    h = torch.einsum("bchw,fc->bfhw", _layernorm2d(y, nw, nb, eps), w_in) + b_in[:, None, None]
    a, b = h.chunk(2, dim=1)
    z = torch.einsum("bfhw,cf->bchw", a * b, w_out) + b_out[:, None, None]
    return y + gamma[:, None, None] * z


# op: (the public op, the same computation in eager PyTorch at the inputs' precision)
OPS = {
    "layernorm2d": (sr_ops.layernorm2d, _layernorm2d),
    "gelu_layernorm2d": (sr_ops.gelu_layernorm2d, lambda x, w, b: _layernorm2d(F.gelu(x), w, b)),
    "eca": (sr_ops.eca, _eca),
    "naf_ffn": (sr_ops.naf_ffn, _naf_ffn),
}


def _inputs(op, spread, g):
    """"realistic": a map of unit spread about 0 (a conv's output); "large-mean": spread 0.5 about
    4, where GELU is close to the identity at values a half type holds to ~2e-3 (bfloat16 ~2e-2)."""
    scale, shift = (1.0, 0.0) if spread == "realistic" else (0.5, 4.0)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    if op in ("layernorm2d", "gelu_layernorm2d"):
        return (r(2, 48, 9, 11) * scale + shift, r(48), r(48))
    if op == "eca":
        return (r(2, 40, 13, 9) * scale + shift, r(5))
    C, Fh = 16, 16
    return (r(2, C, 7, 9) * scale + shift, r(C), r(C) / 4, r(2 * Fh, C) / 4, r(2 * Fh) / 4, r(C, Fh) / 4,
            r(C) / 4, r(C))


def _err(got, truth):
    return (got.cpu().double() - truth).abs().max().item()


@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
@pytest.mark.parametrize("spread", ["realistic", "large-mean"])
@pytest.mark.parametrize("dtype", HALF, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("op", sorted(OPS))
def test_half_is_float32_rounded_once(backend, op, dtype, spread, layout):
    if op == "naf_ffn" and backend not in ("reference", "cpu", "triton"):
        pytest.skip(f"naf_ffn has no {backend} backend")
    fn, eager = OPS[op]
    g = torch.Generator().manual_seed(sorted(OPS).index(op) * 4 + HALF.index(dtype) * 2 + (spread == "realistic"))
    low = [t.to(dtype) for t in _inputs(op, spread, g)]
    truth = eager(*[t.double() for t in low])
    once = _err(eager(*[t.float() for t in low]).to(dtype), truth)
    args = [t.to(device_for(backend)) for t in low]
    if layout == "channels-last":
        args[0] = args[0].contiguous(memory_format=torch.channels_last)
    got = fn(*args)
    assert got.dtype == dtype
    err = _err(got, truth)
    assert err <= 1.5 * once + 1e-6, f"{op} {dtype} on {backend}: error {err:.3g} > 1.5 x rounded-once {once:.3g}"


def _truncated_to_bfloat16(x):
    """float32 -> bfloat16 by dropping the low 16 bits (what the Triton interpreter's store did)."""
    return (x.float().view(torch.int32) & -65536).view(torch.float32).bfloat16()


@pytest.mark.parametrize("flaw", ["gelu-rounded-first", "store-truncates"])
def test_the_bound_catches_a_second_rounding(flaw):
    """The two flaws issue 31 found, planted in a float32 gelu_layernorm2d: each breaks the bound."""
    low = [t.to(torch.bfloat16) for t in _inputs("gelu_layernorm2d", "large-mean", torch.Generator().manual_seed(3))]
    truth = _layernorm2d(F.gelu(low[0].double()), *[t.double() for t in low[1:]])
    w, b = (t.float() for t in low[1:])
    once = _err(_layernorm2d(F.gelu(low[0].float()), w, b).bfloat16(), truth)
    if flaw == "gelu-rounded-first":
        lossy = _layernorm2d(F.gelu(low[0].float()).bfloat16().float(), w, b).bfloat16()
    else:
        lossy = _truncated_to_bfloat16(_layernorm2d(F.gelu(low[0].float()), w, b))
    assert _err(lossy, truth) > 1.5 * once + 1e-6

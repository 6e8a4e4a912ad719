"""flash-attention's rule for reduced precision: a fused backend's error against a reference
computed in higher precision is at most twice the error of plain eager PyTorch run in the
same precision as the fused backend.

On a GPU the precision under test is float16 and bfloat16 (float32 reference), for the cuda and
triton backends. On the CPU the same rule runs one step up, float32 against float64, for the
cpu backend and triton's interpreter, so the checker itself is exercised on every machine.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import sr_ops
from sr_ops import reference

from _helpers import device_for

GPU = torch.cuda.is_available()
PRECISIONS = [(torch.float16, torch.float32), (torch.bfloat16, torch.float32)] if GPU else [
    (torch.float32, torch.float64)]
FUSED = [b for b in sr_ops.available_backends() if b != "reference" and (b != "cpu" or not GPU)]


def _eager_layernorm2d(x, w, b, eps=1e-6):
    mu = x.mean(1, keepdim=True)
    var = (x - mu).pow(2).mean(1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w[:, None, None] + b[:, None, None]


def _eager_eca(x, w):
    pooled = x.mean((2, 3)).unsqueeze(1)
    logits = F.conv1d(pooled, w.reshape(1, 1, -1), padding=w.numel() // 2).squeeze(1)
    return x * torch.sigmoid(logits)[:, :, None, None]


def _eager_adapn(z, q, eps=1e-5):
    def stats(t):
        return t.mean((-2, -1), keepdim=True), t.var((-2, -1), correction=1, keepdim=True)

    mz, vz = stats(z)
    mq, vq = stats(q.unsqueeze(-4))
    return (z - mz) / torch.sqrt(vz + eps) * torch.sqrt(vq + eps) + mq


def _inputs(op, g):
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    if op in ("layernorm2d", "gelu_layernorm2d"):
        return (r(2, 48, 9, 11) * 3 + 1, r(48), r(48))
    if op == "eca":
        return (r(2, 40, 13, 9) + 0.5, r(5))
    if op == "dwconv_gate_ca":
        return (r(2, 16, 12, 10), r(16, 1, 3, 3) / 3, r(16) / 4, r(8, 8, 1, 1) / 3, r(8) / 4)
    if op == "adapn":
        return (r(3, 4, 8, 6, 6) * 2 + 1, r(3, 8, 3, 3))
    raise KeyError(op)


# op: (the public op, eager PyTorch in the inputs' dtype, the reference)
OPS = {
    "layernorm2d": (sr_ops.layernorm2d, _eager_layernorm2d, reference.layernorm2d),
    "gelu_layernorm2d": (sr_ops.gelu_layernorm2d, lambda x, w, b: _eager_layernorm2d(F.gelu(x), w, b),
                         reference.gelu_layernorm2d),
    "eca": (sr_ops.eca, _eager_eca, reference.eca),
    "dwconv_gate_ca": (sr_ops.dwconv_gate_ca, reference.dwconv_gate_ca, reference.dwconv_gate_ca),
    "adapn": (sr_ops.adapn, _eager_adapn, reference.adapn),
}


def max_error(got, want):
    return (got.to(want.dtype) - want).abs().max().item()


def check_rule(fused_fn, eager_fn, reference_fn, inputs, low, high):
    """(fused error, eager error); raises when the fused one is above 2x the eager one (plus
    one unit of `low`'s rounding at the output's scale, for an eager error that happens to be 0)."""
    lo = [t.to(low) for t in inputs]
    want = reference_fn(*[t.to(high) for t in lo])  # the same (rounded) inputs, in higher precision
    fused, eager = max_error(fused_fn(*lo), want), max_error(eager_fn(*lo), want)
    floor = torch.finfo(low).eps * want.abs().max().item()
    assert fused <= 2 * eager + floor, f"fused error {fused:.3g} > 2 x eager {low} error {eager:.3g}"
    return fused, eager


@pytest.mark.parametrize("low, high", PRECISIONS, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("backend", FUSED)
def test_fused_error_at_most_twice_eager(backend, op, low, high):
    device = device_for(backend)
    inputs = [t.to(device) for t in _inputs(op, torch.Generator().manual_seed(len(op)))]
    fused_fn, eager_fn, reference_fn = OPS[op]
    with sr_ops.use_backend(backend):
        check_rule(fused_fn, eager_fn, reference_fn, inputs, low, high)


def test_the_rule_fails_a_kernel_that_loses_precision():
    """A 'fused' op that computes in bfloat16 and a float32 eager baseline: caught."""
    inputs = _inputs("layernorm2d", torch.Generator().manual_seed(1))
    lossy = lambda x, w, b: reference.layernorm2d(x.bfloat16(), w.bfloat16(), b.bfloat16()).to(x.dtype)  # noqa: E731
    with pytest.raises(AssertionError, match="fused error"):
        check_rule(lossy, _eager_layernorm2d, reference.layernorm2d, inputs, torch.float32, torch.float64)

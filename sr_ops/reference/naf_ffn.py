"""naf_ffn: the second half of a NAFNet block (norm2 -> conv4 -> SimpleGate -> conv5 ->
* gamma + residual), composed from plain PyTorch ops: the baseline and the oracle."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import _validate as v
from sr_ops.reference.layernorm2d import layernorm2d


def check(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    for t, name in [(y, "y"), (norm_weight, "norm_weight"), (norm_bias, "norm_bias"), (w_in, "w_in"),
                    (b_in, "b_in"), (w_out, "w_out"), (b_out, "b_out"), (gamma, "gamma")]:
        v.tensor(t, name)
        v.same_device(t, name, y, "y")
    v.tensor(y, "y", dims=4, doc="(B, C, H, W)")
    C = v.channels(y, "y", "naf_ffn")
    if w_in.dim() != 4 or w_in.shape[1:] != (C, 1, 1) or w_in.shape[0] == 0 or w_in.shape[0] % 2:
        raise ValueError(f"w_in must be (2F, C={C}, 1, 1) with F >= 1 (the 1x1 conv before SimpleGate), "
                         f"got {tuple(w_in.shape)}")
    F_ = w_in.shape[0] // 2
    want = {"norm_weight": (norm_weight, (C,)), "norm_bias": (norm_bias, (C,)), "b_in": (b_in, (2 * F_,)),
            "w_out": (w_out, (C, F_, 1, 1)), "b_out": (b_out, (C,))}
    for name, (t, shape) in want.items():
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for y {tuple(y.shape)} and w_in "
                             f"{tuple(w_in.shape)}, got {tuple(t.shape)}")
    if gamma.numel() != C or gamma.dim() not in (1, 4) or (gamma.dim() == 4 and gamma.shape[1] != C):
        raise ValueError(f"gamma must be (C,) or (1, C, 1, 1) with C={C}, got {tuple(gamma.shape)}")
    v.eps(eps)


def _conv1x1(x, w, b):
    if x.numel() == 0:  # H or W = 0: F.conv2d refuses an empty map; the result is empty all the same
        return torch.einsum("bchw,oc->bohw", x, w[:, :, 0, 0]) + b[:, None, None]
    return F.conv2d(x, w, b)


def naf_ffn(y: torch.Tensor, norm_weight: torch.Tensor, norm_bias: torch.Tensor, w_in: torch.Tensor,
            b_in: torch.Tensor, w_out: torch.Tensor, b_out: torch.Tensor, gamma: torch.Tensor,
            eps: float = 1e-6) -> torch.Tensor:
    """y (B, C, H, W) -> y + gamma * conv_out(gate(conv_in(layernorm2d(y)))), in y's dtype
    (computed in float32 at least): w_in (2F, C, 1, 1), b_in (2F,), w_out (C, F, 1, 1),
    b_out (C,), gamma (C,) or (1, C, 1, 1); gate(h) = h[:, :F] * h[:, F:]."""
    check(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps)
    dtype = torch.promote_types(y.dtype, torch.float32)
    cast = [t.to(dtype) for t in (y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma)]
    yf, nw, nb, wi, bi, wo, bo, g = cast
    h = _conv1x1(layernorm2d(yf, nw, nb, eps), wi, bi)
    a, b = h.chunk(2, dim=1)
    out = yf + g.reshape(1, -1, 1, 1) * _conv1x1(a * b, wo, bo)
    return out.to(y.dtype)


# Pixels per partial product of the weight gradients: each chunk's (k, m) product, then the
# chunks added in order, so the sums run in one order at any thread count (ATen's
# convolution backward splits them by thread; docs/design.md, Determinism).
PIXEL_CHUNK = 1024


def _chunks(rows: torch.Tensor) -> torch.Tensor:
    """(N, k) -> (ceil(N / PIXEL_CHUNK), PIXEL_CHUNK, k), the tail padded with zeros."""
    n = -(-rows.shape[0] // PIXEL_CHUNK)
    return F.pad(rows, (0, 0, 0, n * PIXEL_CHUNK - rows.shape[0])).reshape(n, PIXEL_CHUNK, rows.shape[1])


def _in_order(parts: torch.Tensor) -> torch.Tensor:
    """Sum over the first dimension, one chunk after the other (cumsum is a sequential scan)."""
    if parts.shape[0] == 0:
        return parts.sum(0)
    return parts.cumsum(0)[-1]


def pixel_sum(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """sum over the N rows of a (N, k) -> (k,), or of a^T b with b (N, m) -> (k, m); fixed order."""
    if b is None:
        return _in_order(_chunks(a).sum(1))
    return _in_order(torch.bmm(_chunks(a).transpose(1, 2), _chunks(b)))


def naf_ffn_backward(grad, y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    """The gradients of naf_ffn in closed form: w_in (2F, C), w_out (C, F), gamma (C,), all
    one dtype, grad like y. Plain differentiable torch ops on the (B*H*W, C) pixel rows (the
    1x1 convolutions are matmuls), so torch.func, dispatch modes and second order see
    ordinary ops. Returns the eight gradients, contiguous, in their tensors' dtypes."""
    dt = torch.promote_types(y.dtype, torch.float32)
    B, C, H, W = y.shape
    Fh = w_in.shape[0] // 2

    def rows(t):  # (B, C, H, W) -> (B*H*W, C)
        return t.to(dt).permute(0, 2, 3, 1).reshape(B * H * W, C)

    x, g = rows(y), rows(grad)
    nw, nb, wi, bi, wo, bo, gm = (t.to(dt) for t in (norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma))
    mu = x.mean(1, keepdim=True)
    rstd = torch.rsqrt((x - mu).pow(2).mean(1, keepdim=True) + eps)
    xhat = (x - mu) * rstd
    xn = xhat * nw + nb
    h = xn @ wi.t() + bi
    a, b = h[:, :Fh], h[:, Fh:]
    s = a * b
    z = s @ wo.t() + bo
    gz = g * gm
    gs = gz @ wo
    gh = torch.cat([gs * b, gs * a], 1)
    gxn = gh @ wi
    gxh = gxn * nw
    gx = g + rstd * (gxh - gxh.mean(1, keepdim=True) - xhat * (gxh * xhat).mean(1, keepdim=True))
    grads = (gx.reshape(B, H, W, C).permute(0, 3, 1, 2), pixel_sum(gxn * xhat), pixel_sum(gxn),
             pixel_sum(gh, xn), pixel_sum(gh), pixel_sum(gz, s), pixel_sum(gz), pixel_sum(g * z))
    like = (y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma)
    return tuple(d.to(t.dtype).contiguous() for d, t in zip(grads, like))

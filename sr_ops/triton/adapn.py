"""Triton kernels for adapn: each program takes BG (n, c) groups, a [BG, next_pow2(PP)]
tile per neighbour patch, and loops over the k neighbours, so the query statistics are
computed once per group and the query gradient is a plain store (no atomics). The
formulas are those of csrc/kernels/adapn.h.

eps arrives as a float32 scalar (how Triton types Python floats); float64 inputs still
compute in float64, with eps rounded to float32 (a relative change of ~1e-8 in eps).

Loads. The patch sizes are constexprs, so each neighbour patch's offset is a multiple of
PP the compiler can see: at IGNN's PP = 36 (6x6) a patch is 144 bytes of float32 at a
144-byte pitch, and the [BG, BP] tile reads it 128 bits per thread (ld.global.v4; 64 bits
in float16/bfloat16, whose 72-byte patches are 8-byte aligned only). A PP that is not a
multiple of 4 gets narrower loads. The query patches cannot be read 128 bits wide at
IGNN's pp = 9 (3x3): 36 bytes at a 36-byte pitch are only 4-byte aligned, so those loads
are scalar; they are 9 values against the k * 36 = 180 neighbour values of a group (5%).

Indices are int32 (the (n, c) split of a group number is one div.s32 per group), unless
neighbors has so many elements that its offsets leave int32: only then does the wrapper
pick the INDEX64 variant."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton._util import acc_dtype, launch_grid


@triton.jit
def _moments(x, live, n):
    """(shift, dmean, var) along axis 1 of x (zero where not live), two passes about each
    row's first value as in csrc/kernels/adapn.h: mean = shift + dmean, and x - shift keeps
    float32's digits when the mean is far from 0. Returns also x - mean (zero where not live)."""
    shift = tl.sum(tl.where(tl.arange(0, x.shape[1])[None, :] == 0, x, 0.0), axis=1)
    dmean = tl.sum(tl.where(live, x - shift[:, None], 0.0), axis=1) / n
    dev = tl.where(live, (x - shift[:, None]) - dmean[:, None], 0.0)
    return shift, dmean, tl.sum(dev * dev, axis=1) / (n - 1), dev


@triton.jit
def _groups(BG: tl.constexpr, INDEX64: tl.constexpr):
    pid = tl.program_id(0)
    if INDEX64:
        pid = pid.to(tl.int64)
    return pid * BG + tl.arange(0, BG)


@triton.jit
def _query_tile(q_ptr, g, g_live, pp: tl.constexpr, eps, BQ: tl.constexpr, ACC: tl.constexpr):
    e = tl.arange(0, BQ)
    live = g_live[:, None] & (e[None, :] < pp)
    ptrs = g[:, None] * pp + e[None, :]
    qv = tl.load(q_ptr + ptrs, mask=live, other=0.0).to(ACC)
    shift, dmean, var, dev = _moments(qv, live, pp)
    return dev, ptrs, live, shift + dmean, tl.sqrt(var + eps)


@triton.jit
def _fwd_kernel(z_ptr, q_ptr, out_ptr, G, k, C, eps, PP: tl.constexpr, pp: tl.constexpr,
                BG: tl.constexpr, BP: tl.constexpr, BQ: tl.constexpr, ACC: tl.constexpr, INDEX64: tl.constexpr):
    g = _groups(BG, INDEX64)
    g_live = g < G
    _q, _qd, _qv, mean_q, std_q = _query_tile(q_ptr, g, g_live, pp, eps, BQ, ACC)
    e = tl.arange(0, BP)
    live = g_live[:, None] & (e[None, :] < PP)
    n, c = g // C, g % C
    for r in range(0, k):
        ptrs = (((n * k + r) * C + c) * PP)[:, None] + e[None, :]
        zv = tl.load(z_ptr + ptrs, mask=live, other=0.0).to(ACC)
        _zs, _zm, var_z, dev = _moments(zv, live, PP)
        scale = std_q / tl.sqrt(var_z + eps)
        out = dev * scale[:, None] + mean_q[:, None]
        tl.store(out_ptr + ptrs, out.to(out_ptr.dtype.element_ty), mask=live)


@triton.jit
def _bwd_kernel(g_ptr, z_ptr, q_ptr, gz_ptr, gq_ptr, G, k, C, eps, PP: tl.constexpr, pp: tl.constexpr,
                BG: tl.constexpr, BP: tl.constexpr, BQ: tl.constexpr, ACC: tl.constexpr, INDEX64: tl.constexpr):
    g = _groups(BG, INDEX64)
    g_live = g < G
    qdev, qptrs, qlive, mean_q, std_q = _query_tile(q_ptr, g, g_live, pp, eps, BQ, ACC)
    e = tl.arange(0, BP)
    live = g_live[:, None] & (e[None, :] < PP)
    n, c = g // C, g % C
    G1 = tl.zeros([BG], dtype=ACC)  # sum of g over the k patches: the mean_q path
    G2 = tl.zeros([BG], dtype=ACC)  # sum of g * xhat: the std_q path
    for r in range(0, k):
        ptrs = (((n * k + r) * C + c) * PP)[:, None] + e[None, :]
        zv = tl.load(z_ptr + ptrs, mask=live, other=0.0).to(ACC)
        gv = tl.load(g_ptr + ptrs, mask=live, other=0.0).to(ACC)
        _zs, _zm, var_z, dev = _moments(zv, live, PP)
        inv_std_z = 1.0 / tl.sqrt(var_z + eps)
        xhat = dev * inv_std_z[:, None]
        sg = tl.sum(gv, axis=1)
        sgx = tl.sum(gv * xhat, axis=1)
        dz = (std_q * inv_std_z)[:, None] * (gv - (sg / PP)[:, None] - xhat * (sgx / (PP - 1))[:, None])
        tl.store(gz_ptr + ptrs, dz.to(gz_ptr.dtype.element_ty), mask=live)
        G1 += sg
        G2 += sgx
    dq = (G1 / pp)[:, None] + (G2 / ((pp - 1) * std_q))[:, None] * qdev
    tl.store(gq_ptr + qptrs, dq.to(gq_ptr.dtype.element_ty), mask=qlive)


def _dims(neighbors, query):
    k, C, P1, P2 = neighbors.shape[-4:]
    G = query.numel() // max(1, query.shape[-2] * query.shape[-1])
    BP = triton.next_power_of_2(P1 * P2)
    # ~2K values per tile: enough groups per program to keep a GPU busy at IGNN's PP = 36;
    # half that in float64, whose backward tiles (live across the k-loop) spill at 2K.
    BG = max(1, min(64, (1024 if neighbors.dtype == torch.float64 else 2048) // BP))
    return dict(G=G, k=k, C=C, PP=P1 * P2, pp=query.shape[-2] * query.shape[-1],
                BG=BG, BP=BP, BQ=triton.next_power_of_2(query.shape[-2] * query.shape[-1]),
                INDEX64=index64(neighbors.numel(), BG * BP))


def index64(numel: int, tile: int) -> bool:
    """Whether neighbors' offsets need int64 (the last program's spare groups included:
    their offsets must not wrap into live ones). The query is smaller than neighbors."""
    return numel + tile >= 2**31


def adapn_fwd(neighbors: torch.Tensor, query: torch.Tensor, eps: float) -> torch.Tensor:
    neighbors, query = neighbors.contiguous(), query.contiguous()
    out = torch.empty_like(neighbors)
    d = _dims(neighbors, query)
    if out.numel():
        _fwd_kernel[launch_grid(d["G"], d["BG"])](
            neighbors, query, out, d["G"], d["k"], d["C"], eps, PP=d["PP"], pp=d["pp"],
            BG=d["BG"], BP=d["BP"], BQ=d["BQ"], ACC=acc_dtype(neighbors.dtype), INDEX64=d["INDEX64"])
    return out


def adapn_bwd(grad_out: torch.Tensor, neighbors: torch.Tensor, query: torch.Tensor, eps: float):
    neighbors, query = neighbors.contiguous(), query.contiguous()
    grad_out = grad_out.to(neighbors.dtype).contiguous()
    gz, gq = torch.empty_like(neighbors), torch.empty_like(query)
    d = _dims(neighbors, query)
    if gq.numel():
        _bwd_kernel[launch_grid(d["G"], d["BG"])](
            grad_out, neighbors, query, gz, gq, d["G"], d["k"], d["C"], eps, PP=d["PP"], pp=d["pp"],
            BG=d["BG"], BP=d["BP"], BQ=d["BQ"], ACC=acc_dtype(neighbors.dtype), INDEX64=d["INDEX64"])
    return gz, gq

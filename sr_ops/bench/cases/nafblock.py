"""NAFBlock (NAFNet's block, c=64) on a 256x256 map: the block on the fused ops
(sr_ops.models.nafnet.NAFBlock) against the same block in plain torch ops, and
torch.compile of the plain block; plus the fused op alone (dwconv_gate_ca: the 3x3
depthwise conv of 128 channels -> SimpleGate -> channel attention) against its
reference. Smaller maps for --quick."""
from __future__ import annotations

import functools

import torch
from torch import nn

import sr_ops
from sr_ops import reference
from sr_ops.bench.cases import Case

C = 64


class EagerNAFBlock(nn.Module):
    """NAFNet's block as its official code writes it, plain torch ops (the baseline)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.conv3 = nn.Conv2d(c, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.norm1 = _EagerLayerNorm2d(c)
        self.norm2 = _EagerLayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    @staticmethod
    def _gate(x):
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, inp):
        x = self._gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self._gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class _EagerLayerNorm2d(nn.Module):
    def __init__(self, c: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return (x - mu) / (var + self.eps).sqrt() * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


@functools.lru_cache(maxsize=None)
def _blocks(device_type: str):
    """One set of random weights (non-zero beta/gamma), shared by the blocks: eager, sr_ops,
    and torch.compile of each."""
    from sr_ops.models.nafnet import NAFBlock

    g = torch.Generator().manual_seed(0)
    eager = EagerNAFBlock(C)
    with torch.no_grad():
        for p in eager.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + 0.5)
    fused = NAFBlock(C)
    fused.load_state_dict(eager.state_dict())
    eager, fused = eager.to(device_type).eval(), fused.to(device_type).eval()
    return eager, fused, torch.compile(eager, dynamic=False), torch.compile(fused, dynamic=False)


def _make_block(hw, device):
    g = torch.Generator().manual_seed(1)
    return {"x": torch.randn(1, C, hw, hw, generator=g).to(device), "device": torch.device(device).type}


def _run_block(which, d):
    with torch.no_grad():
        return _blocks(d["device"])[which](d["x"])


def _make_op(hw, device):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2 * C, hw, hw, generator=g)
    ws = [torch.randn(2 * C, 1, 3, 3, generator=g) / 3, torch.randn(2 * C, generator=g),
          torch.randn(C, C, 1, 1, generator=g) / 8, torch.randn(C, generator=g)]
    return {"args": [t.to(device) for t in (x, *ws)]}


def _run_op(fn, d):
    with torch.no_grad():
        return fn(*d["args"])


@functools.lru_cache(maxsize=None)
def _compiled_op():
    return torch.compile(reference.dwconv_gate_ca, dynamic=False)


_FFN_ARGS = ("y", "norm_weight", "norm_bias", "w_in", "b_in", "w_out", "b_out", "gamma")


def _make_ffn(hw, device, grad=False, c=C):
    g = torch.Generator().manual_seed(3)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device).requires_grad_(grad)
    d = dict(y=r(1, c, hw, hw), norm_weight=r(c), norm_bias=r(c), w_in=r(2 * c, c, 1, 1, scale=c ** -0.5),
             b_in=r(2 * c), w_out=r(c, c, 1, 1, scale=c ** -0.5), b_out=r(c), gamma=r(1, c, 1, 1))
    d["grad_out"] = torch.randn(1, c, hw, hw, generator=g).to(device) if grad else None
    return d


def _run_ffn(fn, d):
    args = [d[k] for k in _FFN_ARGS]
    if d["grad_out"] is None:
        with torch.no_grad():
            return fn(*args)
    return torch.autograd.grad(fn(*args), args, d["grad_out"].to(args[0].dtype))


def cases() -> list[Case]:
    out = []
    for grad in (False, True):
        out.append(Case(
            op="naf_ffn", label=f"{'fwd+bwd ' if grad else ''}FFN half c{C} 1x{C}x256x256", quick=False,
            make=functools.partial(_make_ffn, 256, grad=grad),
            impls={"sr_ops": functools.partial(_run_ffn, sr_ops.naf_ffn),
                   "pytorch": functools.partial(_run_ffn, reference.naf_ffn)},
            # both are float32 roundings of the float64 result, of the same size (weight
            # gradients of ~1e4 summed over 65K pixels differ by ~5e-3 from it, eager's too)
            extra={"tol": dict(rtol=1e-4, atol=2e-2 if grad else 1e-4)},
        ))
    for hw, quick in [(256, False), (96, True)]:
        out.append(Case(
            op="nafblock", label=f"NAFBlock c{C} 1x{C}x{hw}x{hw}", quick=quick,
            make=functools.partial(_make_block, hw),
            impls={"sr_ops": functools.partial(_run_block, 1), "pytorch": functools.partial(_run_block, 0)},
            compile_impl=functools.partial(_run_block, 2),
            compile_fused_impl=functools.partial(_run_block, 3),
        ))
        out.append(Case(
            op="dwconv_gate_ca", label=f"dw3x3+gate+sca 1x{2 * C}x{hw}x{hw}", quick=quick,
            make=functools.partial(_make_op, hw),
            impls={"sr_ops": functools.partial(_run_op, sr_ops.dwconv_gate_ca),
                   "pytorch": functools.partial(_run_op, reference.dwconv_gate_ca)},
            compile_impl=lambda d: _run_op(_compiled_op(), d),
        ))
    return out

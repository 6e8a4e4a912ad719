"""conv3x3 at RT4KSR x2's three 3x3 convolutions on a 1280x720 frame (their 640x360 LR
maps, channels-last): the head 12 -> 24, a re-parameterised block 24 -> 24 (five per
forward) and the upsampling 24 -> 48, against F.conv2d (oneDNN's direct convolution on the
CPU) and torch.compile of it (inductor calls the same oneDNN kernel); and conv3x3_layernorm2d
on the block, against the convolution, F.gelu and the reference norm."""
from __future__ import annotations

import functools

import torch

import sr_ops
from sr_ops import reference
from sr_ops.bench.cases import Case


def _make(cin, cout, h, w, device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, cin, h, w, generator=g).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(cout, cin, 3, 3, generator=g) / (3 * cin**0.5)
    norm = torch.randn(2, cout, generator=g) * 0.5 + torch.tensor([[1.0], [0.0]])
    return {"x": x.to(device), "w": weight.to(device), "b": torch.randn(cout, generator=g).to(device),
            "nw": norm[0].to(device), "nb": norm[1].to(device)}


def _run_norm(fn, d):
    with torch.no_grad():
        return fn(d["x"], d["w"], d["b"], d["nw"], d["nb"], 1e-6, True)


def _run(fn, d):
    with torch.no_grad():
        return fn(d["x"], d["w"], d["b"])


@functools.lru_cache(maxsize=None)
def _compiled():
    return torch.compile(reference.conv3x3, dynamic=False)


@functools.lru_cache(maxsize=None)
def _compiled_norm():
    return torch.compile(reference.conv3x3_layernorm2d, dynamic=False)


def cases() -> list[Case]:
    out = []
    for cin, cout, what, quick in [(12, 24, "head", False), (24, 24, "block", True), (24, 48, "x2 upsample", False)]:
        out.append(Case(op="conv3x3", label=f"RT4KSR {what} {cin}->{cout} 640x360", quick=quick,
                        make=functools.partial(_make, cin, cout, 360, 640),
                        impls={"sr_ops": functools.partial(_run, sr_ops.conv3x3),
                               "pytorch": functools.partial(_run, reference.conv3x3)},
                        compile_impl=lambda d: _run(_compiled(), d)))
    # conv3x3_layernorm2d: a block's conv -> GELU -> the next block's norm
    out.append(Case(op="conv3x3_layernorm2d", label="RT4KSR block 24->24 + GELU + norm 640x360",
                    make=functools.partial(_make, 24, 24, 360, 640),
                    impls={"sr_ops": functools.partial(_run_norm, sr_ops.conv3x3_layernorm2d),
                           "pytorch": functools.partial(_run_norm, reference.conv3x3_layernorm2d)},
                    compile_impl=lambda d: _run_norm(_compiled_norm(), d),
                    extra={"tol": dict(rtol=1e-4, atol=1e-4)}))
    return out

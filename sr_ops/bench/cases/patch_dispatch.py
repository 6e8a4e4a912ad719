"""ClassSR's patch dispatch, data movement only: a 1024x1024 LR RGB image cut into 32x32
patches at stride 28, three classes from random ids, each class's batch through a cheap
stand-in "SR branch", and the outputs folded back with overlaps averaged.

`sr_ops`: extract_patches -> class_dispatch -> gather_patches -> per-class branch ->
merge_patches. `pytorch`: the official ClassSR code's way: a Python loop of crops into
per-class lists, one torch.cat per class, then a per-patch paste loop adding into an HR
accumulator and a count map, then a division. Stand-ins: identity at scale 1 (pure data
movement), nearest x4 upsampling (repeat_interleave) at scale 4, and at scale 4 branch
outputs computed beforehand (each class's outputs a slice of one ready (N, 3, 128, 128)
batch, for both ways), so that the x4 paste is timed without any branch work."""
from __future__ import annotations

import functools

import torch

import sr_ops
from sr_ops.bench.cases import Case
from sr_ops.reference.extract_patches import grid_positions

K = 3


def _branch(x: torch.Tensor, scale: int) -> torch.Tensor:
    if scale == 1:
        return x
    return x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)


def _make(H, W, P, T, scale, device, ready=False):
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, H, W, generator=g).to(device)
    n = len(grid_positions(H, P, T)) * len(grid_positions(W, P, T))
    ids = torch.randint(0, K, (n,), generator=g).to(device)
    d = {"img": img, "ids": ids, "P": P, "T": T, "scale": scale, "ready": None}
    if ready:
        d["ready"] = torch.rand(n, 3, scale * P, scale * P, generator=g).to(device)
        d["starts"] = [0, *torch.bincount(ids.cpu(), minlength=K).cumsum(0).tolist()]
    return d


def _outputs(d, k, batch):
    """Class k's branch outputs: the stand-in applied to its batch, or its ready slice."""
    if d["ready"] is not None:
        return d["ready"][d["starts"][k]:d["starts"][k + 1]]
    return _branch(batch, d["scale"])


def _fused(d):
    img, P, s = d["img"], d["P"], d["scale"]
    with torch.no_grad():
        patches, coords = sr_ops.extract_patches(img, P, d["T"])  # `patches` would feed the classifier
        order, counts = sr_ops.class_dispatch(d["ids"], K)
        batch = sr_ops.gather_patches(img, coords, order, P)
        if d["ready"] is not None:
            outs = d["ready"]  # every class's slice of one ready batch, already in class order
        elif s == 1:
            # Identity branches: class k's outputs are its contiguous slice of `batch`, so
            # their concatenation in class order is `batch` itself (no copy to make).
            outs = batch
        else:
            outs = torch.cat([_branch(b, s) for b in torch.split(batch, counts.tolist()) if b.shape[0]])
        return sr_ops.merge_patches(outs, coords, order, tuple(img.shape[:1]) + tuple(img.shape[2:]), s)


def _official(d):
    img, P, T, s = d["img"], d["P"], d["T"], d["scale"]
    B, C, H, W = img.shape
    with torch.no_grad():
        ids = d["ids"].tolist()
        crops, where = [[] for _ in range(K)], [[] for _ in range(K)]
        n = 0
        for r in grid_positions(H, P, T):
            for c in grid_positions(W, P, T):
                crops[ids[n]].append(img[:, :, r:r + P, c:c + P])
                where[ids[n]].append((r, c))
                n += 1
        hr = img.new_zeros(B, C, s * H, s * W)
        count = img.new_zeros(1, 1, s * H, s * W)
        Q = s * P
        for k in range(K):
            if not crops[k]:
                continue
            out = _outputs(d, k, torch.cat(crops[k]))
            for j, (r, c) in enumerate(where[k]):
                hr[:, :, s * r:s * r + Q, s * c:s * c + Q] += out[j:j + 1]
                count[:, :, s * r:s * r + Q, s * c:s * c + Q] += 1
        return hr / count


def cases() -> list[Case]:
    return [
        Case(op="patch_dispatch", label=f"ClassSR 1x3x1024x1024 p32 t28 {name}", quick=quick,
             make=functools.partial(_make, 1024, 1024, 32, 28, scale, ready=ready),
             impls={"sr_ops": _fused, "pytorch": _official})
        for name, scale, ready, quick in [("identity x1", 1, False, True), ("nearest x4", 4, False, False),
                                          ("ready x4 outputs", 4, True, True)]
    ]

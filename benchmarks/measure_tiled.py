"""`sr_ops.tiled`: equality with the whole-image result and peak memory under a budget
(issue 7's acceptance numbers), with RT4KSR x2 and its official weights. Run from the
repository root:  python benchmarks/measure_tiled.py
"""
import time
from pathlib import Path

import torch

import sr_ops
from sr_ops import models
from sr_ops.bench.memory import peak_bytes
from sr_ops.io import read_image
from sr_ops.tiled import pick_tile

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
MiB = 2**20


def main() -> None:
    net = models.build("rt4ksr", 2, ASSETS / "weights/rt4ksr/rt4ksr_x2.pth")
    lr = read_image(ASSETS / "datasets/SelfExSR/Set5/image_SRF_2/img_001_SRF_2_LR.png")[None]
    with torch.no_grad():
        whole = net(lr)
    for overlap in (16, 32):  # RT4KSR pixel-unshuffles by 2: tiles on even boundaries
        err = (sr_ops.tiled(net, lr, 2, tile=64, overlap=overlap, align=2) - whole).abs().max()
        print(f"RT4KSR x2, Set5 baby {tuple(lr.shape[-2:])}, tile 64, overlap {overlap}: max |tiled - whole| {err:.1e}")
    x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = net(x)
        print(f"RT4KSR x2 on 512x512: whole image peaks at {peak_bytes(lambda: net(x)) / MiB:.1f} MiB")
    for budget_mib in (40, 24):
        budget, kept = budget_mib * MiB, []
        tile = pick_tile(net, x, 2, 32, budget, align=2)
        start = time.perf_counter()
        peak = peak_bytes(lambda: kept.append(sr_ops.tiled(net, x, 2, max_memory=budget, overlap=32, align=2)))
        print(f"  max_memory {budget_mib} MiB: tiles of {tile}, peak {peak / MiB:.1f} MiB, "
              f"max |tiled - whole| {(kept[0] - whole).abs().max():.1e}, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

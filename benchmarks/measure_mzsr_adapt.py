"""MZSR test-time adaptation on kernel-degraded Set5 x2 (issue 6's acceptance number).

LR = HR blurred with a 13x13 Gaussian (sigma 1.3) and subsampled x2 directly, rounded to
8 bits; the pre-trained bicubic MZSR weights before and after `steps` Adam steps with the
true kernel. Run from the repository root:

    python benchmarks/measure_mzsr_adapt.py [steps=20] [learning_rate=1e-5]
"""
import sys
import time
from pathlib import Path

import torch

from sr_ops import models
from sr_ops.evaluate import hr_images
from sr_ops.io import read_image, to_uint8
from sr_ops.metrics import psnr
from sr_ops.models.mzsr import blur_subsample, gaussian_kernel

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"


def main(steps: int = 20, rate: float = 1e-5) -> None:
    net = models.build("mzsr", 2, ASSETS / "weights/mzsr/mzsr_pretrained_bicubic_x2_torch.pth")
    kernel = gaussian_kernel(13, 1.3)
    gains = []
    print("| image | before dB | after dB | gain | adapt s |\n|---|---|---|---|---|")
    for path in hr_images(ASSETS / "datasets/SelfExSR/Set5/image_SRF_2"):
        hr = read_image(path)
        hr = hr[:, : hr.shape[1] // 2 * 2, : hr.shape[2] // 2 * 2].unsqueeze(0)
        lr = to_uint8(blur_subsample(hr, kernel, 2)).float() / 255
        start = time.perf_counter()
        adapted = net.adapt(lr, kernel=kernel, steps=steps, learning_rate=rate)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            before, after = float(psnr(net(lr), hr, 2)), float(psnr(adapted(lr), hr, 2))
        gains.append(after - before)
        print(f"| {path.stem} | {before:.2f} | {after:.2f} | {after - before:+.3f} | {seconds:.1f} |", flush=True)
    print(f"mean gain {sum(gains) / len(gains):+.3f} dB over {len(gains)} images")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 20, float(args[1]) if len(args) > 1 else 1e-5)

"""ZSSR from a random start on Set5 *bird* x2 (bicubic LR), trained on the test image
itself for a fixed time; Y-PSNR against bicubic and the pre-trained MZSR. Run from the
repository root:  python benchmarks/measure_zssr.py [seconds=300] [crop=48]
"""
import sys
import time
from pathlib import Path

import torch

from sr_ops import models
from sr_ops.imresize import imresize
from sr_ops.io import read_image, to_uint8
from sr_ops.metrics import psnr

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"


def main(seconds: float = 300.0, crop: int = 48) -> None:
    hr = read_image(ASSETS / "datasets/SelfExSR/Set5/image_SRF_2/img_002_SRF_2_HR.png").unsqueeze(0)
    lr = to_uint8(imresize(hr, 0.5)).float() / 255
    zssr = models.build("zssr", 2, seed=0)
    mzsr = models.build("mzsr", 2, ASSETS / "weights/mzsr/mzsr_pretrained_bicubic_x2_torch.pth")
    losses: list[float] = []
    start = time.perf_counter()
    trained = zssr.adapt(lr, steps=10**6, crop_size=crop, augment=True, seed=0, max_seconds=seconds,
                         callback=lambda step, loss: losses.append(loss))
    took = time.perf_counter() - start
    with torch.no_grad():
        scores = {"bicubic": psnr(imresize(lr, 2).clamp(0, 1), hr, 2), "zssr": psnr(trained(lr), hr, 2),
                  "mzsr pre-trained": psnr(mzsr(lr), hr, 2)}
    summary = ", ".join(f"{k} {float(v):.2f} dB" for k, v in scores.items())
    print(f"ZSSR: {len(losses)} steps in {took:.0f} s; {summary}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(float(args[0]) if args else 300.0, int(args[1]) if len(args) > 1 else 48)

"""Dataset evaluation with the SR protocol of DESIGN.md: LR = MATLAB-bicubic imresize of
the HR image (rounded to 8 bits), Y-channel PSNR with `scale` pixels cropped, next to
bicubic upscaling of the same LR."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from sr_ops import metrics
from sr_ops.imresize import imresize
from sr_ops.io import read_image, to_uint8


def hr_images(dataset: str | Path) -> list[Path]:
    """HR files of a folder: `*_HR.png` when present (SelfExSR layout), else every image."""
    root = Path(dataset)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    files = sorted(root.glob("*_HR.png")) or sorted(
        p for p in root.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if not files:
        raise FileNotFoundError(f"no images in {root}")
    return files


def evaluate(model: torch.nn.Module, dataset: str | Path, scale: int, device: str = "cpu") -> list[dict]:
    """Per image: name, model PSNR, bicubic PSNR (Y channel, crop = scale), seconds."""
    rows = []
    for path in hr_images(dataset):
        hr = read_image(path)
        h, w = hr.shape[-2] - hr.shape[-2] % scale, hr.shape[-1] - hr.shape[-1] % scale
        hr = hr[:, :h, :w].unsqueeze(0)
        lr = to_uint8(imresize(hr, 1 / scale)).float() / 255
        t0 = time.perf_counter()
        with torch.no_grad():
            sr = model(lr.to(device)).cpu()
        seconds = time.perf_counter() - t0
        bicubic = imresize(lr, scale).clamp(0, 1)
        rows.append({"image": path.stem, "psnr": float(metrics.psnr(sr, hr, scale)),
                     "bicubic": float(metrics.psnr(bicubic, hr, scale)), "seconds": seconds})
    return rows


def format_rows(rows: list[dict], model: str, scale: int) -> str:
    lines = [f"| image | {model} x{scale} PSNR-Y | bicubic PSNR-Y | seconds |", "|---|---|---|---|"]
    lines += [f"| {r['image']} | {r['psnr']:.2f} | {r['bicubic']:.2f} | {r['seconds']:.2f} |" for r in rows]
    mean = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    lines.append(f"| mean | {mean('psnr'):.2f} | {mean('bicubic'):.2f} | {mean('seconds'):.2f} |")
    return "\n".join(lines)

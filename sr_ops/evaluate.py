"""Dataset evaluation with the SR protocol of docs/design.md (Evaluation): LR =
MATLAB-bicubic imresize of the HR image (rounded to 8 bits), Y-channel PSNR with `scale`
pixels cropped, next to bicubic upscaling of the same LR. SSIM likewise (Y channel, 11x11
Gaussian window).

    >>> rows = evaluate(model, "Set5/image_SRF_2", scale=2)    # model: any callable
    >>> print(format_rows(rows, "rt4ksr", 2)); write_csv(rows, "set5.csv")
"""
from __future__ import annotations

import csv
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


def evaluate(model, dataset: str | Path, scale: int, device: str = "cpu") -> list[dict]:
    """Per image: name, model and bicubic PSNR and SSIM (Y channel, crop = scale), seconds.

    ``model``: a module or any callable (B, 3, h, w) -> (B, 3, s*h, s*w), e.g. a tiled
    or self-ensembled model.
    """
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
                     "bicubic": float(metrics.psnr(bicubic, hr, scale)),
                     "ssim": float(metrics.ssim(sr, hr, scale)),
                     "bicubic_ssim": float(metrics.ssim(bicubic, hr, scale)), "seconds": seconds})
    return rows


def mean_row(rows: list[dict]) -> dict:
    """The column means, as a row named "mean"."""
    if not rows:
        raise ValueError("rows must not be empty")
    keys = [k for k in rows[0] if k != "image"]
    return {"image": "mean", **{k: sum(r[k] for r in rows) / len(rows) for k in keys}}


def format_rows(rows: list[dict], model: str, scale: int) -> str:
    """Markdown table, one line per image and a final "mean" line."""
    lines = [f"| image | {model} x{scale} PSNR-Y | bicubic PSNR-Y | {model} SSIM-Y | bicubic SSIM-Y | seconds |",
             "|---|---|---|---|---|---|"]
    for r in [*rows, mean_row(rows)]:
        lines.append(f"| {r['image']} | {r['psnr']:.2f} | {r['bicubic']:.2f} | {r['ssim']:.4f} | "
                     f"{r['bicubic_ssim']:.4f} | {r['seconds']:.2f} |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str | Path) -> None:
    """Per-image rows and the mean row as CSV (full precision)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, mean_row(rows)])

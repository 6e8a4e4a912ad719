"""Does ClassSR's class dispatch turn saved FLOPs into saved time?

    python -m sr_ops.bench.classsr_report [--size 384] [--repeats 5] [--threads N]

Runs ClassSR-FSRCNN x4 on one LR image with smooth and textured regions twice, side by side:
with the classifier's classes, and with every sub-image forced to the largest branch
(``class_ids`` all 2, the single-network baseline).  Prints one line: the classes found, the
branch FLOPs saved (ClassSR's count: 141/304/468 MFLOPs per 32x32 sub-image), the wall time
saved, and the time ratio over the FLOP ratio (1.0 = time falls exactly as FLOPs do).

The image: Set14's baboon (rich texture) resized to ``size`` x ``size`` with its right half
blurred flat; a synthetic texture/gradient image when the shared assets are absent.  The
official ``ClassSR_FSRCNN.pth`` is used when present, otherwise random weights (the split
between classes is then arbitrary, the FLOP/time comparison still holds).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ASSETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "assets"
CHECKPOINT = ASSETS / "weights" / "classsr" / "ClassSR_FSRCNN.pth"
IMAGE = ASSETS / "datasets" / "SelfExSR" / "Set14" / "image_SRF_4" / "img_001_SRF_4_HR.png"


def test_image(size: int = 384, seed: int = 0, blur: bool = True) -> torch.Tensor:
    """(1, 3, size, size) in [0, 1]: textured left half, blurred (smooth) right half
    (``blur=False``: the whole image textured)."""
    from sr_ops.imresize import imresize

    if IMAGE.is_file():
        from sr_ops.io import read_image

        img = imresize(read_image(IMAGE)[None], size=(size, size)).clamp(0, 1)
    else:
        g = torch.Generator().manual_seed(seed)
        ramp = torch.linspace(0, 1, size)
        img = 0.5 * (ramp.view(1, 1, 1, -1) + ramp.view(1, 1, -1, 1)).expand(1, 3, size, size).clone()
        img[..., : size // 2] += 0.25 * torch.rand(1, 3, size, size // 2, generator=g)
        img = img.clamp(0, 1)
    if not blur:
        return img.contiguous()
    half = size // 2
    right = img[..., half:]
    k = 15
    for _ in range(3):  # a wide box blur, three times (close to a Gaussian)
        right = F.avg_pool2d(F.pad(right, (k // 2,) * 4, mode="replicate"), k, stride=1)
    img = img.clone()
    img[..., half:] = right
    return img.contiguous()


def build_model(checkpoint: Path | None = CHECKPOINT):
    from sr_ops import models

    ckpt = checkpoint if checkpoint is not None and Path(checkpoint).is_file() else None
    if ckpt is None:
        torch.manual_seed(0)
    return models.build("classsr_fsrcnn", 4, ckpt), ckpt is not None


def measure(model, x: torch.Tensor, repeats: int = 5) -> dict:
    """Interleaved wall times of ``model(x)`` and ``model(x, all 2)`` plus the FLOP counts."""
    from sr_ops.models.classsr import FSRCNN_WIDTHS, fsrcnn_branch_mflops

    with torch.inference_mode():
        coords, ids = model.classify(x)
        hard = torch.full_like(ids, 2)
        runs = {"classsr": lambda: model(x), "hard": lambda: model(x, hard)}
        times: dict[str, list[float]] = {k: [] for k in runs}
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(repeats):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    counts = torch.bincount(ids, minlength=3).tolist()
    mflops = [fsrcnn_branch_mflops(d, model.patch_size, model.scale) for d in FSRCNN_WIDTHS]
    flops = sum(c * f for c, f in zip(counts, mflops))
    flops_hard = len(ids) * mflops[2]
    t_cls, t_hard = statistics.median(times["classsr"]), statistics.median(times["hard"])
    return {"counts": counts, "n": len(ids), "flop_ratio": flops / flops_hard,
            "ms_classsr": t_cls * 1e3, "ms_hard": t_hard * 1e3, "time_ratio": t_cls / t_hard}


def format_line(r: dict, size: int, official: bool) -> str:
    over = r["time_ratio"] / r["flop_ratio"]
    c = r["counts"]
    line = (f"ClassSR-FSRCNN x4, {size}x{size} LR{'' if official else ' (random weights)'}, "
            f"{torch.get_num_threads()} thread(s): "
            f"classes {c[0]}/{c[1]}/{c[2]} of {r['n']} sub-images; "
            f"FLOPs saved {100 * (1 - r['flop_ratio']):.1f} %; "
            f"time saved {100 * (1 - r['time_ratio']):.1f} % "
            f"({r['ms_classsr']:.0f} ms vs {r['ms_hard']:.0f} ms all in the largest branch); "
            f"time ratio {r['time_ratio']:.3f} / FLOP ratio {r['flop_ratio']:.3f} = {over:.2f}x "
            f"({'within' if over <= 1.25 else 'ABOVE'} the 1.25x target)")
    load, cores = _load(), os.cpu_count() or 1
    if load is not None and load > cores and torch.get_num_threads() > 1:
        # OpenMP threads spin at every barrier; with the cores oversubscribed, ClassSR's three
        # smaller branch calls (three times the parallel regions) suffer most.
        line += (f" [load average {load:.1f} on {cores} cores: wall times are distorted; "
                 "compare with --threads 1 or OMP_WAIT_POLICY=PASSIVE]")
    return line


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sr_ops.bench.classsr_report", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=384, help="LR height and width (default 384)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-blur", action="store_true", help="keep the whole image textured")
    args = parser.parse_args(argv)
    if args.size < 32:
        parser.error("--size must be at least 32 (one sub-image)")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, official = build_model()
    result = measure(model, test_image(args.size, blur=not args.no_blur), repeats=max(args.repeats, 1))
    print(format_line(result, args.size, official))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

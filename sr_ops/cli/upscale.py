"""`sr-ops upscale IN OUT --model NAME --scale S`: upscale a file or a folder of images.

Each image: read (8/16-bit, grey, alpha kept aside) -> the model, tiled (and
self-ensembled with --ensemble) -> alpha upscaled with bicubic -> written atomically in
the input's form. Outputs that exist are skipped unless --overwrite, so a run that was
interrupted (or a torchrun rank that crashed) is finished by running it again.
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sr_ops import distributed
from sr_ops.cli.progress import Progress
from sr_ops.io import IMAGE_SUFFIXES, ImageReadError, Picture, load_picture, quantise_into, save_picture


class UsageError(Exception):
    """A mistake the person running the command can fix; printed as one line, exit 2."""


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def build_model(name: str, scale: int, checkpoint: str | None, **options):
    """The registry's model (with the model's own ``options``), or UsageError: unknown
    name (lists them), missing checkpoint, a scale, checkpoint or option the model does
    not take."""
    from sr_ops import models

    names = models.available()
    if name not in names:
        raise UsageError(f"unknown model {name!r}; available: {', '.join(names)}")
    # A TensorFlow checkpoint is named by its prefix (MZSR's `.../Pretrained`), not a file.
    if checkpoint is not None and not (Path(checkpoint).is_file() or Path(checkpoint + ".index").is_file()):
        raise UsageError(f"checkpoint not found: {checkpoint}")
    try:
        return models.build(name, scale, checkpoint, **options)
    except Exception as exc:  # noqa: BLE001 (a corrupt checkpoint fails in many ways: pickle, EOF, struct, ...)
        reason = one_line(exc)
        if type(exc).__name__ not in reason and not (checkpoint and checkpoint in reason):
            reason = f"{type(exc).__name__}: {reason}"  # the loader's own errors name the file
        source = f" from {checkpoint}" if checkpoint and checkpoint not in reason else ""
        raise UsageError(f"cannot build {name!r} for scale {scale}{source}: {reason}") from None


def check_device(device: str) -> None:
    """UsageError for a device string torch cannot parse or a GPU that is not there."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device must be cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA GPU is available to this torch")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu, cuda or cuda:N, got {device!r}")


def model_fn(model: torch.nn.Module, ensemble: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    if not ensemble:
        return model
    from sr_ops.ensemble import self_ensemble

    return lambda t: self_ensemble(model, t)


def plan(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs, sorted by input. A folder maps to a folder (same file
    names); a file maps to OUT itself when OUT has an image suffix, else into OUT/."""
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not p.name.startswith("."))
        if not files:
            raise UsageError(f"no PNG/JPEG images in {src}")
        if dst.exists() and not dst.is_dir():
            raise UsageError(f"output must be a folder when the input is one: {dst} is a file")
        if dst.resolve() == src.resolve():
            raise UsageError("output folder must differ from the input folder (outputs keep the input names)")
        return [(p, dst / p.name) for p in files]
    if not src.exists():
        raise UsageError(f"input not found: {src}")
    if dst.suffix.lower() in IMAGE_SUFFIXES and not dst.is_dir():
        out = dst
    else:
        out = dst / src.name
    if out.resolve() == src.resolve():
        raise UsageError(f"output {out} would overwrite the input")
    return [(src, out)]


# Memory the budget keeps back for what is not measured: the interpreter's own
# allocations while an image is in flight, allocator slack.
_SLACK = 16 * 2**20


def upscale_picture(fn, pic: Picture, scale: int, device: str, tile: int | None, overlap: int,
                    max_memory: int | None, progress: Callable[[int, int], None] | None = None,
                    jpeg: bool = False) -> Picture:
    """The model on the colour planes, bicubic on alpha, each tiled and quantised band by
    band straight into the output's integer samples (same grey, bits and alpha): no
    float copy of either image exists whole.

    ``max_memory`` (bytes) covers the input's and output's samples, the encoder's copy
    when ``jpeg`` (Pillow holds 4 bytes a pixel), and everything the tiles take."""
    from sr_ops.imresize import imresize
    from sr_ops.tiled import tiled_stream

    h, w = pic.size
    out = np.empty((scale * h, scale * w, pic.samples.shape[2]), pic.samples.dtype)
    budget = None
    if max_memory is not None:
        held = pic.samples.nbytes + out.nbytes + (4 * out.shape[0] * out.shape[1] if jpeg else 0)
        budget = max_memory - held - _SLACK
        if budget <= 0:
            raise ValueError(f"--max-memory {max_memory / 2**20:.3g} MiB cannot hold this image: its input and "
                             f"output samples alone take {(held + _SLACK) / 2**20:.4g} MiB")
    dev = torch.device(device)
    ncolour = 1 if pic.grey else 3

    def write_colour(row: int, rows: torch.Tensor) -> None:
        planes = rows[0].clamp(0, 1)
        quantise_into(out[row:row + planes.shape[1], :, :ncolour], planes.mean(0, keepdim=True) if pic.grey else planes)

    def write_alpha(row: int, rows: torch.Tensor) -> None:
        quantise_into(out[row:row + rows.shape[2], :, -1:], rows[0])

    # align=8: core boundaries suit models that pixel-unshuffle by up to 8 (RT4KSR by 2)
    used = tiled_stream(fn, lambda y0, y1, x0, x1: pic.colour(y0, y1, x0, x1)[None].to(dev), (1, 3, h, w), scale,
                        write_colour, tile, overlap, budget, align=8, device=dev, progress=progress)
    if pic.has_alpha:  # bicubic's radius is 2 pixels: tiles of the same size are exact
        tiled_stream(lambda t: imresize(t, scale), lambda y0, y1, x0, x1: pic.alpha_tile(y0, y1, x0, x1)[None],
                     (1, 1, h, w), scale, write_alpha, used, overlap, align=8)
    return Picture(out)


def run(args) -> int:
    try:
        if args.scale < 1:
            raise UsageError(f"--scale must be >= 1, got {args.scale}")
        if args.overlap < 0:
            raise UsageError(f"--overlap must be >= 0, got {args.overlap}")
        if args.max_memory is not None and not (math.isfinite(args.max_memory) and args.max_memory > 0):
            raise UsageError(f"--max-memory must be a positive number of MiB, got {args.max_memory}")
        if args.tile is not None and args.tile < max(2 * args.overlap, 1):
            raise UsageError(f"--tile must be at least 2 * --overlap ({2 * args.overlap}), got {args.tile}")
        check_device(args.device)
        jobs = plan(Path(args.input), Path(args.output))
        model = build_model(args.model, args.scale, args.checkpoint)
        for _, out in jobs:
            out.parent.mkdir(parents=True, exist_ok=True)
        for folder in sorted({out.parent for _, out in jobs}):
            if not os.access(folder, os.W_OK | os.X_OK):  # before any image is computed
                raise UsageError(f"output folder {folder} is not writable")
    except (UsageError, OSError) as exc:
        print(f"sr-ops: {one_line(exc)}", file=sys.stderr)
        return 2

    group = distributed.setup(args.device)
    try:
        return _work(args, jobs, model, group)
    finally:
        group.close()


def _work(args, jobs, model, group: distributed.Group) -> int:
    t0 = time.perf_counter()
    model = model.to(group.device)
    fn = model_fn(model, args.ensemble)
    max_memory = None if args.max_memory is None else round(args.max_memory * 2**20)
    mine = distributed.shard(jobs, group.rank, group.world)
    todo = [(src, dst) for src, dst in mine if args.overwrite or not dst.exists()]
    written, failed = 0, 0
    progress = Progress(len(todo), enabled=not args.quiet and group.rank == 0)
    for src, dst in todo:
        progress.start(src.name)
        try:
            pic = load_picture(src)
            out = upscale_picture(fn, pic, args.scale, group.device, args.tile, args.overlap, max_memory,
                                  progress.tile, jpeg=dst.suffix.lower() != ".png")
            del pic
        except (ImageReadError, ValueError) as exc:
            print(f"sr-ops: {one_line(exc)}", file=sys.stderr)
            failed += 1
        else:
            try:
                save_picture(dst, out)
            except OSError as exc:  # unwritable folder, disk full: this image fails, the others go on
                print(f"sr-ops: cannot write {dst}: {exc.strerror or one_line(exc)}", file=sys.stderr)
                failed += 1
            else:
                written += 1
        progress.finish()
    progress.close()
    written, skipped, failed, ranks = group.sum([written, len(mine) - len(todo), failed, 1])
    if group.rank == 0:
        print(f"sr-ops upscale: {written} written, {skipped} already done, {failed} failed "
              f"({ranks} process{'es' if ranks > 1 else ''}, {time.perf_counter() - t0:.1f} s)")
    return 2 if failed else 0


def add_parser(sub) -> None:
    p = sub.add_parser("upscale", help="upscale an image or a folder of images (PNG/JPEG)")
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument("output", help="output file (for one input file) or folder")
    p.add_argument("--model", required=True, help="model name (sr_ops.models.available())")
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--checkpoint", default=None, help="weights file (default: random initialisation)")
    p.add_argument("--tile", type=int, default=None, help="largest tile side in input pixels (default 512)")
    p.add_argument("--overlap", type=int, default=16, help="context pixels around each tile (default 16)")
    p.add_argument("--max-memory", type=float, default=None, metavar="MB",
                   help="pick the tile so that upscaling one image (its input, output and tiles) "
                        "adds at most this many MiB to the process")
    p.add_argument("--ensemble", action="store_true", help="x8 flip/rotation self-ensemble")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="redo images whose output exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)

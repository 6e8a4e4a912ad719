"""Image file helpers shared by tests, models and the CLI.

``read_image`` gives every caller plain RGB. The CLI uses ``load_picture`` /
``save_picture``, which keep what an SR model does not see: the bit depth (8 or 16),
whether the file was grey, and its alpha channel, so an upscaled file comes back in the
form it went in. ``save_picture`` writes atomically (temporary file in the same folder,
then ``os.replace``): a crash never leaves a half-written image under the final name.
"""

from __future__ import annotations

import glob
import os
import tempfile
import time
from io import BytesIO
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sr_ops import png16

__all__ = ["ImageReadError", "Picture", "IMAGE_SUFFIXES", "load_picture", "read_image", "save_picture",
           "to_uint8"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_image(path: str | PathLike) -> torch.Tensor:
    """Read an image file as a float32 tensor of shape (3, H, W) in [0, 1].

    Greyscale, palette and RGBA files are converted to RGB (alpha dropped), so
    every caller sees three channels. Raises ImageReadError (a ValueError) naming the file
    when it is missing, truncated or not an image.
    """
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__
        raise ImageReadError(f"cannot read image {path}: {reason}") from None
    return torch.from_numpy(rgb / 255.0).permute(2, 0, 1).contiguous()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Quantise an image in [0, 1] to uint8 levels, any shape.

    Values are clamped to [0, 1] and scaled by 255, then rounded half away from
    zero as MATLAB's ``im2uint8`` does (torch.round would round half to even);
    for the non-negative values left after clamping that is ``floor(v + 0.5)``.
    NaN maps to 0.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {_describe(x)}")
    # Half precision cannot represent v + 0.5 exactly near 255.
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    x = torch.nan_to_num(x, nan=0.0).clamp(0.0, 1.0)
    return torch.floor(x * 255.0 + 0.5).to(torch.uint8)


def _describe(x: object) -> str:
    return f"tensor of dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__


class ImageReadError(ValueError):
    """An image file that cannot be read; the message names the file and the reason."""


@dataclass
class Picture:
    """An image as the CLI handles it.

    rgb: (3, H, W) float32 in [0, 1] (grey files replicated to three channels);
    alpha: (1, H, W) float32 in [0, 1] or None; grey: the file had one colour channel;
    bits: 8 or 16, the file's sample depth.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None = None
    grey: bool = False
    bits: int = 8


def _from_array(arr: np.ndarray, bits: int) -> Picture:
    """(H, W, C) integer samples, C = 1..4 -> Picture."""
    x = torch.from_numpy(arr.astype(np.float32) / (2**bits - 1)).permute(2, 0, 1).contiguous()
    grey = x.shape[0] <= 2
    colour = x[:1].expand(3, -1, -1).contiguous() if grey else x[:3]
    alpha = x[-1:].clone() if x.shape[0] in (2, 4) else None
    return Picture(colour.contiguous(), alpha, grey, bits)


def load_picture(path: str | PathLike) -> Picture:
    """Read a PNG or JPEG (8 or 16 bit; grey, grey+alpha, palette, RGB, RGBA) as a Picture.

    Raises ImageReadError (a ValueError) naming the file when it is missing or undecodable.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc.strerror or exc}") from None
    try:
        if png16.is_png16(data[:33]):
            return _from_array(png16.read_png16(data), 16)
        with Image.open(BytesIO(data)) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img).astype(np.int64).clip(0, 65535).astype(np.uint16)
                return _from_array(arr[:, :, None], 16)
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif img.mode == "1":
                img = img.convert("L")
            elif img.mode not in ("L", "LA", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in img.mode else "RGB")
            arr = np.asarray(img)
    except UnidentifiedImageError:
        raise ImageReadError(f"cannot read image {path}: not a PNG/JPEG file Pillow can decode") from None
    except Image.DecompressionBombError as exc:  # an Exception, not an OSError
        raise ImageReadError(f"cannot read image {path}: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None
    return _from_array(arr if arr.ndim == 3 else arr[:, :, None], 8)


def _quantise(x: torch.Tensor, bits: int) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, C) uint8/uint16, rounding half up."""
    top = 2**bits - 1
    x = torch.nan_to_num(x.detach().cpu().double(), nan=0.0).clamp(0, 1)
    q = torch.floor(x * top + 0.5).permute(1, 2, 0).numpy()
    return q.astype(np.uint16 if bits == 16 else np.uint8)


def _encode(f, pic: Picture, fmt: str) -> None:
    """Write ``pic`` in ``fmt`` ("PNG" or "JPEG") to the open binary file ``f``."""
    colour = pic.rgb.mean(0, keepdim=True) if pic.grey else pic.rgb
    planes = colour if pic.alpha is None or fmt == "JPEG" else torch.cat([colour, pic.alpha])
    bits = 8 if fmt == "JPEG" else pic.bits
    arr = _quantise(planes, bits)
    if bits == 16:
        png16.write_png16(f, arr)
        return
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    img = Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode=mode)
    img.save(f, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def save_picture(path: str | PathLike, pic: Picture) -> None:
    """Write ``pic`` to ``path`` (format from the suffix: .png, .jpg/.jpeg) atomically.

    JPEG keeps neither alpha nor 16 bits (it has neither); PNG keeps both. The data go
    to a hidden temporary file beside ``path``, flushed to disk, then renamed over
    ``path``; on any error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"output path must end in one of {IMAGE_SUFFIXES}, got {path}")
    fmt = "PNG" if suffix == ".png" else "JPEG"
    # The writer's pid is in the name, so that a later save can tell a crashed run's
    # leftovers (its process is gone) from another live process's file.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            _encode(f, pic, fmt)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _remove_stale_temporaries(path)


def _remove_stale_temporaries(path: Path, untagged_age_s: float = 3600.0) -> None:
    """Deletes ``.NAME.<pid>.<random>.tmp`` files beside ``path`` whose writer is no longer
    running (a run killed mid-save), and untagged ``.NAME.<random>.tmp`` ones (older
    versions) more than an hour old."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        middle = tmp.name[len(path.name) + 2:-len(".tmp")]
        pid, _, rest = middle.partition(".")
        try:
            if pid.isdigit() and rest:
                if _alive(int(pid)):
                    continue
            elif time.time() - tmp.stat().st_mtime < untagged_age_s:
                continue
            tmp.unlink()
        except OSError:  # gone already, or not ours to remove: leave it
            pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

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
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass
from io import BytesIO
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageReadError", "Picture", "IMAGE_SUFFIXES", "load_picture", "read_image", "quantise_into",
           "save_picture", "to_uint8", "write_png"]

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
    """An image as the CLI handles it: the file's integer samples, never a float copy of
    the whole image (tiles are converted on demand with ``colour`` / ``alpha_tile``).

    samples: (H, W, C) uint8 or uint16, C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
    """

    samples: np.ndarray

    def __post_init__(self) -> None:
        a = self.samples
        if not isinstance(a, np.ndarray) or a.dtype not in (np.uint8, np.uint16) or a.ndim != 3 \
                or a.shape[2] not in (1, 2, 3, 4):
            got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"samples must be a uint8/uint16 (H, W, 1..4) array, got {got}")

    bits = property(lambda self: 16 if self.samples.dtype == np.uint16 else 8, doc="8 or 16")
    grey = property(lambda self: self.samples.shape[2] <= 2, doc="the file had one colour channel")
    has_alpha = property(lambda self: self.samples.shape[2] in (2, 4))
    size = property(lambda self: self.samples.shape[:2], doc="(H, W)")

    def colour(self, y0: int = 0, y1: int | None = None, x0: int = 0, x1: int | None = None) -> torch.Tensor:
        """Rows [y0, y1), columns [x0, x1) as float32 RGB (3, h, w) in [0, 1] (grey replicated)."""
        x = self._planes(self.samples[y0:y1, x0:x1, :1 if self.grey else 3])
        return (x.expand(3, -1, -1) if self.grey else x).contiguous()

    def alpha_tile(self, y0: int = 0, y1: int | None = None, x0: int = 0, x1: int | None = None) -> torch.Tensor:
        """Rows [y0, y1), columns [x0, x1) of the alpha channel as float32 (1, h, w) in [0, 1]."""
        return self._planes(self.samples[y0:y1, x0:x1, -1:]).contiguous()

    def _planes(self, part: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(part.astype(np.float32)).div_(2**self.bits - 1).permute(2, 0, 1)

    @property
    def rgb(self) -> torch.Tensor:
        """The whole image as float32 RGB (3, H, W) in [0, 1]."""
        return self.colour()

    @property
    def alpha(self) -> torch.Tensor | None:
        """The whole alpha channel as float32 (1, H, W) in [0, 1], or None."""
        return self.alpha_tile() if self.has_alpha else None

    @classmethod
    def from_float(cls, rgb: torch.Tensor, alpha: torch.Tensor | None = None, grey: bool = False,
                   bits: int = 8) -> "Picture":
        """From float (3, H, W) colour (grey: their mean is kept) and optional (1, H, W) alpha
        in [0, 1], quantised to ``bits`` (8 or 16) rounding half up; NaN maps to 0."""
        if bits not in (8, 16):
            raise ValueError(f"bits must be 8 or 16, got {bits!r}")
        planes = rgb.mean(0, keepdim=True) if grey else rgb
        if alpha is not None:
            planes = torch.cat([planes, alpha])
        out = np.empty((*planes.shape[1:], planes.shape[0]), np.uint16 if bits == 16 else np.uint8)
        quantise_into(out, planes)
        return cls(out)


def quantise_into(out: np.ndarray, x: torch.Tensor, rows_per_step: int = 64) -> None:
    """Write float (C, n, W) in [0, 1] into ``out`` (n, W, C) uint8/uint16: clamped,
    scaled, rounded half up (exactly, in float64), NaN as 0. Works ``rows_per_step`` rows
    at a time, so the float64 temporaries stay small whatever the image size."""
    top = 2**16 - 1 if out.dtype == np.uint16 else 2**8 - 1
    for r in range(0, x.shape[1], rows_per_step):
        part = torch.nan_to_num(x[:, r:r + rows_per_step].detach().cpu().double(), nan=0.0).clamp_(0, 1)
        out[r:r + rows_per_step] = part.mul_(top).add_(0.5).floor_().permute(1, 2, 0).numpy()


def _png_depth(head: bytes) -> int | None:
    """The bit depth in a PNG's header, None if these bytes do not start a PNG."""
    if len(head) < 29 or not head.startswith(b"\x89PNG\r\n\x1a\n") or head[12:16] != b"IHDR":
        return None
    return head[24]


def _read_png16(data: bytes, path: Path) -> np.ndarray:
    """A 16-bit PNG (any colour type, interlaced or not) as uint16 (H, W, C), by pypng:
    Pillow reads 16-bit RGB as 8-bit."""
    width, height = struct.unpack(">II", data[16:24])
    if width * height > 2 * Image.MAX_IMAGE_PIXELS:  # Pillow's decompression-bomb rule
        raise ImageReadError(f"cannot read image {path}: {width * height} pixels is over the "
                             f"decompression-bomb limit of {2 * Image.MAX_IMAGE_PIXELS}")
    import png  # imported here: `import sr_ops` must not need pypng (a GPU image may lack it)

    try:
        w, h, rows, info = png.Reader(bytes=data).asDirect()
        planes = info["planes"]
        out = np.empty((h, w * planes), np.uint16)
        n = 0
        for n, row in enumerate(rows, 1):
            out[n - 1] = row
    except png.Error as exc:  # pypng's own (format, chunk, protocol) errors
        raise ValueError(" ".join(str(exc).split()) or type(exc).__name__) from None
    if n != h:
        raise ValueError("truncated PNG data")
    return out.reshape(h, w, planes)


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
        if _png_depth(data[:29]) == 16:
            return Picture(_read_png16(data, path))
        with Image.open(BytesIO(data)) as img:
            img.load()
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
    except (OSError, ValueError, SyntaxError, zlib.error) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ImageReadError(f"cannot read image {path}: {reason}") from None
    return Picture(arr if arr.ndim == 3 else arr[:, :, None])


def write_png(f, samples: np.ndarray) -> None:
    """Encode uint8/uint16 (H, W, 1..4) samples as a PNG into the open binary file ``f``,
    a row at a time (pypng), so no copy of the image is made."""
    import png

    h, w, c = samples.shape
    bits = 16 if samples.dtype == np.uint16 else 8
    writer = png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=bits, compression=6)
    big = samples.dtype.newbyteorder(">")
    writer.write_packed(f, (row.astype(big).tobytes() if bits == 16 else row.tobytes() for row in samples))


def _encode(f, pic: Picture, fmt: str) -> None:
    """Write ``pic`` in ``fmt`` ("PNG" or "JPEG") to the open binary file ``f``."""
    if fmt == "PNG":
        write_png(f, pic.samples)
        return
    colour = pic.samples[:, :, :1 if pic.grey else 3]
    if pic.bits == 16:  # round(v / 257), the nearest 8-bit level, a band of rows at a time
        eight = np.empty(colour.shape, np.uint8)
        for r in range(0, colour.shape[0], 256):
            eight[r:r + 256] = (colour[r:r + 256].astype(np.uint32) * 2 + 257) // 514
        colour = eight
    img = Image.fromarray(colour[:, :, 0] if pic.grey else np.ascontiguousarray(colour),
                          mode="L" if pic.grey else "RGB")
    img.save(f, format="JPEG", quality=95)


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

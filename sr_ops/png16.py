"""16-bit PNG read/write in numpy (grey, grey+alpha, RGB, RGBA).

Pillow reads 16-bit RGB(A) PNGs as 8-bit and cannot write them, so ``sr_ops.io`` uses
this small codec for every 16-bit PNG. Reading handles all five row filters (Average and
Paeth rows are undone pixel by pixel in Python: slow on large files written by other
tools, fine for the SR-sized images this is for); interlaced files are refused.
Writing uses the Up filter on every row, which undoes without a per-pixel loop.
"""
from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

__all__ = ["is_png16", "read_png16", "write_png16"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}  # colour type -> samples per pixel
_COLOUR_TYPE = {c: t for t, c in _CHANNELS.items()}


def _header(data: bytes) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit depth, colour type, interlace) of a PNG, None if not a PNG."""
    if len(data) < 33 or not data.startswith(_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return w, h, depth, ctype, interlace


def is_png16(head: bytes) -> bool:
    """Whether these first bytes of a file start a 16-bit PNG."""
    info = _header(head)
    return info is not None and info[2] == 16


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    rows = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        row = np.frombuffer(raw, np.uint8, stride, start + 1).copy()
        if kind == 1:  # Sub: running sum of pixels, each byte lane mod 256
            row = (row.reshape(-1, bpp).cumsum(axis=0, dtype=np.uint64) % 256).astype(np.uint8).ravel()
        elif kind == 2:  # Up
            row += prev
        elif kind in (3, 4):
            row = _unfilter_sequential(row, prev, bpp, kind)
        elif kind != 0:
            raise ValueError(f"bad PNG row filter {kind}")
        rows[y] = row
        prev = rows[y]
    return rows


def _unfilter_sequential(row: np.ndarray, prev: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    cur, up = bytearray(row.tobytes()), prev.tobytes()
    for i in range(len(cur)):
        left = cur[i - bpp] if i >= bpp else 0
        if kind == 3:
            pred = (left + up[i]) >> 1
        else:  # Paeth
            upleft = up[i - bpp] if i >= bpp else 0
            p = left + up[i] - upleft
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - upleft)
            pred = left if pa <= pb and pa <= pc else (up[i] if pb <= pc else upleft)
        cur[i] = (cur[i] + pred) & 0xFF
    return np.frombuffer(bytes(cur), np.uint8)


def read_png16(data: bytes) -> np.ndarray:
    """Decode a 16-bit PNG (bytes) to uint16 (H, W, C), C = 1, 2, 3 or 4."""
    info = _header(data)
    if info is None:
        raise ValueError("not a PNG file")
    width, height, depth, ctype, interlace = info
    if depth != 16 or ctype not in _CHANNELS:
        raise ValueError(f"not a 16-bit grey/RGB(A) PNG (bit depth {depth}, colour type {ctype})")
    if interlace:
        raise ValueError("interlaced 16-bit PNGs are not supported")
    pos, idat = 8, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    channels = _CHANNELS[ctype]
    stride = width * channels * 2
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise ValueError(f"corrupt PNG data ({exc})") from None
    if len(raw) < height * (stride + 1):
        raise ValueError("truncated PNG data")
    rows = _unfilter(raw, height, stride, channels * 2)
    return rows.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def write_png16(f: BinaryIO, image: np.ndarray) -> None:
    """Encode uint16 (H, W) or (H, W, C), C = 1..4, as a 16-bit PNG into ``f``."""
    if image.dtype != np.uint16:
        raise TypeError(f"image must be uint16, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in _COLOUR_TYPE:
        raise ValueError(f"image must be (H, W) or (H, W, 1..4), got {image.shape}")
    height, width, channels = image.shape
    rows = np.ascontiguousarray(image.astype(">u2")).view(np.uint8).reshape(height, -1)
    up = rows.copy()
    up[1:] -= rows[:-1]  # the Up filter, mod 256 by uint8 wrap-around
    raw = np.concatenate([np.full((height, 1), 2, np.uint8), up], axis=1).tobytes()
    f.write(_SIGNATURE)
    f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, _COLOUR_TYPE[channels], 0, 0, 0)))
    f.write(_chunk(b"IDAT", zlib.compress(raw, 6)))
    f.write(_chunk(b"IEND", b""))

"""sr_ops.io pictures: 8/16-bit, grey, alpha, palette, JPEG; atomic writes; read errors."""
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from sr_ops import io


def write16(path, arr):
    with open(path, "wb") as f:
        io.write_png(f, arr)


def rand_u(shape, bits, rng):
    return rng.integers(0, 2**bits, size=shape, dtype=np.uint16 if bits == 16 else np.uint8)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png16_roundtrip_through_picture(tmp_path, seed, channels):
    rng = np.random.default_rng(seed)
    arr = rand_u((7, 11, channels), 16, rng)
    path = tmp_path / "a.png"
    write16(path, arr)
    pic = io.load_picture(path)
    assert pic.bits == 16 and pic.grey == (channels <= 2) and (pic.alpha is not None) == (channels in (2, 4))
    assert pic.rgb.shape == (3, 7, 11)
    io.save_picture(tmp_path / "b.png", pic)
    back = io.load_picture(tmp_path / "b.png").samples
    assert back.dtype == np.uint16 and np.array_equal(back, arr)
    import png  # an outside decoder agrees on what was written

    w, h, rows, info = png.Reader(filename=str(tmp_path / "b.png")).asDirect()
    assert info["bitdepth"] == 16 and np.array_equal(np.vstack(list(rows)).reshape(arr.shape), arr)


def _filtered_png16(arr: np.ndarray, filters) -> bytes:
    """A 16-bit RGB PNG whose rows use the given filter types (written out by hand)."""
    h, w, c = arr.shape
    rows = arr.astype(">u2").view(np.uint8).reshape(h, -1).astype(int)
    bpp, raw = 2 * c, b""
    for y in range(h):
        cur, up = rows[y], rows[y - 1] if y else np.zeros_like(rows[0])
        ft = filters[y % len(filters)]
        out = []
        for i in range(len(cur)):
            a = cur[i - bpp] if i >= bpp else 0
            b, cc = up[i], (up[i - bpp] if i >= bpp else 0)
            if ft == 0:
                pred = 0
            elif ft == 1:
                pred = a
            elif ft == 2:
                pred = b
            elif ft == 3:
                pred = (a + b) // 2
            else:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            out.append((cur[i] - pred) % 256)
        raw += bytes([ft]) + bytes(out)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_png16_reads_every_row_filter(tmp_path, seed):
    rng = np.random.default_rng(seed)
    arr = rand_u((10, 6, 3), 16, rng)
    data = _filtered_png16(arr, [0, 1, 2, 3, 4])
    path = tmp_path / "f.png"
    path.write_bytes(data)
    assert np.array_equal(io.load_picture(path).samples, arr)
    with Image.open(__import__("io").BytesIO(data)) as img:  # Pillow agrees on the top byte
        assert np.array_equal(np.asarray(img.convert("RGB")), (arr >> 8).astype(np.uint8))


@pytest.mark.parametrize("mode,channels", [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)])
def test_8bit_modes_roundtrip(tmp_path, seed, mode, channels):
    rng = np.random.default_rng(seed)
    arr = rand_u((9, 5, channels), 8, rng)
    Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode=mode).save(tmp_path / "a.png")
    pic = io.load_picture(tmp_path / "a.png")
    assert pic.bits == 8 and pic.grey == (channels <= 2)
    if pic.grey:
        assert torch.equal(pic.rgb[0], pic.rgb[1]) and torch.equal(pic.rgb[0], pic.rgb[2])
    io.save_picture(tmp_path / "b.png", pic)
    with Image.open(tmp_path / "b.png") as img:
        assert img.mode == mode
        assert np.array_equal(np.asarray(img).reshape(9, 5, channels), arr)


def test_pillow_16bit_grey_and_palette(tmp_path, seed):
    rng = np.random.default_rng(seed)
    grey = rand_u((6, 8), 16, rng)
    Image.fromarray(grey).save(tmp_path / "g.png")  # Pillow's own I;16 writer
    pic = io.load_picture(tmp_path / "g.png")
    assert pic.bits == 16 and pic.grey
    assert torch.allclose(pic.rgb[0] * 65535, torch.from_numpy(grey.astype(np.float32)), atol=0.02)
    pal = Image.fromarray(rand_u((5, 7), 8, rng) % 4).convert("P")
    pal.save(tmp_path / "p.png")
    assert io.load_picture(tmp_path / "p.png").rgb.shape == (3, 5, 7)


def test_jpeg_drops_alpha_and_16_bits(tmp_path, seed):
    x = torch.rand(3, 16, 16) * 0.2 + 0.4
    io.save_picture(tmp_path / "a.jpg", io.Picture.from_float(x, torch.rand(1, 16, 16), False, 16))
    pic = io.load_picture(tmp_path / "a.jpg")
    assert pic.bits == 8 and pic.alpha is None and (pic.rgb - x).abs().mean() < 0.05


def test_atomic_write_leaves_nothing_on_crash(tmp_path, monkeypatch, seed):
    pic = io.Picture.from_float(torch.rand(3, 20, 20))
    target = tmp_path / "out.png"
    io.save_picture(target, pic)
    before = target.read_bytes()

    def crash(f, pic, fmt):
        f.write(b"\x89PNG half an image")
        raise RuntimeError("simulated crash mid-write")

    monkeypatch.setattr(io, "_encode", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        io.save_picture(target, io.Picture.from_float(torch.rand(3, 20, 20)))
    with pytest.raises(RuntimeError, match="simulated"):
        io.save_picture(tmp_path / "new.png", pic)
    assert target.read_bytes() == before  # the old file is untouched, never half-replaced
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # no new file, no temporary left


def test_save_removes_a_killed_runs_temporaries(tmp_path):
    import subprocess
    import time

    # A run killed mid-save (kill -9) leaves .NAME.<pid>.<random>.tmp; the next save of NAME
    # removes it once that pid is gone, but not a live writer's, nor other names' files.
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".out.png.{dead.pid}.k7x2q9zz.tmp"
    live = tmp_path / f".out.png.{os.getppid()}.a1b2c3d4.tmp"
    old_untagged, new_untagged = tmp_path / ".out.png.qwertyui.tmp", tmp_path / ".out.png.asdfghjk.tmp"
    other = tmp_path / f".other.png.{dead.pid}.zzzzzzzz.tmp"
    for f in (stale, live, old_untagged, new_untagged, other):
        f.write_bytes(b"partial")
    hour_ago = time.time() - 2 * 3600
    os.utime(old_untagged, (hour_ago, hour_ago))
    io.save_picture(tmp_path / "out.png", io.Picture.from_float(torch.rand(3, 8, 8)))
    assert sorted(os.listdir(tmp_path)) == sorted(["out.png", live.name, new_untagged.name, other.name])


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(io.ImageReadError, match="bad.png"):
        io.load_picture(bad)
    with pytest.raises(io.ImageReadError, match="missing.png"):
        io.load_picture(tmp_path / "missing.png")
    trunc = tmp_path / "trunc.png"
    write16(tmp_path / "full.png", np.ones((40, 40, 3), np.uint16))
    trunc.write_bytes((tmp_path / "full.png").read_bytes()[:60])
    with pytest.raises(io.ImageReadError, match="trunc.png"):
        io.load_picture(trunc)
    with pytest.raises(ValueError, match="suffix|end in"):
        io.save_picture(tmp_path / "x.gif", io.Picture.from_float(torch.rand(3, 4, 4)))


def test_corrupt_16bit_png_is_one_read_error(tmp_path):
    """pypng's own errors (chunk type, checksum, short chunk) become ImageReadError."""
    full = tmp_path / "full.png"
    write16(full, np.ones((20, 20, 3), np.uint16))
    data = full.read_bytes()
    for name, bad in [("type", data[:40] + b"\x00" * 4 + data[44:]), ("short", data[:50]),
                      ("checksum", data[:33] + data[33:60].replace(b"IDAT", b"IDAX") + data[60:])]:
        (tmp_path / f"{name}.png").write_bytes(bad)
        with pytest.raises(io.ImageReadError, match=f"{name}.png"):
            io.load_picture(tmp_path / f"{name}.png")

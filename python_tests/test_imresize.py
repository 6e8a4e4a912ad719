"""Tests for the MATLAB-exact bicubic imresize.

The acceptance tests compare against low-resolution files that MATLAB's
``imresize`` produced (BasicSR's benchmark copies of Set5/Set14).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_ops.imresize import imresize
from sr_ops.io import read_image, to_uint8

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
DATASETS = ASSETS / "datasets"

# (name, HR folder, MATLAB-made LR folder, scale). For Set5 x4 the LR files sit
# next to their own HR copies (LRbicx4/HR/x12), pixel-identical to GTmod12.
MATLAB_CASES = [
    ("Set5-x2", "Set5/GTmod12", "Set5/LRbicx2", 2),
    ("Set5-x4", "Set5/LRbicx4/HR/x12", "Set5/LRbicx4/LR/x4", 4),
    ("Set14-x4", "Set14/LRbicx4/HR/x12", "Set14/LRbicx4/LR/x4", 4),
]


@lru_cache(maxsize=None)
def _load(path: Path) -> torch.Tensor:
    return read_image(path)


def _pairs(hr_dir: str, lr_dir: str) -> list[tuple[Path, Path]]:
    hr_root, lr_root = DATASETS / hr_dir, DATASETS / lr_dir
    if not hr_root.is_dir() or not lr_root.is_dir():
        pytest.skip(f"MATLAB reference images not found under {DATASETS} (shared assets absent)")
    pairs = [(p, lr_root / p.name) for p in sorted(hr_root.glob("*.png"))]
    assert pairs, f"no PNG files in {hr_root}"
    assert all(lr.is_file() for _, lr in pairs), "HR and LR folders list different images"
    return pairs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,hr_dir,lr_dir,scale", MATLAB_CASES, ids=[c[0] for c in MATLAB_CASES])
def test_matches_matlab_files(name, hr_dir, lr_dir, scale, dtype):
    equal = total = 0
    for hr_path, lr_path in _pairs(hr_dir, lr_dir):
        hr = _load(hr_path).to(dtype)
        ref = to_uint8(_load(lr_path)).to(torch.int16)
        out = to_uint8(imresize(hr, 1 / scale)).to(torch.int16)
        assert out.shape == ref.shape, hr_path.name
        diff = (out - ref).abs()
        assert diff.max() <= 1, f"{hr_path.name}: a pixel is off by {diff.max().item()} levels"
        equal += (diff == 0).sum().item()
        total += diff.numel()
    # MATLAB's own rounding of exact .5 ties leaves a handful of pixels off by one.
    assert equal / total >= 0.999, f"{name}: only {100 * equal / total:.4f}% of pixels match"


def test_output_shapes():
    x = torch.rand(2, 3, 10, 13)
    assert imresize(x, 2).shape == (2, 3, 20, 26)
    assert imresize(x, 4).shape == (2, 3, 40, 52)
    assert imresize(x, 1 / 3).shape == (2, 3, 4, 5)  # ceil, as in MATLAB
    assert imresize(x, (2, 0.5)).shape == (2, 3, 20, 7)
    assert imresize(x, 1.5).shape == (2, 3, 15, 20)


def test_ranks_and_batch_agree():
    x = torch.rand(3, 2, 11, 9, dtype=torch.float64)
    batch = imresize(x, 0.5)
    for i in range(3):
        torch.testing.assert_close(imresize(x[i], 0.5), batch[i], rtol=0, atol=1e-12)
        torch.testing.assert_close(imresize(x[i, 1], 0.5), batch[i, 1], rtol=0, atol=1e-12)
    assert imresize(x[0, 0], 3).shape == (33, 27)


def test_non_contiguous_input():
    base = torch.rand(2, 3, 17, 12, dtype=torch.float64)
    views = [base.transpose(-1, -2), base[:, ::2], base[..., 1:, ::2], base.to(memory_format=torch.channels_last)]
    for view in views:
        expected = imresize(view.contiguous(), 0.5)
        torch.testing.assert_close(imresize(view, 0.5), expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(imresize(view, 2.5), imresize(view.contiguous(), 2.5), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 0.8, 1.7, 2, 4])
def test_constant_image_stays_constant(scale):
    x = torch.full((1, 3, 13, 10), 0.3712, dtype=torch.float64)
    out = imresize(x, scale)
    torch.testing.assert_close(out, torch.full_like(out, 0.3712), rtol=0, atol=1e-12)


def test_scale_one_is_identity():
    x = torch.rand(2, 3, 9, 14)
    assert torch.equal(imresize(x, 1), x)
    assert torch.equal(imresize(x, size=(9, 14)), x)


def test_reproduces_linear_ramps_in_the_interior():
    # Keys' cubic reproduces linear functions, so away from the borders the
    # output equals the ramp evaluated at MATLAB's sampling positions: output
    # j (0-based) sits at (j + 0.5) / scale - 0.5 in input coordinates.
    n = 40
    ramp = torch.arange(n, dtype=torch.float64).expand(3, n)
    for scale in (2.0, 4.0, 0.5):
        out = imresize(ramp, (1, scale))[0]
        j = torch.arange(out.numel(), dtype=torch.float64)
        expected = (j + 0.5) / scale - 0.5
        margin = int(4 * max(scale, 1 / scale))
        torch.testing.assert_close(out[margin:-margin], expected[margin:-margin], rtol=0, atol=1e-12)


def test_downscale_antialias_differs_from_plain():
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    smooth = imresize(x, 0.5)
    plain = imresize(x, 0.5, antialias=False)
    assert smooth.shape == plain.shape
    # The stretched kernel averages more pixels, so the noise variance drops further.
    assert smooth.var() < 0.8 * plain.var()
    # Upscaling has no antialiasing to turn off.
    assert torch.equal(imresize(x, 2), imresize(x, 2, antialias=False))


def test_size_argument():
    x = torch.rand(1, 3, 12, 18, dtype=torch.float64)
    torch.testing.assert_close(imresize(x, size=(24, 36)), imresize(x, 2), rtol=0, atol=1e-12)
    torch.testing.assert_close(imresize(x, size=(3, 9)), imresize(x, (0.25, 0.5)), rtol=0, atol=1e-12)
    assert imresize(x, size=(7, 25)).shape == (1, 3, 7, 25)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_dtypes(dtype):
    x = torch.rand(1, 3, 16, 16)
    out = imresize(x.to(dtype), 0.5)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), imresize(x.to(dtype).float(), 0.5), rtol=0, atol=1e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 40, 30)
    out = imresize(x.cuda(), 0.25)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), imresize(x, 0.25), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(scale=0), "scale"),
        (dict(scale=-2), "scale"),
        (dict(scale=float("nan")), "scale"),
        (dict(scale=(2, 0)), "scale"),
        (dict(scale=(2, 2, 2)), "scale"),
        (dict(scale="2"), "scale"),
        (dict(), "scale or size"),
        (dict(scale=2, size=(4, 4)), "scale or size"),
        (dict(size=(0, 4)), "size"),
        (dict(size=(4.5, 4)), "size"),
        (dict(size=4), "size"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        imresize(torch.rand(3, 8, 8), **kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError, match="floating-point"):
        imresize(torch.zeros(3, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(TypeError, match="Tensor"):
        imresize([[0.0, 1.0]], 2)
    for shape in [(8,), (1, 1, 1, 8, 8)]:
        with pytest.raises(ValueError, match="shape"):
            imresize(torch.rand(shape), 2)
    with pytest.raises(ValueError, match="non-empty"):
        imresize(torch.rand(3, 0, 8), 2)


# ---------------------------------------------------------------- sr_ops.io helpers


def test_to_uint8_rounds_half_up_and_clamps():
    k = torch.arange(255, dtype=torch.float64)
    ties = (k + 0.5) / 255
    assert torch.equal(ties * 255, k + 0.5)  # the ties really are exact
    # MATLAB rounds .5 away from zero; round-half-to-even would give k for even k.
    assert torch.equal(to_uint8(ties), (k + 1).to(torch.uint8))
    assert torch.equal(to_uint8(ties.float()), (k + 1).to(torch.uint8))
    x = torch.tensor([-0.3, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 1.2, float("nan"), float("inf")])
    assert to_uint8(x).tolist() == [0, 0, 0, 1, 255, 255, 0, 255]
    half = to_uint8(torch.tensor([[0.5, 1.0]], dtype=torch.float16))
    assert half.dtype == torch.uint8 and half.tolist() == [[128, 255]]
    with pytest.raises(TypeError, match="floating-point"):
        to_uint8(torch.zeros(3, dtype=torch.uint8))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P"])
def test_read_image_returns_rgb_float(tmp_path, mode):
    rgb = torch.randint(0, 256, (5, 7, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    img = Image.fromarray(rgb.numpy(), "RGB")
    if mode == "L":
        img = img.convert("L")
    elif mode == "RGBA":
        img.putalpha(77)
    elif mode == "P":
        img = img.quantize(colors=16)
    path = tmp_path / f"img_{mode}.png"
    img.save(path)

    out = read_image(path)
    assert out.shape == (3, 5, 7) and out.dtype == torch.float32 and out.is_contiguous()
    levels = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(to_uint8(out), levels)
    if mode == "L":
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    if mode in ("RGB", "RGBA"):
        assert torch.equal(to_uint8(out), rgb.permute(2, 0, 1))

"""sr_ops.tiled: equality with the whole-image result, seam blending, memory bound, errors."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sr_ops
from sr_ops.bench.memory import cpu_peak_supported, peak_bytes
from sr_ops.tiled import tile_spans


def conv_net(scale: int, width: int = 16, depth: int = 3) -> nn.Module:
    """Fully convolutional, zero padded: receptive-field radius depth + 1 input pixels."""
    layers = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    layers += [nn.Conv2d(width, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
    return nn.Sequential(*layers).eval()


@pytest.mark.parametrize("scale,shape,tile,overlap", [
    (2, (2, 3, 45, 61), 16, 8),
    (3, (1, 3, 37, 29), 12, 9),     # odd overlap: ramps on half pixels
    (1, (1, 3, 50, 23), 20, 10),
    (4, (1, 3, 19, 40), 64, 8),     # one tile on one axis
])
def test_equals_whole_image(seed, scale, shape, tile, overlap):
    net = conv_net(scale)  # radius 4 <= overlap / 2
    x = torch.rand(shape)
    with torch.no_grad():
        whole = net(x)
    out = sr_ops.tiled(net, x, scale, tile=tile, overlap=overlap)
    assert out.shape == whole.shape
    assert (out - whole).abs().max().item() < 1e-5


def test_too_small_overlap_is_not_exact(seed):
    """The equality above is not vacuous: context below the receptive field shows."""
    net = conv_net(2)
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        whole = net(x)
    assert (sr_ops.tiled(net, x, 2, tile=12, overlap=2) - whole).abs().max().item() > 1e-4


def test_pixel_unshuffle_model_with_align(seed):
    """RT4KSR unshuffles by 2: with align=2 and enough overlap the tiles match too."""
    from sr_ops import models

    net = models.build("rt4ksr", 2)
    x = torch.rand(1, 3, 70, 36)
    with torch.no_grad():
        whole = net(x)
    out = sr_ops.tiled(net, x, 2, tile=64, overlap=32, align=2)  # 2 x 1 tiles
    assert (out - whole).abs().max().item() < 1e-5


@pytest.mark.parametrize("h,w,tile,overlap", [(31, 47, 10, 5), (64, 9, 16, 7), (13, 13, 4, 0)])
def test_blend_weights_sum_to_one(h, w, tile, overlap):
    """Each tile returns a different constant: every output pixel is a convex mix of
    them (partition of unity), and across a seam the value moves by ramp steps only."""
    calls = []

    def model(t):
        calls.append(t.shape)
        return torch.full((t.shape[0], 3, 2 * t.shape[2], 2 * t.shape[3]), float(len(calls)))

    ones = sr_ops.tiled(lambda t: torch.ones(t.shape[0], 3, 2 * t.shape[2], 2 * t.shape[3]),
                        torch.rand(1, 3, h, w), 2, tile=tile, overlap=overlap)
    assert (ones - 1).abs().max().item() < 1e-6
    out = sr_ops.tiled(model, torch.rand(1, 3, h, w), 2, tile=tile, overlap=overlap)
    assert out.min() >= 1 - 1e-6 and out.max() <= len(calls) + 1e-6
    if overlap:
        # neighbouring pixels differ by at most (tile constants' spread) / ramp width in pixels
        step = (len(calls) - 1) / (2 * overlap) + 1e-5
        assert out.diff(dim=-1).abs().max() <= step and out.diff(dim=-2).abs().max() <= step


def test_spans_cover_and_respect_tile():
    for n, tile, overlap, align in [(100, 30, 8, 1), (257, 64, 16, 8), (5, 64, 16, 8), (33, 16, 8, 2)]:
        spans = tile_spans(n, tile, overlap, align)
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(b == c for (_, b), (c, _) in zip(spans, spans[1:]))
        assert all(a % align == 0 for a, _ in spans)
        assert all(b - a <= tile + align for a, b in spans)


def test_three_dim_input_and_progress(seed):
    net = conv_net(2)
    x = torch.rand(3, 30, 22)
    seen = []
    out = sr_ops.tiled(net, x, 2, tile=16, overlap=8, progress=lambda d, t: seen.append((d, t)))
    with torch.no_grad():
        assert (out - net(x[None])[0]).abs().max().item() < 1e-5
    assert seen == [(k + 1, 4) for k in range(4)]


def _peak_under_max_memory(seed: int) -> None:
    torch.manual_seed(seed)
    net = conv_net(2, width=32)
    x = torch.rand(1, 3, 200, 200)
    budget = 8 * 2**20
    with torch.no_grad():
        whole = net(x)
        whole_peak = peak_bytes(lambda: net(x))
    assert whole_peak > budget  # the image does not fit whole: tiling has work to do
    sr_ops.tiled(net, x, 2, max_memory=budget)  # warm-up: first-call allocations
    kept, tiles = [], []
    peak = peak_bytes(lambda: kept.append(sr_ops.tiled(net, x, 2, max_memory=budget,
                                                       progress=lambda d, t: tiles.append(t))))
    assert peak <= budget, f"peak {peak / 2**20:.1f} MiB over max_memory {budget / 2**20:.1f} MiB"
    assert tiles[-1] > 1
    assert (kept[0] - whole).abs().max().item() < 1e-5


@pytest.mark.skipif(not cpu_peak_supported(), reason="peak RSS is not measurable here (/proc/self/clear_refs)")
def test_peak_memory_under_max_memory(seed):
    # In a fresh process: the resident-set peak also counts the holes ~2000 earlier tests left
    # in the heap (CI once read 8.2 MiB here for the 8 MiB budget).
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    code = (f"import sys; sys.path.insert(0, {str(here)!r}); import test_tiled; "
            f"test_tiled._peak_under_max_memory({seed})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.cuda
def test_peak_cuda_memory_under_max_memory(seed):
    net = conv_net(2, width=64).cuda()
    x = torch.rand(1, 3, 512, 512, device="cuda")
    budget = 48 * 2**20
    with torch.no_grad():
        whole = net(x)
        assert peak_bytes(lambda: net(x), "cuda") > budget
    kept = []
    peak = peak_bytes(lambda: kept.append(sr_ops.tiled(net, x, 2, max_memory=budget)), "cuda")
    assert peak <= budget, f"peak {peak / 2**20:.1f} MiB over max_memory {budget / 2**20:.1f} MiB"
    assert (kept[0] - whole).abs().max().item() < 1e-4  # TF32/cuDNN algorithms differ per shape


def test_errors(seed):
    net = conv_net(2)
    x = torch.rand(1, 3, 20, 20)
    with pytest.raises(ValueError, match="scale"):
        sr_ops.tiled(net, x, 0)
    with pytest.raises(ValueError, match="overlap"):
        sr_ops.tiled(net, x, 2, tile=4, overlap=8)
    with pytest.raises(ValueError, match="max_memory"):
        sr_ops.tiled(net, x, 2, max_memory=1000)
    with pytest.raises(ValueError, match="expected"):
        sr_ops.tiled(lambda t: F.interpolate(t, scale_factor=3), x, 2)
    with pytest.raises(TypeError, match="x must be"):
        sr_ops.tiled(net, torch.ones(1, 3, 4, 4, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="x must be"):
        sr_ops.tiled(net, torch.rand(4, 4), 2)


def test_stream_writes_each_row_once_in_order_and_equals_tiled(seed):
    net = conv_net(2)
    x = torch.rand(1, 3, 75, 41)
    want = sr_ops.tiled(net, x, 2, tile=16, overlap=8)
    got = torch.full_like(want, float("nan"))
    seen = []

    def write(row, rows):
        seen.append((row, rows.shape[2]))
        got[:, :, row:row + rows.shape[2]] = rows

    from sr_ops.tiled import tiled_stream

    used = tiled_stream(net, lambda y0, y1, x0, x1: x[:, :, y0:y1, x0:x1], tuple(x.shape), 2, write,
                        tile=16, overlap=8)
    assert used == 16 and len(seen) == 5  # one band per tile row
    assert [r for r, _ in seen] == [0] + [r + n for r, n in seen[:-1]] and sum(n for _, n in seen) == 150
    assert torch.equal(got, want)


def test_stream_is_public_and_checks_its_shape(seed):
    with pytest.raises(ValueError, match="shape must be a non-empty"):
        sr_ops.tiled_stream(conv_net(2), lambda *a: None, (1, 3, 0, 5), 2, lambda r, rows: None)

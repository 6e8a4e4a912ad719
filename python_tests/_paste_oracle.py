"""The GPU pastes' sum order, written as a loop: each pixel adds its windows in ascending
sequence position into a zero accumulator (float64 for float32/float64, float32 for the
half types), then divides by the coverage once. The CUDA and Triton kernels must match it
bit for bit (the CPU kernel sums by window row first, the reference in index_put_'s order)."""
import torch

from sr_ops.reference.gather_patches import wide


def ascending_paste(src, coords, order, B, H, W, scale=1, mean=False):
    """src (N, C, Q, Q) pasted at scale * coords[order[i]] into (B, C, H, W) of src's dtype."""
    N, C, Q, _ = src.shape
    acc = torch.zeros(B, C, H, W, dtype=wide(src.dtype))
    cnt = torch.zeros(B, 1, H, W, dtype=acc.dtype)
    for i, q in enumerate(order.tolist()):
        b, r, c = coords[q].tolist()
        acc[b, :, scale * r:scale * r + Q, scale * c:scale * c + Q] += src[i].cpu().to(acc.dtype)
        cnt[b, :, scale * r:scale * r + Q, scale * c:scale * c + Q] += 1
    return (acc / cnt.clamp(min=1) if mean else acc).to(src.dtype)


def dense_windows(B, H, W, P, step, generator=None, repeat=1):
    """Every window of a step-`step` grid (rows and cols), each listed `repeat` times, in a
    random order: pixels covered by up to (P / step)**2 * repeat windows."""
    rows, cols = torch.arange(0, H - P + 1, step), torch.arange(0, W - P + 1, step)
    b, r, c = torch.meshgrid(torch.arange(B), rows, cols, indexing="ij")
    coords = torch.stack([b.flatten(), r.flatten(), c.flatten()], 1).repeat(repeat, 1)
    return coords, torch.randperm(coords.shape[0], generator=generator)

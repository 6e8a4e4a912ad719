"""gather_patches the pure-PyTorch way: advanced indexing of the image, index_put_ back."""
from __future__ import annotations

import torch


def crop_index(coords: torch.Tensor, order: torch.Tensor, size: int, scale: int = 1):
    """Index tensors (b (M,1,1), rows (M,size,1), cols (M,1,size)) selecting, for each
    i, the size x size window at (scale*r, scale*c) of image b, (b, r, c) = coords[order[i]]."""
    sel = coords[order]
    ar = torch.arange(size, device=coords.device)
    b = sel[:, 0].view(-1, 1, 1)
    rows = (scale * sel[:, 1]).view(-1, 1, 1) + ar.view(1, -1, 1)
    cols = (scale * sel[:, 2]).view(-1, 1, 1) + ar.view(1, 1, -1)
    return b, rows, cols


def crop(img: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, size: int, scale: int = 1) -> torch.Tensor:
    """(B, C, H', W') -> (M, C, size, size): the windows crop_index selects."""
    b, rows, cols = crop_index(coords, order, size, scale)
    return img.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2).contiguous()


def gather_patches(img: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (M, C, P, P): out[i] = img[b, :, r:r+P, c:c+P], (b, r, c) = coords[order[i]]."""
    return crop(img, coords, order, patch_size)


def wide(dtype: torch.dtype) -> torch.dtype:
    """Paste accumulator: float64 for float32/float64, float32 for half types. Sums of k
    equal values are then exact, so averaging identical overlaps gives the value back."""
    return torch.float64 if dtype in (torch.float32, torch.float64) else torch.float32


def paste_add(src: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, out: torch.Tensor,
              scale: int = 1) -> torch.Tensor:
    """Adds each src[i] (C, Q, Q) into out (B, C, H', W') at (scale*r, scale*c); returns out."""
    b, rows, cols = crop_index(coords, order, src.shape[-1], scale)
    b, rows, cols = torch.broadcast_tensors(b, rows, cols)
    view = out.permute(0, 2, 3, 1)  # shares out's storage, so index_put_ writes into out
    view.index_put_((b, rows, cols), src.permute(0, 2, 3, 1).to(out.dtype), accumulate=True)
    return out


def gather_patches_backward(grad: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, img_size) -> torch.Tensor:
    """Gradient of gather_patches: (M, C, P, P) -> (B, C, H, W), overlaps summed."""
    B, C, H, W = img_size
    return paste_add(grad, coords, order, grad.new_zeros(B, C, H, W, dtype=wide(grad.dtype))).to(grad.dtype)

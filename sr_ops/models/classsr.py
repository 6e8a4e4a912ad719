"""ClassSR (Kong et al., "ClassSR: A General Framework to Accelerate Super-Resolution Networks
by Data Characteristic", CVPR 2021), x4, with FSRCNN or CARN-M branches.

The LR image is cut into 32x32 sub-images with step 28; a small classifier sorts each into
"simple", "medium" or "hard"; each class goes through its own branch (FSRCNN d=16/36/56, or
CARN-M nf=36/52/64), and the SR sub-images are put back with overlaps averaged.

Architecture facts from the official code (XPixelGroup/ClassSR, ``classSR_*_arch.py``):
the classifier ``CondNet`` is a 4x4 stride-4 conv 3 -> 128, three 1x1 convs 128 -> 128 and a
1x1 conv 128 -> 32, LeakyReLU(0.1) between them, then a global average pool and a linear
layer 32 -> 3 (``lastOut``); the class is the argmax.  Parameter names match the released
``ClassSR_FSRCNN.pth`` / ``ClassSR_CARN.pth`` (``classifier.*``, ``net1/2/3.*``).

This implementation runs on the sr_ops patch ops: ``extract_patches`` (a grid that covers the
whole image, so unlike the official test nothing at the right/bottom border is dropped),
``class_dispatch`` (stable sort by class), ``gather_patches`` (each class's sub-images as one
contiguous batch) and ``merge_patches`` (overlaps averaged).  Each branch runs once, on its
class's slice; the official code runs the sub-images one at a time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import sr_ops
from sr_ops.models import register
from sr_ops.models._checkpoints import check_rgb, check_scale, load_strict, read_state_dict
from sr_ops.models.carn import CARNM
from sr_ops.models.fsrcnn import ClassSRFSRCNN

__all__ = ["ClassSR", "Classifier", "build_classsr_carn", "build_classsr_fsrcnn", "fsrcnn_branch_mflops"]

NUM_CLASSES = 3
FSRCNN_WIDTHS = (16, 36, 56)
CARN_WIDTHS = (36, 52, 64)


class Classifier(nn.Module):
    """Sub-images (N, 3, P, P), P divisible by 4 -> class logits (N, 3).

    Every layer after the 4x4 stride-4 conv is pointwise, so CondNet is a chain of GEMMs over
    4x4 pixel blocks (BLAS runs these ~2x faster than 1x1 convs); its last conv and
    ``lastOut`` are affine, so they commute with the average pool and run once per sub-image.
    ``forward_grid`` goes further: sub-images whose corners lie on the image's 4-pixel block
    grid (all of them for step 28 when H, W are multiples of 4) share their blocks' features.
    """

    def __init__(self) -> None:
        super().__init__()
        act = lambda: nn.LeakyReLU(0.1, inplace=True)  # noqa: E731
        self.CondNet = nn.Sequential(nn.Conv2d(3, 128, 4, 4), act(), nn.Conv2d(128, 128, 1), act(),
                                     nn.Conv2d(128, 128, 1), act(), nn.Conv2d(128, 128, 1), act(),
                                     nn.Conv2d(128, 32, 1))
        self.lastOut = nn.Linear(32, NUM_CLASSES)

    @staticmethod
    def _blocks(x: torch.Tensor) -> torch.Tensor:
        """(B, C, 4a, 4b) -> (B*a*b, C*16): each 4x4 block flattened as the first conv reads it."""
        B, C, H, W = x.shape
        return x.reshape(B, C, H // 4, 4, W // 4, 4).permute(0, 2, 4, 1, 3, 5).reshape(-1, C * 16)

    def _trunk(self, blocks: torch.Tensor) -> torch.Tensor:
        """(M, 48) blocks -> (M, 128) features after the fourth conv's LeakyReLU."""
        h = blocks
        for i in range(0, len(self.CondNet) - 1, 2):
            conv = self.CondNet[i]
            h = F.leaky_relu(torch.addmm(conv.bias, h, conv.weight.reshape(conv.out_channels, -1).t()),
                             0.1, inplace=True)
        return h

    def _head(self, pooled: torch.Tensor) -> torch.Tensor:
        last = self.CondNet[-1]
        return self.lastOut(torch.addmm(last.bias, pooled, last.weight.reshape(last.out_channels, -1).t()))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        N, C, P, Q = patches.shape
        if P != Q or P % 4:
            raise ValueError(f"patches must be (N, 3, P, P) with P a multiple of 4, got {tuple(patches.shape)}")
        g = P // 4
        return self._head(self._trunk(self._blocks(patches)).view(N, g * g, -1).mean(dim=1))

    def forward_grid(self, img: torch.Tensor, coords: torch.Tensor, patch_size: int) -> torch.Tensor:
        """Logits (N, 3) of the P x P sub-images of img (B, 3, H, W) at coords (N, 3)."""
        P, g = patch_size, patch_size // 4
        B, _, H, W = img.shape
        aligned = (coords[:, 1] % 4 == 0) & (coords[:, 2] % 4 == 0)
        pooled = img.new_empty(coords.shape[0], self.CondNet[-1].in_channels)
        if bool(aligned.any()):
            feats = self._trunk(self._blocks(img[..., : H - H % 4, : W - W % 4]))
            feats = feats.view(B, H // 4, W // 4, -1)
            idx = aligned.nonzero().squeeze(1)
            b, r, c = coords[idx].unbind(1)
            off = torch.arange(g, device=coords.device)
            rows, cols = (r // 4)[:, None] + off, (c // 4)[:, None] + off
            pooled[idx] = feats[b[:, None, None], rows[:, :, None], cols[:, None, :]].mean(dim=(1, 2))
        if not bool(aligned.all()):
            idx = (~aligned).nonzero().squeeze(1)
            own = coords[idx]
            patches = sr_ops.gather_patches(img, own, torch.arange(own.shape[0], device=own.device), P)
            pooled[idx] = self._trunk(self._blocks(patches)).view(idx.shape[0], g * g, -1).mean(dim=1)
        return self._head(pooled)

    def reference_forward(self, patches: torch.Tensor) -> torch.Tensor:
        """The official layer-by-layer form (convs, then global average pooling)."""
        return self.lastOut(self.CondNet(patches).mean(dim=(2, 3)))


class ClassSR(nn.Module):
    """ClassSR: RGB (B, 3, H, W) in [0, 1] -> (B, 3, sH, sW), any H, W >= 1.

    ``classify(x)`` -> (coords (N, 3) int64 (batch, row, col) of each sub-image, class ids
    (N,) int64); ``forward(x, class_ids=None)`` super-resolves, with ``class_ids`` (N,) in
    the order of ``classify``'s coords overriding the classifier.  Images smaller than the
    sub-image are padded (replicate) to it and the output cropped back.

    Args:
        branches: the three SR networks for classes 0, 1, 2 (``net1``..``net3``), each mapping
            (n, 3, P, P) -> (n, 3, sP, sP).
        scale: their upscaling factor.
        patch_size, stride: the sub-image grid (32 and 28 in ClassSR's test).
    """

    def __init__(self, branches, scale: int = 4, patch_size: int = 32, stride: int = 28) -> None:
        super().__init__()
        branches = list(branches)
        if len(branches) != NUM_CLASSES:
            raise ValueError(f"branches must hold {NUM_CLASSES} networks, got {len(branches)}")
        for value, what in [(scale, "scale"), (patch_size, "patch_size"), (stride, "stride")]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be a positive int, got {value!r}")
        if patch_size % 4:
            raise ValueError(f"patch_size must be a multiple of 4 (the classifier's stride), got {patch_size}")
        if stride > patch_size:
            raise ValueError(f"stride ({stride}) must not exceed patch_size ({patch_size}): pixels would be skipped")
        self.scale, self.patch_size, self.stride = scale, patch_size, stride
        self.classifier = Classifier()
        self.net1, self.net2, self.net3 = branches

    @property
    def branches(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        return self.net1, self.net2, self.net3

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        check_rgb(x)
        P = self.patch_size
        ph, pw = max(P - x.shape[-2], 0), max(P - x.shape[-1], 0)
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def classify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, H, W) -> (coords (N, 3) int64, class ids (N,) int64)."""
        padded = self._pad(x)
        coords = self._coords(padded)
        return coords, self.classifier.forward_grid(padded, coords, self.patch_size).argmax(dim=1)

    def forward(self, x: torch.Tensor, class_ids: torch.Tensor | None = None) -> torch.Tensor:
        padded = self._pad(x)  # validates x
        H, W = x.shape[-2:]
        P, s = self.patch_size, self.scale
        coords = self._coords(padded)
        if class_ids is None:
            class_ids = self.classifier.forward_grid(padded, coords, P).argmax(dim=1)
        else:
            class_ids = self._check_ids(class_ids, coords.shape[0], x.device)
        order, counts = sr_ops.class_dispatch(class_ids, NUM_CLASSES)
        batch = sr_ops.gather_patches(padded, coords, order, P)
        parts = torch.split(batch, counts.tolist())
        if not torch.is_grad_enabled() and all(getattr(b, "writes_into_out", False) for b in self.branches):
            # each branch writes its SR sub-images straight into its slice of the merged batch
            outputs = batch.new_empty(batch.shape[0], batch.shape[1], s * P, s * P)
            for branch, part, dst in zip(self.branches, parts, torch.split(outputs, counts.tolist())):
                if part.shape[0]:
                    branch(part, out=dst)
        else:
            outputs = torch.cat([branch(part) for branch, part in zip(self.branches, parts) if part.shape[0]])
        out_size = (padded.shape[0], padded.shape[2], padded.shape[3])
        hr = sr_ops.merge_patches(outputs, coords, order, out_size, s)
        return hr[..., : s * H, : s * W]

    def _coords(self, padded: torch.Tensor) -> torch.Tensor:
        # The grid's corners only; extract_patches's copy of the sub-images is cheap next to a branch.
        return sr_ops.extract_patches(padded[:, :1], self.patch_size, self.stride)[1]

    @staticmethod
    def _check_ids(ids, n: int, device) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor):
            ids = torch.as_tensor(ids)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.dim() != 1 or ids.shape[0] != n:
            raise ValueError(f"class_ids must be an integer tensor of shape ({n},) (one per sub-image), "
                             f"got {tuple(ids.shape)} {ids.dtype}")
        if n and (int(ids.min()) < 0 or int(ids.max()) >= NUM_CLASSES):
            raise ValueError(f"class_ids must lie in [0, {NUM_CLASSES}), got range "
                             f"[{int(ids.min())}, {int(ids.max())}]")
        return ids.to(device=device, dtype=torch.int64)


def fsrcnn_branch_mflops(d: int, patch_size: int = 32, scale: int = 4, s: int = 12, m: int = 4) -> float:
    """MFLOPs of ClassSR's FSRCNN branch on one P x P sub-image, counted as the ClassSR paper
    does (2 per multiply-add; the transposed conv as a 9x9 conv over the HR grid):
    d = 16/36/56 give 141/304/468."""
    lr = patch_size ** 2 * (3 * d * 25 + d * s + m * s * s * 9 + s * d)
    hr = (scale * patch_size) ** 2 * d * 3 * 81
    return 2 * (lr + hr) / 1e6


def _load(model: ClassSR, checkpoint, what: str) -> ClassSR:
    if checkpoint is not None:
        load_strict(model, read_state_dict(checkpoint), what)
    return model


def _options(scale, patch_size, stride):
    check_scale(scale, (4,), "ClassSR (its released models are x4)")
    return {"scale": scale, "patch_size": patch_size, "stride": stride}


@register("classsr_fsrcnn")
def build_classsr_fsrcnn(scale: int = 4, checkpoint=None, *, patch_size: int = 32, stride: int = 28,
                         clamp: bool = True) -> ClassSR:
    """ClassSR-FSRCNN x4 (``ClassSR_FSRCNN.pth``): branches d = 16, 36, 56."""
    opts = _options(scale, patch_size, stride)
    model = ClassSR([ClassSRFSRCNN(scale, d=d, clamp=clamp) for d in FSRCNN_WIDTHS], **opts)
    return _load(model, checkpoint, "ClassSR-FSRCNN")


@register("classsr_carn")
def build_classsr_carn(scale: int = 4, checkpoint=None, *, patch_size: int = 32, stride: int = 28,
                       clamp: bool = True) -> ClassSR:
    """ClassSR-CARN x4 (``ClassSR_CARN.pth``): CARN-M branches nf = 36, 52, 64 (group 4)."""
    opts = _options(scale, patch_size, stride)
    model = ClassSR([CARNM(scale, nf=nf, group=4, variant="classsr", clamp=clamp) for nf in CARN_WIDTHS], **opts)
    return _load(model, checkpoint, "ClassSR-CARN")

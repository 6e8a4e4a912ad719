"""ZSSR / MZSR: the 8-layer CNN of "Zero-Shot" Super-Resolution (Shocher et al., CVPR 2018)
and "Meta-Transfer Learning for Zero-Shot Super-Resolution" (Soh et al., CVPR 2020), with
test-time adaptation on the test image itself.

Network (as JWSoh/MZSR ``model.py``): the LR image is first upscaled with MATLAB bicubic
(``sr_ops.imresize``), then ``conv1`` 3->64, ``conv2..conv7`` 64->64, ``conv8`` 64->3, all
3x3 with zero ("SAME") padding and ReLU except the last, and the input is added back::

    x (B, 3, H, W) in [0, 1] -> u = imresize(x, s) -> u + convs(u) -> clamp [0, 1]

State-dict keys ``conv{1..8}.{weight,bias}`` (OIHW), as the converted MZSR checkpoint;
``checkpoint`` may also be the prefix of the TensorFlow checkpoint (``.../Pretrained``),
or its ``.index`` file, read without TensorFlow by ``sr_ops.models.tf_checkpoint``.

Adaptation (``adapt``) trains a copy on pairs (degrade(lr) -> lr), as MZSR's meta-test and
ZSSR do: degrade = MATLAB-bicubic downscaling when ``kernel`` is None, else correlation
with ``kernel`` (symmetric borders, scipy's ``correlate`` default) followed by direct
subsampling at MZSR's indices ``round(linspace(0, n - s, ceil(n / s)))`` (= ``[::s]`` for
n divisible by s).  ``mzsr`` starts from the given checkpoint; ``zssr`` from a random
initialisation, adapted for thousands of steps on random crops.
"""
from __future__ import annotations

import copy
import math
import time
from os import PathLike
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sr_ops.imresize import imresize
from sr_ops.models import register
from sr_ops.models.edsr import load_state_dict_strict

__all__ = ["MZSR", "ZSSR", "blur_subsample", "degrade", "gaussian_kernel"]


def gaussian_kernel(size: int = 13, sigma: float = 1.3) -> torch.Tensor:
    """Isotropic Gaussian (size, size), float64, summing to 1, centred at (size - 1) / 2."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma**2))
    return k / k.sum()


def _symmetric_index(n: int, before: int, after: int, device) -> torch.Tensor:
    # scipy's "reflect" border (d c b a | a b c d | d c b a): the edge sample repeats.
    idx = torch.arange(-before, n + after, device=device).remainder(2 * n)
    return torch.where(idx < n, idx, 2 * n - 1 - idx)


def _subsample_index(n: int, scale: int, device) -> torch.Tensor:
    out = math.ceil(n / scale)
    pos = torch.linspace(0, n - scale, out, dtype=torch.float64) if out > 1 else torch.zeros(1)
    return pos.round().long().to(device)  # round half to even, as numpy


def _as_kernel(kernel, like: torch.Tensor) -> torch.Tensor:
    k = torch.as_tensor(kernel)
    if k.dim() != 2 or k.numel() == 0 or k.is_complex():
        raise ValueError(f"kernel must be a non-empty real 2-D array, got shape {tuple(k.shape)}")
    k = k.to(device=like.device, dtype=like.dtype)
    if not torch.isfinite(k).all():
        raise ValueError("kernel must be finite")
    return k


def blur_subsample(x: torch.Tensor, kernel, scale: int) -> torch.Tensor:
    """MZSR's 'direct' degradation: correlate each channel with ``kernel`` (scipy
    ``correlate`` with symmetric borders), then keep rows/columns
    ``round(linspace(0, n - scale, ceil(n / scale)))``.

    x: (B, C, H, W) float; kernel: (kh, kw) array/tensor -> (B, C, ceil(H/s), ceil(W/s)).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError("x must be a float tensor of shape (B, C, H, W)")
    k = _as_kernel(kernel, x)
    kh, kw = k.shape
    h, w = x.shape[-2:]
    rows = _symmetric_index(h, kh // 2, kh - 1 - kh // 2, x.device)
    cols = _symmetric_index(w, kw // 2, kw - 1 - kw // 2, x.device)
    padded = x.index_select(-2, rows).index_select(-1, cols)
    c = x.shape[1]
    blurred = F.conv2d(padded, k.expand(c, 1, kh, kw), groups=c)  # conv2d is a correlation
    return blurred.index_select(-2, _subsample_index(h, scale, x.device)).index_select(
        -1, _subsample_index(w, scale, x.device))


def degrade(x: torch.Tensor, scale: int, kernel=None) -> torch.Tensor:
    """LR of ``x`` (B, C, H, W): MATLAB bicubic 1/scale when ``kernel`` is None, else
    ``blur_subsample(x, kernel, scale)``.  Not quantised (as in MZSR's adaptation)."""
    if kernel is None:
        return imresize(x, 1 / scale)
    return blur_subsample(x, kernel, scale)


def _check_image(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be an RGB batch of shape (B, 3, H, W), got {got}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got {x.dtype}")
    if min(x.shape[-2:]) < 1:
        raise ValueError(f"{name} must have a non-empty image, got {tuple(x.shape)}")


class MZSR(nn.Module):
    """8-layer residual CNN on the bicubic-upscaled input: (B, 3, H, W) in [0, 1] ->
    (B, 3, ceil(s*H), ceil(s*W)) in [0, 1].  Any H, W >= 1."""

    #: Adam step size ``adapt`` uses when none is given.
    default_learning_rate = 1e-5

    def __init__(self, scale: int = 2, n_feats: int = 64, n_layers: int = 8,
                 clamp: bool = True) -> None:
        super().__init__()
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 2:
            raise ValueError(f"scale must be an int >= 2, got {scale!r}")
        if n_layers < 2 or n_feats < 1:
            raise ValueError(f"need n_layers >= 2 and n_feats >= 1, got {n_layers}, {n_feats}")
        self.scale = scale
        self.clamp = clamp
        self.n_layers = n_layers
        chans = [3] + [n_feats] * (n_layers - 1) + [3]
        for i in range(n_layers):
            self.add_module(f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], 3, padding=1))

    def residual(self, u: torch.Tensor) -> torch.Tensor:
        """The conv stack on an already upscaled image u (B, 3, H, W) -> (B, 3, H, W)."""
        for i in range(1, self.n_layers):
            u = F.relu(getattr(self, f"conv{i}")(u))
        return getattr(self, f"conv{self.n_layers}")(u)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """``size``: output (H, W) instead of ceil(s*H, s*W) (MZSR's ``output_shape``)."""
        _check_image(x)
        u = imresize(x, self.scale) if size is None else imresize(x, size=size)
        out = u + self.residual(u)
        return out.clamp(0.0, 1.0) if self.clamp else out

    def adapt(self, lr: torch.Tensor, kernel=None, steps: int = 10,
              learning_rate: float | None = None, optimizer: str = "adam",
              callback: Callable[[int, float], None] | None = None,
              crop_size: int | None = None, augment: bool = False,
              seed: int | None = None, max_seconds: float | None = None) -> "MZSR":
        """Return a copy of this model trained on the test image ``lr`` (1, 3, H, W) itself.

        Each step: father = ``lr`` (or a random ``crop_size`` crop of it, flipped/rotated at
        random when ``augment``), son = ``degrade(father, scale, kernel)``; one
        ``optimizer`` ("adam" or "sgd") step on the L1 loss between
        ``self(son, size=father size)`` (unclamped) and father.  ``callback(step, loss)``
        is called after every step (step from 1).  ``max_seconds`` stops early once that much
        wall time has passed (a time box for long ZSSR runs).  ``self`` is left untouched.
        """
        _check_image(lr, "lr")
        if lr.shape[0] != 1:
            raise ValueError(f"lr must hold one image (batch 1), got batch {lr.shape[0]}")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        rate = self.default_learning_rate if learning_rate is None else learning_rate
        if not rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        if crop_size is not None and not (isinstance(crop_size, int) and crop_size >= self.scale):
            raise ValueError(f"crop_size must be an int >= scale ({self.scale}), got {crop_size!r}")
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds!r}")
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable(step, loss)")
        if kernel is not None:
            _as_kernel(kernel, lr)  # fail before training, not at the first step

        model = copy.deepcopy(self).train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = (torch.optim.Adam(params, lr=rate) if optimizer == "adam"
               else torch.optim.SGD(params, lr=rate))
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        image = lr.detach().to(next(model.parameters()).dtype)
        resample = crop_size is not None or augment  # else one fixed pair, as MZSR
        father = image
        son = None if resample else degrade(father, self.scale, kernel)
        start = time.perf_counter()
        for step in range(1, steps + 1):
            if resample:
                father = _random_crop(image, crop_size, augment, gen)
                son = degrade(father, self.scale, kernel)
            loss = F.l1_loss(_unclamped(model, son, tuple(father.shape[-2:])), father)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if callback is not None:
                callback(step, float(loss.detach()))
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                break
        return model.eval()


def _unclamped(model: MZSR, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # clamping would zero the gradient of saturated pixels; MZSR's loss uses the raw output
    u = imresize(x, size=size)
    return u + model.residual(u)


def _random_crop(x: torch.Tensor, size: int | None, augment: bool,
                 gen: torch.Generator) -> torch.Tensor:
    h, w = x.shape[-2:]
    ch, cw = (h, w) if size is None else (min(size, h), min(size, w))
    top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
    crop = x[..., top:top + ch, left:left + cw]
    if augment:  # one of the 8 flips/rotations, as ZSSR's geometric augmentation
        k, flip = (int(v) for v in torch.randint(0, 4, (2,), generator=gen))
        crop = torch.rot90(crop, k, dims=(-2, -1))
        if flip % 2:
            crop = crop.flip(-1)
    return crop


class ZSSR(MZSR):
    """The same network from a random start: weights normal with variance
    ``init_variance / fan_in``, biases zero; ``adapt`` defaults to Adam at 1e-3 (ZSSR's
    initial learning rate).

    ``init_variance`` defaults to 2 (He): ZSSR's own 0.1 divides the signal's variance by
    ~20 per ReLU layer, so the residual stays ~1e-4 for the first hundreds of steps (on Set5
    bird x2, 180 steps of 48x48 crops left it at the bicubic PSNR, where He init had gained
    1.5 dB at 120).
    """

    default_learning_rate = 1e-3

    def __init__(self, scale: int = 2, n_feats: int = 64, n_layers: int = 8,
                 clamp: bool = True, seed: int | None = 0, init_variance: float = 2.0) -> None:
        super().__init__(scale, n_feats, n_layers, clamp)
        if not init_variance > 0:
            raise ValueError(f"init_variance must be positive, got {init_variance!r}")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    fan_in = m.weight[0].numel()
                    std = math.sqrt(init_variance / fan_in)
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                    m.bias.zero_()


def _load(model: MZSR, checkpoint) -> MZSR:
    prefix = _tf_prefix(checkpoint)
    if prefix is not None:
        from sr_ops.models.tf_checkpoint import mzsr_state_dict

        checkpoint = mzsr_state_dict(prefix)
    return load_state_dict_strict(model, checkpoint)


def _tf_prefix(checkpoint) -> str | None:
    """The TF checkpoint prefix named by ``checkpoint`` (the prefix its .index / .data-*
    files share, or the .index file itself), else None."""
    if not isinstance(checkpoint, (str, PathLike)):
        return None
    path = str(checkpoint)
    if path.endswith(".index") and Path(path).is_file():
        return path[: -len(".index")]
    if not Path(path).is_file() and Path(path + ".index").is_file():
        return path
    return None


@register("mzsr")
def build_mzsr(scale: int = 2, checkpoint=None, **options) -> MZSR:
    """MZSR network; ``checkpoint``: the converted ``.pth`` state dict or the TensorFlow
    checkpoint prefix (``.../Pretrained``).  The released weights are for x2 (bicubic)."""
    model = MZSR(scale, **options)
    return model if checkpoint is None else _load(model, checkpoint)


@register("zssr")
def build_zssr(scale: int = 2, checkpoint=None, **options) -> ZSSR:
    """ZSSR: the MZSR network randomly initialised (``seed`` option), to be ``adapt``-ed."""
    model = ZSSR(scale, **options)
    return model if checkpoint is None else _load(model, checkpoint)

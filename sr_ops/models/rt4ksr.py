"""RT4KSR (Zamfir et al., "Towards Real-Time 4K Image Super-Resolution", CVPRW 2023).

Re-implementation of the official ``RT4KSR_Rep`` as released (eduardzamfir/RT4KSR,
``code/model/arch.py``, config ``rt4ksr_rep``: 24 features, 4 blocks, GELU, LayerNorm,
no channel attention, no block residual, high-frequency branch disabled).  Parameter
names match the official state dict (after stripping DataParallel's ``module.``), so
``rt4ksr_x{2,3}.pth`` load strictly.

Data flow (input RGB in [0, 1], no mean shift; the official test feeds [0, 1] too)::

    x -> PixelUnshuffle(2) -> head (3x3, 12 -> 24)
      -> body: 4 x [LayerNorm2d -> ResBlock -> GELU]
      -> tail: LayerNorm2d -> ResBlock
      -> upsample: 3x3 conv 24 -> 3 (2s)^2 -> PixelShuffle(2s)

``hfb`` (a ResBlock on the unshuffled high-pass x - GaussianBlur(x)) and ``gamma`` are
in the checkpoint but only used when ``forget=True``; the released model has
``forget=False`` (and gamma = 0), so by default they are skipped.

Train-time ``ResBlock`` = 1x1 expand -> 3x3 (input padded with the expand bias) + identity
-> 1x1 reduce + identity; ``reparameterize`` folds each into one 3x3 ``rep_conv``
(``RepResBlock``), exactly as the authors' inference form.
"""
from __future__ import annotations

from os import PathLike

import torch
import torch.nn.functional as F
from torch import nn

import sr_ops
from sr_ops.models import blocks, register
from sr_ops.models._checkpoints import check_rgb, load_file
from sr_ops.models.blocks import LayerNorm2d, shuffle_clamp
from sr_ops.models.reparam import fold_expand_fea_reduce
from sr_ops.models.reparam import reparameterize as reparameterize_model

__all__ = ["RT4KSR", "ResBlock", "RepResBlock", "SimplifiedNAFBlock", "build_rt4ksr",
           "load_official_state_dict"]


class ResBlock(nn.Module):
    """Train-time block: expand_conv (1x1) -> fea_conv (3x3, bias-padded) + identity
    -> reduce_conv (1x1) + x."""

    def __init__(self, n_feats: int, ratio: int = 2) -> None:
        super().__init__()
        mid = int(ratio * n_feats)
        self.expand_conv = nn.Conv2d(n_feats, mid, 1)
        self.fea_conv = nn.Conv2d(mid, mid, 3)  # no padding: the input is padded by hand
        self.reduce_conv = nn.Conv2d(mid, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.expand_conv(x)
        b, c, h, w = e.shape
        # Pad with the expand bias, i.e. what expand_conv gives on a zero-padded x; this is
        # what makes the block exactly one zero-padded 3x3 conv after folding.
        padded = self.expand_conv.bias.view(1, c, 1, 1).expand(b, c, h + 2, w + 2).clone()
        padded[:, :, 1:-1, 1:-1] = e
        f = self.fea_conv(padded) + e
        return self.reduce_conv(f) + x

    def reparameterized(self) -> "RepResBlock":
        weight, bias = fold_expand_fea_reduce(self.expand_conv, self.fea_conv, self.reduce_conv)
        rep = RepResBlock(weight.shape[0]).to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            rep.rep_conv.weight.copy_(weight)
            rep.rep_conv.bias.copy_(bias)
        return rep


class RepResBlock(nn.Module):
    """Inference form of ``ResBlock``: a single 3x3 conv, zero padding 1."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.rep_conv = nn.Conv2d(n_feats, n_feats, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return blocks.conv3x3(self.rep_conv, x)


class SimplifiedNAFBlock(nn.Module):
    """norm -> conv1 (ResBlock / RepResBlock) -> act; the released config has no channel
    attention and no residual."""

    def __init__(self, n_feats: int, act: nn.Module, ratio: int = 2) -> None:
        super().__init__()
        self.norm = LayerNorm2d(n_feats)
        self.conv1 = ResBlock(n_feats, ratio)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.norm(x))
        if _inplace_ok(y) and type(self.act) is nn.GELU:
            # GELU in place on the conv's fresh output: no new LR-sized map per block.
            return torch._C._nn.gelu_(y, approximate=self.act.approximate)
        return self.act(y)


def _inplace_ok(t: torch.Tensor) -> bool:
    # Eager inference only; under torch.compile inductor plans its own buffers.
    return not ((torch.is_grad_enabled() and t.requires_grad) or torch.compiler.is_compiling())


def _unshuffle2(x: torch.Tensor) -> torch.Tensor:
    """PixelUnshuffle(2) of (B, C, H, W), H and W even -> (B, 4C, H/2, W/2); on the CPU
    channels-last (oneDNN runs these small-channel convolutions ~3x faster so, and
    sr_ops.layernorm2d reads such maps in place). ATen's channels-last unshuffle, from a
    channels-last copy of the 3-channel input, is the fastest eager way (9 ms at 1280x720,
    against 12 ms for unshuffle then a layout copy)."""
    if x.device.type != "cpu":
        return F.pixel_unshuffle(x, 2)
    if torch.compiler.is_compiling():  # inductor fuses the two steps into one loop
        return F.pixel_unshuffle(x, 2).contiguous(memory_format=torch.channels_last)
    return F.pixel_unshuffle(x.contiguous(memory_format=torch.channels_last), 2)


def _gaussian_blur5(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    # torchvision GaussianBlur(kernel_size=5, sigma=1): separable, reflect padding.
    t = torch.arange(5, dtype=torch.float64) - 2
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype).to(x.device)
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > 2 else "replicate"
    y = F.pad(x, (2, 2, 2, 2), mode=mode)
    y = F.conv2d(y, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(y, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


class RT4KSR(nn.Module):
    """RT4KSR: RGB (B, 3, H, W) in [0, 1] -> (B, 3, s*H, s*W).

    Any H, W >= 1: odd sizes are padded by one row/column (reflect) to even for the
    pixel-unshuffle, and the output cropped back.  ``clamp=True`` clips the output to [0, 1] (the official
    model does not; PSNR is unaffected since evaluation clamps anyway).
    """

    def __init__(self, scale: int, num_feats: int = 24, num_blocks: int = 4,
                 forget: bool = False, clamp: bool = True) -> None:
        super().__init__()
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        self.scale = scale
        self.forget = forget
        self.clamp = clamp
        act = nn.GELU()  # one shared instance, as in the official model
        self.gamma = nn.Parameter(torch.zeros(1))
        self.head = nn.Sequential(nn.Conv2d(3 * 4, num_feats, 3, padding=1))
        self.hfb = nn.Sequential(ResBlock(num_feats, 2), act)
        self.body = nn.Sequential(
            *[SimplifiedNAFBlock(num_feats, act, 2) for _ in range(num_blocks)])
        self.tail = nn.Sequential(LayerNorm2d(num_feats), ResBlock(num_feats, 2))
        self.upsample = nn.Sequential(
            nn.Conv2d(num_feats, 3 * (2 * scale) ** 2, 3, padding=1),
            nn.PixelShuffle(2 * scale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rgb(x)
        h, w = x.shape[-2:]
        if h == 0 or w == 0:
            raise ValueError(f"x must have a non-empty image, got {tuple(x.shape)}")
        ph, pw = h % 2, w % 2
        if ph or pw:
            # reflect (replicate for a 1-pixel side, which reflect cannot pad)
            mode = "reflect" if min(h, w) > 1 else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)

        lr = _unshuffle2(x)  # channels-last on the CPU; the output is NCHW again below
        if self._convs_norms_fusable(lr):
            tailed = self._convs_norms_fused(lr)
        else:
            tailed = self._head_body_tail(x, lr)
        conv, shuffle = self.upsample
        up = blocks.conv3x3(conv, tailed)
        if not (ph or pw):
            # At even sizes the shuffle, clamp and NCHW copy are one strided pass (one op,
            # differentiable, opaque to torch.compile, whose own loop for them is ~3x slower),
            # so the HR-sized map is swept once (on the CPU each fresh HR-sized tensor also
            # costs its page faults, about as much as the sweep).
            return shuffle_clamp(up, shuffle.upscale_factor, clamp=self.clamp)
        out = shuffle(up)
        if ph or pw:
            out = out[..., : self.scale * h, : self.scale * w]
        if self.clamp:
            out = out.clamp(0.0, 1.0)
        return out.contiguous()

    def _head_body_tail(self, x: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        feats = blocks.conv3x3(self.head[0], lr)
        if self.forget:
            deep = self.body(feats)
            hf = self.hfb(self.head(F.pixel_unshuffle(x - _gaussian_blur5(x), 2)))
            return self.tail(self.gamma * deep + hf)
        if self._gelu_fusable():
            return self._body_tail_fused(feats)
        return self.tail(self.body(feats))

    def _convs_norms_fusable(self, lr: torch.Tensor) -> bool:
        """The re-parameterised model on a float32 CPU map, every activation the exact GELU:
        then each 3x3 convolution but the last two feeds only a norm (through GELU in the body)."""
        return (blocks.USE_FUSED_CONV3X3 and not self.forget and lr.device.type == "cpu"
                and lr.dtype == torch.float32 and self._gelu_fusable()
                and all(blk.act.approximate == "none" for blk in self.body)
                and all(isinstance(c, RepResBlock) for c in [blk.conv1 for blk in self.body] + [self.tail[1]]))

    def _convs_norms_fused(self, lr: torch.Tensor) -> torch.Tensor:
        """tail(body(head(lr))) as five sr_ops.conv3x3_layernorm2d (head -> norm, then each
        block's conv -> GELU -> the next norm, the tail's norm last) and the tail's conv: the
        norms run in the convolutions' epilogues, so no block's conv output is ever written."""
        convs = [self.head[0]] + [blk.conv1.rep_conv for blk in self.body]
        norms = [blk.norm for blk in self.body] + [self.tail[0]]
        y = lr
        for i, (conv, norm) in enumerate(zip(convs, norms)):
            y = sr_ops.conv3x3_layernorm2d(y, conv.weight, conv.bias, norm.weight, norm.bias, norm.eps, gelu=i > 0)
        return blocks.conv3x3(self.tail[1].rep_conv, y)

    def _gelu_fusable(self) -> bool:
        return blocks.USE_FUSED_LAYERNORM and all(type(blk.act) is nn.GELU for blk in self.body)

    def _body_tail_fused(self, y: torch.Tensor) -> torch.Tensor:
        """tail(body(y)) with each block's GELU folded into the LayerNorm2d after it (the next
        block's, or the tail's): sr_ops.gelu_layernorm2d, one pass instead of two. The same
        function, since GELU's output feeds only that norm."""
        norms = [blk.norm for blk in self.body] + [self.tail[0]]
        convs = [blk.conv1 for blk in self.body] + [self.tail[1]]
        act = None
        for i, (norm, conv) in enumerate(zip(norms, convs)):
            if act is None:
                y = norm(y)
            else:
                y = sr_ops.gelu_layernorm2d(y, norm.weight, norm.bias, norm.eps, act.approximate)
            y = conv(y)
            act = self.body[i].act if i < len(self.body) else None
        return y

    @property
    def is_reparameterized(self) -> bool:
        return not any(isinstance(m, ResBlock) for m in self.modules())


def load_official_state_dict(model: nn.Module, checkpoint) -> nn.Module:
    """Load an official RT4KSR checkpoint (path, full checkpoint dict, or state dict) into
    ``model``, strictly.  Strips DataParallel's ``module.`` prefix.  A checkpoint in the
    re-parameterised naming (``*.rep_conv.*``) re-parameterises ``model`` first.

    Raises ``KeyError`` naming every missing and unexpected key, ``ValueError`` naming
    every shape mismatch.
    """
    if isinstance(checkpoint, (str, PathLike)):
        checkpoint = load_file(checkpoint)
    if not isinstance(checkpoint, dict):
        raise TypeError(f"checkpoint must be a path or a dict, got {type(checkpoint).__name__}")
    state = checkpoint.get("state_dict", checkpoint)
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}

    if any(".rep_conv." in k for k in state) and not getattr(model, "is_reparameterized", True):
        reparameterize_model(model)

    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(
            f"checkpoint does not match {type(model).__name__}: "
            f"missing keys {missing or 'none'}; unexpected keys {unexpected or 'none'}")
    bad = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
           for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"checkpoint shapes do not match {type(model).__name__} "
                         f"(wrong scale?): " + "; ".join(bad))
    model.load_state_dict(state, strict=True)
    return model


@register("rt4ksr")
def build_rt4ksr(scale: int, checkpoint=None, *, reparameterize: bool = True,
                 clamp: bool = True, forget: bool = False) -> RT4KSR:
    """RT4KSR for ``scale`` (official weights: 2 and 3).

    ``reparameterize=True`` (default) returns the inference form (one 3x3 conv per block);
    ``False`` keeps the train-time graph.
    """
    model = RT4KSR(scale, forget=forget, clamp=clamp)
    if checkpoint is not None:
        load_official_state_dict(model, checkpoint)
    if reparameterize:
        reparameterize_model(model)
    return model

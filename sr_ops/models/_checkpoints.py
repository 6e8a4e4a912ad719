"""Strict checkpoint loading shared by the CARN, FSRCNN, SRResNet and ClassSR models.

``read_state_dict`` accepts a path (loaded with ``weights_only=True`` on the CPU), a full
training checkpoint with the weights under ``state_dict`` / ``params`` / ``params_ema`` /
``model``, or a plain state dict; DataParallel's ``module.`` prefix is stripped.
``load_strict`` refuses any mismatch and names every offending key.
"""
from __future__ import annotations

import pickle
import re
import warnings
from os import PathLike

import torch
from torch import nn

__all__ = ["check_rgb", "check_scale", "load_file", "load_strict", "read_state_dict"]

_WRAPPERS = ("state_dict", "params_ema", "params", "model")


def load_file(path) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, with a one-sentence error for a file
    it cannot read: ``ValueError`` for one that is not a checkpoint, ``pickle.UnpicklingError``
    (torch's class) for one that holds objects weights-only loading refuses. torch's own errors
    name the pickle opcode or zip record that failed (``KeyError: 101`` for a text file,
    ``IndexError: pop from empty list``, ...) and its weights-only refusal runs to a paragraph;
    a missing or unreadable file stays ``OSError``."""
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive, the legacy format a pickle (protocol >= 2 starts with PROTO)
    pickled = head.startswith((b"PK\x03\x04", b"\x80"))
    with warnings.catch_warnings():
        # the weights-only unpickler's notice about a newer pickle protocol: noise for a
        # file that either loads or gets the error below
        warnings.simplefilter("ignore", UserWarning)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 (text, truncated or foreign files fail in many ways)
            text = " ".join(str(exc).split())
            found = re.search(r"WeightsUnpickler error: (.*?)(?:\. | Check the documentation|$)", text)
            if pickled and isinstance(exc, pickle.UnpicklingError) and found:
                raise pickle.UnpicklingError(f"{path} holds Python objects besides tensors and plain containers, which "
                                 f"weights-only loading refuses ({found.group(1).rstrip('.')}); if you trust "
                                 "the file, load it with torch.load and save its state_dict") from None
            raise ValueError(f"{path} is not a PyTorch checkpoint (torch.load failed with "
                             f"{type(exc).__name__}: {text[:80]})") from None


def read_state_dict(checkpoint) -> dict[str, torch.Tensor]:
    """Path or dict -> flat ``{name: tensor}``."""
    if isinstance(checkpoint, (str, PathLike)):
        checkpoint = load_file(checkpoint)
    if not isinstance(checkpoint, dict):
        raise TypeError(f"checkpoint must be a path or a dict, got {type(checkpoint).__name__}")
    for key in _WRAPPERS:
        inner = checkpoint.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            checkpoint = inner
            break
    bad = sorted(k for k, v in checkpoint.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise TypeError(f"checkpoint entries must be tensors; not tensors: {bad}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def load_strict(model: nn.Module, checkpoint, what: str | None = None) -> nn.Module:
    """Copy ``checkpoint`` into ``model``; every key and shape must match.

    Raises ``KeyError`` naming every missing and unexpected key, ``ValueError`` naming every
    shape mismatch (typically the wrong scale or width).
    """
    state = read_state_dict(checkpoint)
    name = what or type(model).__name__
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f"checkpoint does not match {name}: missing keys {missing or 'none'}; "
                       f"unexpected keys {unexpected or 'none'}")
    bad = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
           for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"checkpoint shapes do not match {name} (wrong scale or width?): " + "; ".join(bad))
    model.load_state_dict(state, strict=True)
    return model


def check_rgb(x) -> None:
    """The models' common input contract: a float (B, 3, H, W) batch, H, W >= 1."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be an RGB batch of shape (B, 3, H, W), got {got}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor in [0, 1], got {x.dtype}")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"x must have a non-empty image, got {tuple(x.shape)}")


def check_scale(scale, allowed: tuple[int, ...], model: str) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in allowed:
        raise ValueError(f"scale must be one of {list(allowed)} for {model}, got {scale!r}")
    return scale

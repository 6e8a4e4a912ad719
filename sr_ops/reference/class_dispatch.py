"""class_dispatch the pure-PyTorch way: argmax, then a stable sort by class."""
from __future__ import annotations

import torch


def class_dispatch(ids_or_logits: torch.Tensor, num_classes: int):
    """ids (N,) or logits (N, K) -> order (N,) int64 (stable by class), counts (K,) int64."""
    ids = ids_or_logits.argmax(dim=1) if ids_or_logits.is_floating_point() else ids_or_logits
    ids = ids.long()
    order = torch.sort(ids, stable=True).indices
    counts = torch.bincount(ids, minlength=num_classes)
    return order, counts

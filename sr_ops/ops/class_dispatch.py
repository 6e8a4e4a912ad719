"""class_dispatch: a stable permutation grouping patches by class, with per-class counts."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops import reference
from sr_ops.backends import BackendTable, lazy

_forward = BackendTable("class_dispatch", reference=reference.class_dispatch, native="_class_dispatch_fwd",
                        triton=lazy("sr_ops.triton.class_dispatch", "class_dispatch_fwd"))


def _check(x, num_classes) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"ids_or_logits must be a torch.Tensor, got {type(x).__name__}")
    v.positive_int(num_classes, "num_classes")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"ids_or_logits must be integer ids or float logits, got {x.dtype}")
    if x.is_floating_point():
        if x.dim() != 2 or x.shape[1] != num_classes:
            raise ValueError(f"logits must be (N, num_classes={num_classes}), got shape {tuple(x.shape)}")
    elif x.dim() != 1:
        raise ValueError(f"ids must be (N,), got shape {tuple(x.shape)}")


def _check_ids(ids, num_classes) -> None:
    v.index_range(ids, num_classes, "ids", "num_classes")


@torch.library.custom_op("sr_ops::class_dispatch", mutates_args=())
def _dispatch_op(ids_or_logits: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    _check(ids_or_logits, num_classes)
    x = ids_or_logits.contiguous()
    if not x.is_floating_point():
        _check_ids(x, num_classes)
        x = x.long()
    return _forward(x.device, x, num_classes)


@_dispatch_op.register_fake
def _(ids_or_logits, num_classes):
    _check(ids_or_logits, num_classes)
    N = ids_or_logits.shape[0]
    return (ids_or_logits.new_empty(N, dtype=torch.int64),
            ids_or_logits.new_empty(num_classes, dtype=torch.int64))


def class_dispatch(ids_or_logits: torch.Tensor, num_classes: int):
    """Group patches by class with a stable order and fixed-shape outputs.

    Args:
        ids_or_logits: (N,) integer class ids in [0, num_classes), or (N, num_classes)
            float logits (class = argmax, the first maximum on ties).
        num_classes: K.

    Returns:
        order (N,) int64: patch indices sorted by class, ascending index within a class;
        counts (K,) int64: patches per class, so class k owns
        ``order[counts[:k].sum() : counts[:k+1].sum()]``. Not differentiable.
    """
    _check(ids_or_logits, num_classes)
    return _dispatch_op(ids_or_logits, num_classes)

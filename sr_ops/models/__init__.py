"""Reference SR models built on the sr_ops operators.

    >>> from sr_ops import models
    >>> models.available()                       # e.g. ['nafnet_sr', 'rt4ksr']
    >>> net = models.build("rt4ksr", 2, "../shared/assets/weights/rt4ksr/rt4ksr_x2.pth")
    >>> sr = net(lr)                             # (B, 3, H, W) in [0, 1] -> (B, 3, 2H, 2W)

Every model takes RGB (B, 3, H, W) in [0, 1] and returns (B, 3, s*H, s*W) in [0, 1].

Model files add themselves to the registry with the ``register`` decorator::

    @register("my_model")
    def _build_my_model(scale, checkpoint=None, **options) -> nn.Module: ...

The builder receives the scale, the checkpoint (a path, or an already loaded dict, or
None for random weights) and the model's own options; ``build`` puts the result in eval
mode.  Every module of this package (``sr_ops/models/*.py``, names not starting with ``_``)
is imported the first time the registry is used, so a new model file only needs the
decorator; importing ``sr_ops`` itself does not import the models.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

from torch import nn

__all__ = ["available", "build", "register", "reparameterize"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_loaded = False


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``builder(scale, checkpoint=None, **options)`` under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        existing = _REGISTRY.get(name)
        same = existing is not None and (existing.__module__, existing.__qualname__) == (
            builder.__module__, builder.__qualname__)  # the same module imported again
        if existing is not None and not same:
            raise ValueError(f"model {name!r} is already registered (by {existing.__module__})")
        _REGISTRY[name] = builder
        return builder

    return decorator


def _load_model_modules() -> None:
    """Import every public module of this package once, so each registers its models."""
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def available() -> list[str]:
    """Names accepted by ``build``, sorted."""
    _load_model_modules()
    return sorted(_REGISTRY)


def build(name: str, scale: int, checkpoint=None, **options) -> nn.Module:
    """Build model ``name`` for upscaling factor ``scale``, in eval mode.

    ``checkpoint``: path to an official checkpoint (loaded with ``weights_only=True``), an
    already loaded state dict, or None (random initialisation).  ``options`` go to the
    model's builder (for example ``reparameterize=False`` for RT4KSR).
    """
    _load_model_modules()
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {available()}") from None
    model = builder(scale, checkpoint, **options)
    return model.eval()


def reparameterize(model: nn.Module) -> nn.Module:
    """Fold every train-time block of ``model`` into its inference form (in place).

    Returns the model.  Currently RT4KSR's RepResBlocks; see ``sr_ops.models.reparam``.
    """
    from sr_ops.models.reparam import reparameterize as _reparameterize

    return _reparameterize(model)

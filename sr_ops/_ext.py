"""Loads the compiled extension sr_ops._C once, remembering why it failed if it did."""
from __future__ import annotations

import importlib
import os

import torch  # noqa: F401  (loads libtorch, which sr_ops._C links against)

_state: dict = {}


def load():
    """The sr_ops._C module, or None when it is not built (or SR_OPS_SKIP_EXT=1)."""
    if "module" not in _state:
        if os.environ.get("SR_OPS_SKIP_EXT", "0") in ("1", "true", "yes", "on"):
            _state["module"], _state["error"] = None, "SR_OPS_SKIP_EXT is set"
        else:
            try:
                _state["module"], _state["error"] = importlib.import_module("sr_ops._C"), None
            except ImportError as exc:  # not built, or built against another torch
                _state["module"], _state["error"] = None, str(exc)
    return _state["module"]


def load_error() -> str | None:
    load()
    return _state["error"]


def with_cuda() -> bool:
    mod = load()
    return bool(mod is not None and getattr(mod, "WITH_CUDA", 0))

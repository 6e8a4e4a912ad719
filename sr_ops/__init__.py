"""sr_ops: fused operators for image super-resolution models.

    >>> import sr_ops
    >>> sr_ops.available_backends()          # e.g. ['reference', 'cpu']
    >>> with sr_ops.use_backend("reference"):
    ...     out = sr_ops.patch2img(patches, (H, W), patch_size=3, stride=2)
"""
from sr_ops import _ext

_ext.load()  # registers the C++ kernels with the dispatcher before the ops use them

from sr_ops import metrics  # noqa: E402
from sr_ops._meta import __version__ as __version__  # noqa: E402  (re-exported)
from sr_ops.backends import BACKENDS, available_backends, use_backend  # noqa: E402
from sr_ops.ensemble import self_ensemble  # noqa: E402
from sr_ops.imresize import imresize  # noqa: E402
from sr_ops.ops import (  # noqa: E402
    adapn,
    class_dispatch,
    conv3x3,
    conv3x3_layernorm2d,
    cross_scale_knn,
    dwconv_gate_ca,
    eca,
    extract_patches,
    gather_patches,
    gelu_layernorm2d,
    graph_aggregate,
    layernorm2d,
    merge_patches,
    naf_ffn,
    patch2img,
    to_channels_last,
    vertex_map,
)
from sr_ops.tiled import tiled, tiled_stream  # noqa: E402

# Submodules that `import sr_ops` does not load (models pull in every network definition;
# bench, io and evaluate their own dependencies), reachable as attributes on first use, as
# torchvision does: `import sr_ops; sr_ops.models.build(...)`.
_LAZY = ("models", "bench", "io", "evaluate", "reference", "distributed")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"sr_ops.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'sr_ops' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "tiled",
    "tiled_stream",
    "self_ensemble",
    "BACKENDS",
    "available_backends",
    "use_backend",
    "imresize",
    "metrics",
    "adapn",
    "cross_scale_knn",
    "eca",
    "dwconv_gate_ca",
    "naf_ffn",
    "graph_aggregate",
    "layernorm2d",
    "gelu_layernorm2d",
    "patch2img",
    "vertex_map",
    "extract_patches",
    "class_dispatch",
    "gather_patches",
    "to_channels_last",
    "merge_patches",
    "conv3x3",
    "conv3x3_layernorm2d",
]

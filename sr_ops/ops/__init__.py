"""Public ops: each a torch.library custom op with validation, a fake kernel and autograd."""
from sr_ops.ops.adapn import adapn
from sr_ops.ops.class_dispatch import class_dispatch
from sr_ops.ops.conv3x3 import conv3x3
from sr_ops.ops.conv3x3_layernorm2d import conv3x3_layernorm2d
from sr_ops.ops.cross_scale_knn import cross_scale_knn
from sr_ops.ops.dwconv_gate_ca import dwconv_gate_ca
from sr_ops.ops.eca import eca
from sr_ops.ops.extract_patches import extract_patches
from sr_ops.ops.gather_patches import gather_patches
from sr_ops.ops.gelu_layernorm2d import gelu_layernorm2d
from sr_ops.ops.graph_aggregate import graph_aggregate
from sr_ops.ops.layernorm2d import layernorm2d
from sr_ops.ops.merge_patches import merge_patches
from sr_ops.ops.naf_ffn import naf_ffn
from sr_ops.ops.patch2img import patch2img
from sr_ops.ops.to_channels_last import to_channels_last
from sr_ops.ops.vertex_map import vertex_map

__all__ = [
    "adapn", "cross_scale_knn", "eca", "dwconv_gate_ca", "graph_aggregate", "layernorm2d",
    "gelu_layernorm2d", "naf_ffn", "patch2img", "vertex_map", "extract_patches", "class_dispatch",
    "gather_patches", "merge_patches", "to_channels_last", "conv3x3", "conv3x3_layernorm2d"
]

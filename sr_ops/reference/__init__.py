"""Pure-PyTorch definitions of every op: the readable contract and the benchmark baseline."""
from sr_ops.reference.adapn import adapn
from sr_ops.reference.class_dispatch import class_dispatch
from sr_ops.reference.conv3x3 import conv3x3
from sr_ops.reference.conv3x3_layernorm2d import conv3x3_layernorm2d
from sr_ops.reference.cross_scale_knn import cross_scale_knn
from sr_ops.reference.dwconv_gate_ca import dwconv_gate_ca
from sr_ops.reference.eca import eca
from sr_ops.reference.extract_patches import extract_patches, extract_patches_backward
from sr_ops.reference.gather_patches import gather_patches, gather_patches_backward
from sr_ops.reference.gelu_layernorm2d import gelu_layernorm2d
from sr_ops.reference.graph_aggregate import graph_aggregate
from sr_ops.reference.layernorm2d import layernorm2d
from sr_ops.reference.merge_patches import merge_patches, merge_patches_backward
from sr_ops.reference.naf_ffn import naf_ffn
from sr_ops.reference.patch2img import patch2img, patch2img_backward
from sr_ops.reference.to_channels_last import to_channels_last
from sr_ops.reference.vertex_map import vertex_map

__all__ = [
    "patch2img", "patch2img_backward", "adapn", "cross_scale_knn", "eca", "dwconv_gate_ca",
    "graph_aggregate", "layernorm2d", "gelu_layernorm2d", "naf_ffn", "vertex_map",
    "extract_patches", "extract_patches_backward", "class_dispatch", "gather_patches",
    "gather_patches_backward", "merge_patches", "merge_patches_backward", "to_channels_last", "conv3x3",
    "conv3x3_layernorm2d"
]

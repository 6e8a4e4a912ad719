"""Pure-PyTorch definitions of every op: the readable contract and the benchmark baseline."""
from sr_ops.reference.patch2img import patch2img, patch2img_backward
from sr_ops.reference.adapn import adapn
from sr_ops.reference.cross_scale_knn import cross_scale_knn
from sr_ops.reference.eca import eca
from sr_ops.reference.dwconv_gate_ca import dwconv_gate_ca
from sr_ops.reference.graph_aggregate import graph_aggregate
from sr_ops.reference.layernorm2d import layernorm2d
from sr_ops.reference.vertex_map import vertex_map

__all__ = ["patch2img", "patch2img_backward", "adapn", "cross_scale_knn", "eca", "dwconv_gate_ca", "graph_aggregate", "layernorm2d", "vertex_map"]

"""Public ops: each a torch.library custom op with validation, a fake kernel and autograd."""
from sr_ops.ops.cross_scale_knn import cross_scale_knn
from sr_ops.ops.patch2img import patch2img

__all__ = ["cross_scale_knn", "patch2img"]

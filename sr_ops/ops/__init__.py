"""Public ops: each a torch.library custom op with validation, a fake kernel and autograd."""
from sr_ops.ops.patch2img import patch2img

__all__ = ["patch2img"]

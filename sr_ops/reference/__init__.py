"""Pure-PyTorch definitions of every op: the readable contract and the benchmark baseline."""
from sr_ops.reference.patch2img import patch2img, patch2img_backward

__all__ = ["patch2img", "patch2img_backward"]

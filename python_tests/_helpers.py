"""Helpers shared by the test modules."""
import torch


def device_for(backend: str) -> torch.device:
    """Where a backend's inputs live: cuda/triton on the GPU when there is one."""
    if backend == "cuda" or (backend == "triton" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")

"""Checks a CUDA build: every sr_ops:: kernel schema with a CPU kernel has a CUDA kernel too.

    python -m sr_ops._build_check

Needs no GPU: the kernels register when sr_ops._C is imported. A glue file left out of
the build, or a registration under a misspelt name, shows here rather than as a fallback
to another backend at run time. Exit status 1 when a kernel is missing.
"""
from __future__ import annotations

import sys

import torch

# Kernels that have no CUDA version yet, by design for now, with the reason: CUDA tensors
# take the op's reference path. Listed here, so that any other gap still fails the check.
CPU_ONLY = {
    "sr_ops::_naf_ffn_fwd": "NAFNet FFN half: CPU kernels and a Triton forward so far (issue 16); no CUDA C++ kernel",
    "sr_ops::_naf_ffn_bwd": "its backward, likewise",
    "sr_ops::_to_channels_last_fwd": "a layout copy: on a GPU torch's own copy kernel is already bandwidth-bound",
    "sr_ops::_conv3x3_fwd": "Winograd for AVX2 CPUs, where oneDNN has none; on a GPU cuDNN already has its own",
    "sr_ops::_conv3x3_layernorm2d_fwd": "its norm epilogue; CUDA runs cuDNN's convolution then the layernorm2d kernels",
    "sr_ops::_conv3x3_bwd_weight": "conv3x3's weight gradient in a fixed order (CPU determinism); cuDNN's on a GPU",
    "sr_ops::_conv3x3_gelu": "GELU and GELU' for conv3x3_layernorm2d's CPU backward (ATen's is thread-dependent)",
}


def main() -> int:
    import sr_ops._C as ext  # registers the kernels with the dispatcher

    if not getattr(ext, "WITH_CUDA", 0):
        print(f"sr_ops._C ({ext.__file__}) was built without CUDA")
        return 1
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    names = sorted(n for n in torch._C._dispatch_get_all_op_names() if n.startswith("sr_ops::"))
    cpu = [n for n in names if has(n, "CPU")]
    missing = [n for n in cpu if not has(n, "CUDA") and n not in CPU_ONLY]
    for n in missing:
        print(f"MISSING CUDA kernel: {n}")
    for n, why in CPU_ONLY.items():
        print(f"CPU only (allowed): {n}: {why}")
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), {ext.__file__}: "
          f"{len(names)} sr_ops schemas, {len(cpu)} with a CPU kernel, "
          f"{sum(has(n, 'CUDA') for n in cpu)} of them with a CUDA kernel, "
          f"{sum(n in CPU_ONLY for n in cpu)} allowed without")
    return 1 if missing or not cpu else 0


if __name__ == "__main__":
    sys.exit(main())

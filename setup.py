"""Builds sr_ops and its extension sr_ops._C.

CPU kernels (csrc/ops.cpp, csrc/cpu/*.cpp) are always built, with -O3 and OpenMP.
CUDA kernels (csrc/cuda/*.cu and *_glue.cpp) are added when torch was built with CUDA
and CUDA_HOME is found, or when FORCE_CUDA=1. SR_OPS_SKIP_EXT=1 builds no extension
(the reference and Triton backends still work).

Install with `pip install -e .` (or with --no-build-isolation): the extension must be
compiled against the torch that is installed, and tools/build_backend.py (the PEP 517
backend, see pyproject.toml) makes that torch importable in pip's isolated build env.
"""
import glob
import os
import re

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _meta(name):
    """A value of sr_ops/_meta.py, read as text: importing sr_ops needs torch and the extension."""
    with open(os.path.join(ROOT, "sr_ops", "_meta.py")) as f:
        return re.search(rf'^{name} = "([^"]+)"', f.read(), re.M).group(1)


def _flag(name):
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def _extensions():
    if _flag("SR_OPS_SKIP_EXT"):
        return [], {}
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    def rel(pattern):
        return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))

    with_cuda = _flag("FORCE_CUDA") or (torch.version.cuda is not None and CUDA_HOME is not None)
    sources = rel("csrc/ops.cpp") + rel("csrc/cpu/*.cpp")
    cxx = ["-O3", "-std=c++20", "-fopenmp"]
    # Python's CFLAGS often carry -g; with torch's headers that makes each object ~30x
    # bigger and its compile ~4x slower (67 s vs 16 s for csrc/cpu/eca.cpp). So -g0
    # (it comes last, so it wins) unless CFLAGS asks for -g.
    if "-g" not in os.environ.get("CFLAGS", "").split():
        cxx.append("-g0")
    kwargs = dict(include_dirs=[os.path.join(ROOT, "csrc")], extra_link_args=["-fopenmp"])
    if with_cuda:
        sources += rel("csrc/cuda/*.cu") + rel("csrc/cuda/*_glue.cpp")
        arch = os.environ.get("SR_OPS_CUDA_ARCH")
        # No --use_fast_math: it approximates division, sqrt and exp (ECA's sigmoid, the
        # norms' rstd) and flushes denormals, and no kernel documents a tolerance for that;
        # the CUDA kernels must round like the CPU ones and the reference.
        nvcc = ["-O3", "-std=c++17", "-lineinfo"]
        if arch:
            nvcc += [f"-gencode=arch=compute_{arch},code=sm_{arch}"]
        ext = CUDAExtension(
            "sr_ops._C", sources, extra_compile_args={"cxx": cxx + ["-DSR_OPS_WITH_CUDA=1"], "nvcc": nvcc},
            **kwargs,
        )
    else:
        ext = CppExtension("sr_ops._C", sources, extra_compile_args={"cxx": cxx}, **kwargs)
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()

setup(
    name="sr_ops",
    version=_meta("__version__"),
    description="Fused operators for image super-resolution models",
    packages=find_packages(include=["sr_ops", "sr_ops.*"]),
    python_requires=">=3.10",
    install_requires=["torch>=2.6", "numpy", "pillow", "pypng", "tqdm"],
    extras_require={"triton": ["triton"], "test": ["pytest", "pytest-benchmark", "pytest-xdist"],
                    "bench": ["pytest-benchmark", "matplotlib", "faiss-cpu"]},
    entry_points={"console_scripts": ["sr-ops=sr_ops.__main__:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)

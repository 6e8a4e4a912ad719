"""Builds the CUDA simulator extension `sr_ops_cudasim` (csrc/testing/cuda_sim/README.md).

Every csrc/cuda/*.cu file is compiled as host C++ with -DSR_CUDA_SIM against the
stand-in CUDA headers, together with the unchanged *_glue.cpp files; the result is a
torch library `sr_ops_cudasim` holding the same kernel schemas as `sr_ops` (copied from the
extension's, each defined by its csrc/cpu/<op>.cpp), whose CPU kernels are the CUDA glue and
kernels. Built once into build/cuda_sim[-tsan] with ninja (incremental).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
SIM = CSRC / "testing" / "cuda_sim"


def kernel_stems() -> list[str]:
    """The .cu file stems, which name the ops the simulator covers."""
    return sorted(p.stem for p in (CSRC / "cuda").glob("*.cu"))


def _wrappers(out: Path) -> list[str]:
    # cpp_extension sends .cu files to nvcc; a one-line .cpp including each keeps the host
    # compiler. Rewritten only when changed, so ninja rebuilds only what changed.
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem in kernel_stems():
        p = out / f"{stem}_cu.cpp"
        text = f'#include "cuda/{stem}.cu"\n'
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
        paths.append(str(p))
    return paths


def build(tsan: bool = False) -> str:
    """Builds (if needed) and loads the simulator library; returns its name."""
    from torch.utils.cpp_extension import load

    name = "sr_ops_cudasim_tsan" if tsan else "sr_ops_cudasim"
    build_dir = ROOT / "build" / ("cuda_sim-tsan" if tsan else "cuda_sim")
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = (
        _wrappers(build_dir / "src")
        + sorted(str(p) for p in (CSRC / "cuda").glob("*_glue.cpp"))
        + [str(SIM / n) for n in ("sim.cpp", "selftest.cpp", "library.cpp", "record.cpp")]
    )
    # -O1 keeps the build short; -g1 (line tables only) gives TSan reports with lines at
    # 21 s a file, where full -g spends 56 s on torch's headers' debug info.
    cflags = ["-std=c++20", "-O1", "-g1", "-DSR_CUDA_SIM=1", "-Wno-unused-function"]
    ldflags = []
    if tsan:
        cflags.append("-fsanitize=thread")
        ldflags.append("-fsanitize=thread")
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 2))
    # The TSan run preloads libtsan into Python; the compiler must not inherit it.
    preload = os.environ.pop("LD_PRELOAD", None)
    try:
        load(
            name=name,
            sources=sources,
            extra_cflags=cflags,
            extra_ldflags=ldflags,
            # The stand-in headers must come before any real CUDA include directory.
            extra_include_paths=[str(SIM), str(CSRC)],
            build_directory=str(build_dir),
            is_python_module=False,
            with_cuda=False,
            verbose=os.environ.get("SR_SIM_VERBOSE") == "1",
        )
    finally:
        if preload is not None:
            os.environ["LD_PRELOAD"] = preload
    return name


_SCHEMAS: dict[str, torch.library.Library] = {}  # kept alive: a Library's definitions die with it


def define_kernel_schemas(name: str) -> int:
    """Defines in library `name` every kernel schema (`sr_ops::_*`) of the extension, so the
    glue registered there is called exactly as sr_ops's kernels are. Returns their count."""
    import sr_ops  # noqa: F401  (loads sr_ops._C, whose CPU files define the schemas)

    if name in _SCHEMAS:
        return -1
    lib = _SCHEMAS[name] = torch.library.Library(name, "FRAGMENT")
    count = 0
    for op in sorted(torch._C._dispatch_get_all_op_names()):
        ns, _, short = op.partition("::")
        # (Skipping those another copy of this module, loaded by path, has defined.)
        if ns == "sr_ops" and short.startswith("_") and not hasattr(getattr(torch.ops, name), short):
            schema = str(getattr(torch.ops.sr_ops, short).default._schema)
            lib.define(schema.split("::", 1)[1])
            count += 1
    return count


def ops():
    """torch.ops.sr_ops_cudasim, after building."""
    build(tsan=os.environ.get("SR_SIM_TSAN") == "1")
    define_kernel_schemas("sr_ops_cudasim")  # the library's name in both builds
    return torch.ops.sr_ops_cudasim

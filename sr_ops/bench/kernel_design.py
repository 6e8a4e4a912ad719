"""Each GPU kernel's stated design, as rules over its compiled code (sr_ops.bench.ptx_facts).

The rules (docs/gpu-roofline.md, "Compiled-code rules"):

* ``no-spill``: no local-memory spill stores or loads in float32, float16 and bfloat16 code;
* ``no-float-atomics``: no float adds into global memory by atomics (the result would depend
  on the order the hardware picks, so the kernel would not be deterministic);
* ``no-div64``: no 64-bit integer division or remainder: index math is 32-bit, a 64-bit
  variant is for tensors of 2**31 elements or more only (``INDEX64`` names those instantiations);
* ``mma``: FLOP-bound kernels issue tensor-core instructions for float32 (split precision),
  float16 and bfloat16;
* ``ld128``: streaming kernels load their float32 data 128 bits a thread at a time.

A rule a kernel breaks today is in ``WAIVERS`` with the reason and the issue that removes
it; python_tests check both ways: every violation is waived, and every waiver still names a
violation (a fixed kernel must leave the list, so the list is the work left).
"""
from __future__ import annotations

import fnmatch

HALF_AND_FLOAT = ("float32", "float16", "bfloat16")

# Kernels whose time is their arithmetic (docs/gpu-roofline.md): tensor cores required.
FLOP_BOUND = {
    "triton": ("naf_ffn.*", "cross_scale_knn._knn_fwd_kernel"),
    "cuda": ("cross_scale_knn.knn_fwd_kernel",),
}
# Kernels whose time is HBM traffic over contiguous float rows: 128-bit loads required.
STREAMING = {
    "triton": ("layernorm2d.*", "eca._plane_sums_kernel", "eca._apply_kernel", "dwconv_gate_ca._pool_kernel",
               "dwconv_gate_ca._scale_kernel", "dwconv_gate_ca._gu_kernel", "dwconv_gate_ca._dx_kernel",
               "adapn.*", "patch2img.*", "graph_aggregate._affine_kernel", "graph_aggregate._fold_kernel",
               "gather_patches.*", "merge_patches.*"),
    "cuda": ("layernorm2d.fwd_kernel", "layernorm2d.gelu_fwd_kernel", "layernorm2d.bwd_x_kernel",
             "eca.plane_kernel", "eca.apply_kernel", "dwconv_gate_ca.pool_kernel", "dwconv_gate_ca.scale_kernel",
             "dwconv_gate_ca.gu_kernel", "dwconv_gate_ca.dx_kernel", "adapn.*", "patch2img.*",
             "graph_aggregate.affine_kernel", "graph_aggregate.fold_kernel", "gather_patches.crop_kernel",
             "gather_patches.paste_kernel", "merge_patches.*"),
}
# CUDA instantiations for tensors of 2**31 elements or more: (kernel glob, template argument);
# Triton's are the compile cases whose variant names index64 (the wrapper's INDEX64 choice).
INDEX64 = {"cuda": (("*", "int64"),)}  # split_name writes int64_t (long) as int64

WAIVERS: dict[tuple[str, str, str], str] = {}


def _waive(backend: str, rule: str, why: str, kernels: str) -> None:
    for k in kernels.split():
        WAIVERS[(backend, k, rule)] = why


_SCALAR = "issue 32: float32 rows loaded 4 bytes a thread; to be vectorised (or its row length shown too short)"
_DIV64 = "issue 32: 64-bit index math in the kernel; int32 offsets with a 64-bit variant chosen at launch"
_ATOMICS = "issue 32: the backward scatters with float atomics; output-stationary through an inverse index"
_MMA = "issue 32 (naf_ffn) / issue 33 (KNN): dot products on CUDA cores, not tensor cores"
_SPILL = "issue 32 (naf_ffn float32 at width 128) / issue 33 (KNN bfloat16 candidate sets)"

# WAIVERS-BEGIN (the violations of the day; regenerate the list, never widen a rule)
_waive("triton", "ld128", _SCALAR,
       "graph_aggregate._affine_kernel graph_aggregate._fold_kernel")
_waive("triton", "mma", _MMA,
       "cross_scale_knn._knn_fwd_kernel")
_waive("triton", "no-div64", _DIV64,
       "cross_scale_knn._knn_fwd_kernel graph_aggregate._affine_kernel graph_aggregate._fold_kernel "
       "graph_aggregate._query_grad_kernel graph_aggregate._weight_grad_kernel")
_waive("triton", "no-spill", _SPILL,
       "cross_scale_knn._knn_fwd_kernel naf_ffn._fwd_kernel naf_ffn_bwd._dw_kernel naf_ffn_bwd._dx_kernel")
_waive("cuda", "ld128", _SCALAR,
       "dwconv_gate_ca.dx_kernel graph_aggregate.affine_kernel graph_aggregate.fold_kernel "
       "patch2img.bwd_kernel patch2img.fwd_kernel")
_waive("cuda", "mma", _MMA,
       "cross_scale_knn.knn_fwd_kernel")
_waive("cuda", "no-div64", _DIV64,
       "cross_scale_knn.knn_fwd_kernel extract_patches.corner_kernel graph_aggregate.affine_kernel "
       "graph_aggregate.fill_identity_kernel graph_aggregate.fold_kernel graph_aggregate.identity_coef_kernel "
       "graph_aggregate.query_grad_kernel graph_aggregate.weight_grad_kernel vertex_map.map_kernel")
# WAIVERS-END


def _matches(kernel: str, globs) -> bool:
    return any(fnmatch.fnmatchcase(kernel, g) for g in globs)


def _is_index64(backend: str, rec: dict) -> bool:
    if backend == "triton":  # compile cases that force the wrapper's 64-bit choice
        return "index64" in rec.get("variant", "").split()
    targs = rec.get("targs") or []
    return any(_matches(rec["key"], (g,)) and t in targs[1:] for g, t in INDEX64.get(backend, ()))


def key(backend: str, rec: dict) -> str:
    """'op.kernel' for a compile record of either backend."""
    return rec["kernel"] if backend == "triton" else f"{rec['op']}.{rec['kernel']}"


def violations(backend: str, records: list[dict]) -> set[tuple[str, str, str]]:
    """{(kernel, rule, detail)} over compile records (compile_check's or cuda_resources').
    ``mma`` and ``ld128`` hold for a kernel and dtype when one of its instantiations has them:
    a kernel may keep a scalar variant for unaligned tensors, chosen at launch."""
    out, has = set(), {}
    for rec in records:
        if not rec.get("ok", True) or rec.get("mma") is None:
            continue
        rec = dict(rec, key=key(backend, rec))
        k, dt, where = rec["key"], rec["dtype"], f"{rec['dtype']} sm_{rec.get('arch', '')}".rstrip("_ ")
        if dt in HALF_AND_FLOAT and (rec.get("spill_stores") or rec.get("spill_loads")):
            out.add((k, "no-spill", f"{where}: {rec['spill_stores']}/{rec['spill_loads']} B"))
        if rec["float_atomics"]:
            out.add((k, "no-float-atomics", f"{where}: {rec['float_atomics']}"))
        if rec["div64"] and not _is_index64(backend, rec):
            out.add((k, "no-div64", f"{where}: {rec['div64']}"))
        if dt in HALF_AND_FLOAT and _matches(k, FLOP_BOUND[backend]):
            has.setdefault((k, "mma", where), []).append(rec["mma"])
        if dt == "float32" and _matches(k, STREAMING[backend]):
            has.setdefault((k, "ld128", where), []).append(rec["ld128"])
    out |= {entry for entry, counts in has.items() if not any(counts)}
    return out


def unwaived(backend: str, found) -> list[str]:
    return sorted(f"{k} breaks {rule} ({detail})" for k, rule, detail in found
                  if (backend, k, rule) not in WAIVERS)


def stale_waivers(backend: str, found) -> list[str]:
    broken = {(k, rule) for k, rule, _ in found}
    return sorted(f"{k} {rule}: {why}" for (b, k, rule), why in WAIVERS.items()
                  if b == backend and (k, rule) not in broken)

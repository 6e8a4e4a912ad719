"""Every CUDA kernel, run on the CPU by the simulator, against the CPU kernels.

`make cuda-sim` runs this folder (`OPS="eca patch2img"` keeps those .cu stems only);
`make cuda-sim-tsan` runs it again on a ThreadSanitizer build with the free schedule.
The forward and reverse schedules each run every case in float32 and float64 (the half types
run the reverse one): a barrier missing between a shared-memory write and another thread's
read returns the old contents under one of them.
"""
from __future__ import annotations

import os
import zlib

import pytest
import torch
import torch.nn.functional as F

import sr_ops  # noqa: F401  (loads sr_ops._C, the CPU kernels compared against)

from _build import ops as sim_ops
from _cases import CASES, cpu_ops

TSAN = os.environ.get("SR_SIM_TSAN") == "1"
SCHEDULES = {"forward": 0, "reverse": 1, "free": 2}
SELECTED = os.environ.get("SR_SIM_OPS", "").split()
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def _selected(cases):
    unknown = set(SELECTED) - {c.stem for c in CASES}
    if unknown:
        raise pytest.UsageError(f"OPS names no .cu file: {sorted(unknown)}")
    return [c for c in cases if not SELECTED or c.stem in SELECTED]


def _params():
    for case in _selected(CASES):
        for dt in DTYPES if case.half else DTYPES[:2]:
            # A missing barrier shows under one of the two orders whatever the dtype, so the
            # half types (which add only their load/store conversions) run the reverse one.
            half = dt in (torch.float16, torch.bfloat16)
            for sched in ["free"] if TSAN else (["reverse"] if half else ["forward", "reverse"]):
                # Under TSan (~10x slower) float32 covers every code path.
                if TSAN and dt != torch.float32:
                    continue
                yield pytest.param(case, dt, sched, id=f"{case.id}-{str(dt)[6:]}-{sched}")


@pytest.fixture(scope="module")
def sim():
    return sim_ops()


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _upcast(args):
    # The CPU side of a half-precision case runs in float32 on the same (rounded) values.
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.dtype in (torch.float16, torch.bfloat16)
                 else a for a in args)


def _assert_close(got, want, dtype, what):
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    if not want.is_floating_point():
        assert torch.equal(got, want), f"{what}: {int((got != want).sum())} of {got.numel()} differ"
        return
    tol = TOL[dtype]
    g, w = got.double(), want.double()
    bad = ~((g - w).abs() <= tol * (1 + w.abs())) & ~(torch.isnan(g) & torch.isnan(w))
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {g.numel()} differ, worst "
                           f"{float((g - w).abs()[bad].max())} (tol {tol})")


def _patch_dist(q, key, idx, P, t):
    # Exact squared distance of each query patch to the key patch numbered idx.
    qp = F.unfold(q.double(), P, stride=t).transpose(1, 2)  # (B, m, D)
    kp = F.unfold(key.double(), P, stride=t).transpose(1, 2)  # (B, n, D)
    chosen = torch.stack([kp[b][idx[b]] for b in range(q.shape[0])])  # (B, m, k, D)
    return ((qp[:, :, None, :] - chosen) ** 2).sum(-1)


@pytest.mark.parametrize("case,dtype,schedule", list(_params()))
def test_kernel_matches_cpu(sim, case, dtype, schedule):
    g = torch.Generator().manual_seed(zlib.crc32(f"{case.id}-{dtype}".encode()))
    args = case.make(g, dtype)
    sim._sim_set_schedule(SCHEDULES[schedule])
    launches = sim._sim_launch_count()
    got = _as_tuple(getattr(sim, case.op)(*args))
    assert sim._sim_launch_count() > launches, "no kernel was launched"
    half = dtype in (torch.float16, torch.bfloat16)
    want = _as_tuple(getattr(cpu_ops, case.op)(*(_upcast(args) if half else args)))
    assert len(got) == len(want)
    if case.op == "_cross_scale_knn_fwd":
        q, key, _, P, t = args[0], args[1], args[2], args[3], args[4]
        # Neighbour lists must agree exactly where distances are well separated (float32 /
        # float64 on continuous data); in half precision equal-distance swaps are legal,
        # so each returned distance must be its index's true distance instead.
        _assert_close(got[0], want[0], dtype, "dist")
        if half:
            _assert_close(got[0], _patch_dist(q, key, got[1], P, t).to(got[0].dtype), dtype, "dist of idx")
        else:
            _assert_close(got[1], want[1], dtype, "idx")
        return
    for i, (a, b) in enumerate(zip(got, want)):
        if b.numel() == 0:
            assert a.numel() == 0, f"output {i}: expected empty, got {tuple(a.shape)}"
            continue
        assert a.dtype == (dtype if half and b.dtype == torch.float32 else b.dtype), f"output {i} dtype {a.dtype}"
        _assert_close(a, b, dtype, f"output {i}")


def test_every_kernel_file_has_cases():
    from _build import kernel_stems
    assert set(kernel_stems()) == {c.stem for c in CASES}

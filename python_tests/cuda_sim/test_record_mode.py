"""The simulator's record mode (sim.h) and docs/gpu-cuda-launches.json, which it writes
through sr_ops/bench/roofline_cuda.py: launches are written down, not run, with the sizes of
the buffers they touch; the committed file is what a capture gives now."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

from _build import ops as sim_ops

TSAN = os.environ.get("SR_SIM_TSAN") == "1"
SELECTED = os.environ.get("SR_SIM_OPS", "").split()


@pytest.fixture(scope="module")
def sim():
    return sim_ops()


def _record(sim, fn):
    sim._sim_take_records()
    sim._sim_record(True)
    try:
        out = fn()
    finally:
        sim._sim_record(False)
    return out, json.loads(sim._sim_take_records())


def test_record_mode_skips_the_body(sim):
    before = sim._sim_launch_count()
    out, recs = _record(sim, lambda: sim._sim_selftest("block_sum", torch.ones(64)))
    assert sim._sim_launch_count() == before
    assert torch.equal(out, torch.zeros(128))  # as the glue allocated it: the kernel never wrote
    # x: 64 floats (256 bytes), out: 128 (512).
    assert recs == [{"kernel": "block_sum_kernel<true>", "file": recs[0]["file"], "grid": [2, 1, 1],
                     "block": [64, 1, 1], "smem": 0, "buffers": [256, 512], "unknown": 0, "struct_params": 0}]
    assert recs[0]["file"].endswith("selftest.cpp")
    # Off again: the same self-test runs.
    assert torch.equal(sim._sim_selftest("block_sum", torch.ones(64))[:2], torch.full((2,), 64.0))


def test_record_mode_dynamic_shared_memory(sim):
    _, recs = _record(sim, lambda: sim._sim_selftest("dynamic_shared", torch.ones(64)))
    assert [(r["kernel"], r["smem"], r["buffers"]) for r in recs] == [("dynamic_shared_kernel", 256, [512])]


def test_pointer_outside_recorded_allocations_is_unknown(sim):
    x = torch.ones(64)  # allocated before recording: its size is not known
    _, recs = _record(sim, lambda: sim._sim_selftest("block_sum", x))
    assert (recs[0]["buffers"], recs[0]["unknown"]) == ([512], 1)


def test_layernorm2d_launch_as_the_glue_computes(sim):
    B, C, H, W = 2, 8, 5, 7

    def run():
        x = torch.empty(B, C, H, W)
        w, b = torch.empty(C), torch.empty(C)
        return sim._layernorm2d_fwd(x, w, b, 1e-6)

    _, recs = _record(sim, run)
    fwd = [r for r in recs if r["kernel"].startswith("fwd_kernel")]
    assert len(fwd) == 1 and fwd[0]["file"].endswith("layernorm2d.cu")
    grid, block = fwd[0]["grid"], fwd[0]["block"]
    # One thread per pixel (H * W = 35 is no multiple of the 128-bit pack), images along y
    # (pixel_grid in layernorm2d.cu).
    assert grid == [math.ceil(H * W / block[0]), B, 1] and block[1:] == [1, 1]
    # x and y, weight and bias: each buffer once.
    assert sorted(fwd[0]["buffers"]) == [C * 4, C * 4, B * C * H * W * 4, B * C * H * W * 4]


def test_capture_names_kernels_by_their_file():
    from sr_ops.bench import roofline_cuda
    from sr_ops.bench.roofline_workloads import Call

    x = torch.empty(1, 4, 6, 6, device="meta")
    call = Call("test", "sr_ops.gelu_layernorm2d.default", (x, x.new_empty(4), x.new_empty(4), 1e-6, "none"))
    entry = roofline_cuda.capture_call(roofline_cuda.load_sim(), call, "fwd", "float32", None)
    # the GELU prologue is a template argument of layernorm2d.cu's fwd_kernel
    assert [launch["kernel"] for launch in entry["launches"]] == ["layernorm2d.fwd_kernel"]


@pytest.mark.skipif(TSAN or bool(SELECTED), reason="whole-workload capture: the plain full run only")
def test_cuda_launches_json_is_fresh():
    from sr_ops.bench import roofline_cuda

    # Zeros for the index tensors (the file holds the models' real ones): the same launches,
    # as they depend on shapes only.
    now = roofline_cuda.dumps(roofline_cuda.capture(indices="zeros", log=lambda *_: None))
    with open(roofline_cuda.JSON_PATH) as f:
        committed = f.read()
    assert now == committed, ("docs/gpu-cuda-launches.json is stale: run "
                              "`python -m sr_ops.bench.roofline_cuda` (it needs the simulator built)")

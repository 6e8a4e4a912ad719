"""docs/gpu-roofline.md is what `python -m sr_ops.bench.roofline` writes today, and the paper
model of the H100 behind it gives the figures a GPU engineer would work out by hand."""
import json
import os

import pytest

pytest.importorskip("triton")

from sr_ops.bench import roofline  # noqa: E402
from sr_ops.bench import roofline_model as rm  # noqa: E402


def test_document_is_fresh(monkeypatch):
    """Stale after a kernel's grid, warps or tensors change, or the facts file does."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # launches are intercepted, nothing runs
    doc, readme = roofline.render_all(roofline.load_facts())
    with open(roofline.DOC) as f:
        assert f.read() == doc, "docs/gpu-roofline.md is stale: run python -m sr_ops.bench.roofline"
    with open(roofline.README) as f:
        assert f.read() == readme, "README.md's GPU roofline table is stale: run python -m sr_ops.bench.roofline"


def test_facts_name_every_triton_kernel():
    from sr_ops.triton.compile_check import all_kernels

    facts = roofline.load_facts()
    missing = sorted(set(all_kernels()) - set(facts["triton"]))
    assert not missing, f"docs/gpu-kernel-facts.json lacks {missing}: run python -m sr_ops.bench.roofline " \
        "--update-facts"


def test_blocks_per_sm_limits():
    m = rm.H100
    assert rm.blocks_per_sm(m, 128, 32, 0) == 16  # threads: 2048 / 128
    assert rm.blocks_per_sm(m, 256, 255, 0) == 1  # registers: 256 a thread x 256 threads = 65,536
    assert rm.blocks_per_sm(m, 128, 64, 100 * 1024) == 2  # shared memory: 228 KB / (100 + 1) KB
    assert rm.blocks_per_sm(m, 32, 16, 0) == 32  # the block limit
    assert rm.blocks_per_sm(m, 1024, 255, 0) == 0  # cannot launch


def test_streaming_launch_at_hbm_bound():
    ln = rm.Launch("k", bytes=1e9, blocks=100_000, threads=256, regs=32, load_bytes=16)
    t = rm.launch_time(rm.H100, ln)
    assert t["limit"] == "HBM"
    assert t["s"] == pytest.approx(rm.LAUNCH_S + 1e9 / rm.H100.hbm)


def test_few_blocks_cannot_fill_the_gpu():
    """A 64-block reduction on 132 SMs: half the SMs idle, whatever its loads."""
    full = rm.launch_time(rm.H100, rm.Launch("k", 1e9, blocks=100_000, threads=128, regs=32, load_bytes=16))
    few = rm.launch_time(rm.H100, rm.Launch("k", 1e9, blocks=64, threads=128, regs=32, load_bytes=16))
    assert few["limit"] == "SMs used" and few["s"] > 2 * full["s"]


def test_scalar_loads_need_occupancy():
    """Little's law: 4-byte loads at 4 warps an SM keep too few bytes in flight for HBM."""
    ln = rm.Launch("k", 1e9, blocks=132, threads=128, regs=32, load_bytes=4)
    wide = rm.Launch("k", 1e9, blocks=132, threads=128, regs=32, load_bytes=16)
    assert rm.launch_time(rm.H100, ln)["limit"] == "bytes in flight"
    assert rm.launch_time(rm.H100, ln)["s"] > rm.launch_time(rm.H100, wide)["s"]


def test_flop_bound_launch_pays_its_last_wave():
    # 133 blocks of one slot each: two waves for 1.008 waves' work
    ln = rm.Launch("k", 0.0, flops=1e12, engine="tc16", blocks=133, threads=256, regs=255)
    t = rm.launch_time(rm.H100, ln)
    assert t["s"] == pytest.approx(rm.LAUNCH_S + 1e12 / rm.H100.bf16 * 2 / (133 / 132))


def test_rt4ksr_frame_within_target():
    """Issue 32's target: RT4KSR x2 1920x1080 -> 4K at <= 1 ms a frame, modelled."""
    with open(roofline.DOC) as f:
        row = next(line for line in f if line.startswith("| RT4KSR x2 | bfloat16 |"))
    assert float(row.split("|")[6]) <= 1.0, row


def test_facts_file_is_json_with_both_backends():
    with open(roofline.FACTS) as f:
        facts = json.load(f)
    assert set(facts) >= {"arch", "triton", "cuda"}
    assert os.path.exists(roofline.DOC)


def test_measured_column_from_gpu_check(tmp_path, monkeypatch):
    """make gpu-check's roofline rows (benchmarks/results/gpu-*.json) fill the measured columns."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    rows = [{"op": "layernorm2d fwd", "case": "RT4KSR x2", "dtype": "float32", "backend": "triton", "ms": 0.05,
             "status": "ok"},
            {"op": "layernorm2d fwd", "case": "RT4KSR x2", "dtype": "float32", "backend": "cuda", "ms": 0.04,
             "status": "ok"},
            {"op": "layernorm2d bwd", "case": "RT4KSR x2", "dtype": "float32", "backend": "cuda", "ms": 9.0,
             "status": "failed"}]
    (tmp_path / "gpu-nvidia-h100.json").write_text(json.dumps({"roofline": rows}))
    text = roofline.render(roofline.load_facts(), str(tmp_path))
    line = next(x for x in text.splitlines() if x.startswith("| RT4KSR x2 | layernorm2d | fwd | float32 |"))
    # measured µs, then measured / modelled (Triton's 31.9 µs, CUDA's 31.7 µs modelled)
    tri, cud = (float(c.split("(")[1].rstrip(") ")) for c in line.split("|")[-3:-1])
    assert line.split("|")[-3].strip().startswith("50.0 (") and line.split("|")[-2].strip().startswith("40.0 (")
    assert tri == pytest.approx(50.0 / float(line.split("|")[10].split("(")[0]), rel=0.01)
    assert cud == pytest.approx(40.0 / float(line.split("|")[11].split("(")[0]), rel=0.01)
    bwd = next(x for x in text.splitlines() if x.startswith("| RT4KSR x2 | layernorm2d | bwd | float32 |"))
    assert bwd.endswith("| — | — |"), bwd
    assert "in gpu-nvidia-h100.json" in text

"""`make gpu-check`'s dry run (GPU_CHECK_DRY=1): the whole GPU runbook on the CPU with tiny
sizes, so that the script the GPU machine runs has run end to end before it gets there.
About 3 minutes on 2 cores; test_planted_failures checks that failures are reported."""
import json
import os
import subprocess
import sys
import time

import pytest

from sr_ops.bench import gpu_report
from sr_ops.bench.gpu_check import STAGES, read_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPS = {"patch2img", "cross_scale_knn", "adapn", "graph_aggregate", "layernorm2d", "eca", "dwconv_gate_ca",
       "vertex_map", "patch_dispatch", "naf_ffn", "gelu_layernorm2d"}


def _dry(tmp_path, *args, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_")}
    e.update(GPU_CHECK_WORK=str(tmp_path / "work"), PYTHONUNBUFFERED="1", **env)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "sr_ops.bench.gpu_check", "--dry", "--out", str(tmp_path), *args],
                       cwd=ROOT, env=e, capture_output=True, text=True, timeout=900)
    print(p.stdout[-3000:], p.stderr[-3000:])
    doc = json.load(open(tmp_path / "gpu-dry-cpu.json"))
    return p, doc, time.monotonic() - t0


@pytest.mark.slow
def test_dry_run_end_to_end(tmp_path):
    p, doc, wall = _dry(tmp_path)
    assert p.returncode == 0, [(s["name"], s["status"], s.get("error")) for s in doc["stages"]]
    assert [s["name"] for s in doc["stages"]] == [s.name for s in STAGES]
    assert doc["failed"] == [] and doc["dry"] and doc["schema"] == gpu_report.SCHEMA
    assert set(doc["mm_tflops"]) == {"float32", "bfloat16"}
    ok = [r for r in doc["ops"] if r["status"] == "ok"]
    assert ok and len(ok) == len(doc["ops"])
    assert {r["op"] for r in ok} == OPS
    for op in OPS - {"vertex_map"}:  # every op in both dtypes, fused on both backends and in pure PyTorch
        got = {(r["dtype"], r["backend"]) for r in ok if r["op"] == op}
        assert {(d, b) for d in ("float32", "bfloat16") for b in ("cpu", "triton", "reference")} <= got, op
    assert any(r["impl"] == "torch.compile" for r in ok)
    knn = [r for r in ok if r["op"] == "cross_scale_knn"]
    assert all(r.get("mm_fraction") is not None for r in knn)
    fused = [r for r in ok if r["impl"] == "sr_ops" and r["dtype"] == "float32"]
    assert all(r["rel_err"] is not None and r["rel_err"] < 1e-3 for r in fused), \
        [(r["key"], r["rel_err"]) for r in fused if not (r["rel_err"] is not None and r["rel_err"] < 1e-3)]
    models = {(r["op"], r["dtype"], r["backend"]): r for r in doc["models"]}
    for dt in ("float16", "float32"):
        assert models[("rt4ksr", dt, "cpu")]["fps"] > 0 and models[("rt4ksr", dt, "reference")]["status"] == "ok"
    assert models[("ignn", "float32", "cpu")]["status"] == "ok"
    assert models[("ignn", "float32", "triton")]["status"] == "n/a"
    roof = doc["roofline"]  # the measured column of docs/gpu-roofline.md (cpu backend in the dry run)
    assert roof and all(r["status"] == "ok" and r["ms"] > 0 for r in roof), [r for r in roof if r["status"] != "ok"]
    assert {r["op"].split()[1] for r in roof} == {"fwd", "bwd"}
    md = (tmp_path / "gpu-dry-cpu.md").read_text()
    for heading in ("## Stages", "## torch.mm", "## Ops", "## Models"):
        assert heading in md
    assert "gpu-check summary (dry run)" in p.stdout and "all ok" in p.stdout
    print(f"dry run wall time: {wall:.0f} s")


def test_planted_failures(tmp_path):
    """A failing stage is recorded with its error, the next stage still runs, exit status 1."""
    p, doc, _ = _dry(tmp_path, "--stages", "env,mm,build", GPU_CHECK_PLANT="mm")
    assert p.returncode == 1
    st = {s["name"]: s for s in doc["stages"]}
    assert st["mm"]["status"] == "failed" and "planted failure in stage 'mm'" in st["mm"]["error"]
    assert st["env"]["status"] == "ok" and st["build"]["status"] == "ok"
    assert doc["failed"] == ["mm"]
    assert "planted failure" in (tmp_path / "gpu-dry-cpu.md").read_text()
    assert "FAILED: mm" in p.stdout


def test_rows_failures_and_resume(tmp_path, monkeypatch):
    """Item stages: a failing row is recorded and fails the stage; a row the process died in
    is recorded as such on the restart; rows never reached show as skipped."""
    from sr_ops.bench import gpu_stages

    work = str(tmp_path)
    r = gpu_stages.Runner("ops", work, deadline=time.time() + 600)
    r.plan(["a|x|float32|cpu", "b|x|float32|cpu", "c|x|float32|cpu", "d|x|float32|cpu"])
    base = {"op": "a", "case": "x", "dtype": "float32", "impl": "sr_ops", "backend": "cpu"}
    r.run("a|x|float32|cpu", base, lambda: {"ms": 1.0, "peak_mb": 1.0})
    monkeypatch.setenv("GPU_CHECK_PLANT", "row:b|x")
    r.run("b|x|float32|cpu", dict(base, op="b"), lambda: {"ms": 1.0})
    r.journal.start("c|x|float32|cpu")  # the process "dies" in row c
    r2 = gpu_stages.Runner("ops", work, deadline=time.time() + 600)  # the restart
    assert r2.run("a|x|float32|cpu", base, lambda: {}) is None  # done before
    assert r2.run("c|x|float32|cpu", dict(base, op="c"), lambda: {"ms": 1.0})["status"] == "failed"
    rows = {x["key"]: x for x in read_rows(work, "ops")}
    assert rows["a|x|float32|cpu"]["status"] == "ok"
    assert "planted failure" in rows["b|x|float32|cpu"]["error"]
    assert "died or hung" in rows["c|x|float32|cpu"]["error"]
    assert rows["d|x|float32|cpu"]["status"] == "skipped"
    rec = [{"name": "ops", "status": "ok", "seconds": 1, "rows": list(rows.values())}]
    doc = gpu_report.assemble(rec, dry=True, budget=480, started="now", wall_s=1)
    assert doc["failed"] == ["ops"] and "2 rows failed" in doc["stages"][0]["error"]
    md = gpu_report.markdown(doc)
    assert "planted failure" in md and "| skipped |" in md

"""The command line: `python -m sr_ops eval` and `bench` (JSON, plot), and their errors."""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_ops.__main__ import main

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"


def test_eval_rt4ksr_on_set5(capsys, tmp_path):
    ckpt = ASSETS / "weights" / "rt4ksr" / "rt4ksr_x2.pth"
    data = ASSETS / "datasets" / "SelfExSR" / "Set5" / "image_SRF_2"
    if not ckpt.exists() or not data.is_dir():
        pytest.skip(f"assets not found under {ASSETS}")
    table = tmp_path / "set5.csv"
    assert main(["eval", "--model", "rt4ksr", "--scale", "2", "--checkpoint", str(ckpt), "--dataset", str(data),
                 "--csv", str(table)]) == 0
    mean = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| mean")][0]
    model_psnr, bicubic_psnr, model_ssim, bicubic_ssim = (float(v) for v in mean.split("|")[2:6])
    assert abs(model_psnr - 36.15) < 0.05 and abs(bicubic_psnr - 33.66) < 0.05
    assert 0.9 < bicubic_ssim < model_ssim < 1
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows][-1] == "mean" and len(rows) == 6
    assert abs(float(rows[-1]["psnr"]) - model_psnr) < 0.006 and abs(float(rows[-1]["ssim"]) - model_ssim) < 1e-4


def test_eval_tiled_and_ensemble_run(capsys, tmp_path, seed):
    rng = np.random.default_rng(seed)
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, size=(24, 30 + 2 * k, 3), dtype=np.uint8)).save(tmp_path / f"h{k}.png")
    assert main(["eval", "--model", "nafnet_sr", "--scale", "2", "--dataset", str(tmp_path), "--tile", "8",
                 "--overlap", "4", "--ensemble"]) == 0
    out = capsys.readouterr().out
    assert "nafnet_sr+ x2 PSNR-Y" in out and "| h1 |" in out and "| mean |" in out


def fake_rows():
    from sr_ops.bench.runner import Row

    return [Row("eca", "tiny", "sr_ops", "cpu", 1.0, 2.0, 3.0, 1.5), Row("eca", "tiny", "pytorch", "eager", 3.0, 3.0),
            Row("eca", "tiny", "torch.compile", "inductor", 2.0, 2.5, 1.5, 1.2)]


def test_bench_json_has_commit_and_plot_is_a_png(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from sr_ops.bench import runner

    monkeypatch.setattr(runner, "run", lambda **kw: fake_rows())
    out_json, out_png = tmp_path / "b.json", tmp_path / "b.png"
    assert main(["bench", "--quick", "--json", str(out_json), "--plot", str(out_png)]) == 0
    data = json.loads(out_json.read_text())
    assert {"commit", "machine", "torch", "cpu_threads"} <= set(data["machine"]) and len(data["rows"]) == 3
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| eca" in capsys.readouterr().out


def test_bench_plot_without_matplotlib_says_so(tmp_path, monkeypatch, capsys):
    from sr_ops.bench import runner

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setattr(runner, "run", lambda **kw: pytest.fail("benchmarked before checking for matplotlib"))
    assert main(["bench", "--quick", "--plot", str(tmp_path / "b.png")]) == 2
    assert "pip install matplotlib" in capsys.readouterr().err and not (tmp_path / "b.png").exists()


def test_eval_unknown_model_exits_2(capsys, tmp_path):
    assert main(["eval", "--model", "nope", "--scale", "2", "--dataset", str(tmp_path)]) == 2
    assert "available:" in capsys.readouterr().err


def test_eval_missing_dataset_exits_2(capsys, tmp_path):
    assert main(["eval", "--model", "rt4ksr", "--scale", "2", "--dataset", str(tmp_path / "none")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err


def test_bench_threads_runs_each_count_and_reports_the_mm_fraction(monkeypatch, capsys):
    import torch

    from sr_ops.bench import runner
    from sr_ops.bench.cases import Case

    seen = []

    def work(d):
        seen.append(torch.get_num_threads())
        return d["x"] @ d["x"]

    case = Case(op="toy", label="mm 64", make=lambda dev: {"x": torch.randn(64, 64)},
                impls={"sr_ops": work, "pytorch": work}, extra={"flops": 2 * 64**3, "skipped": {"faiss": "absent"}})
    monkeypatch.setattr(runner, "all_cases", lambda: [case])
    monkeypatch.setattr(runner, "mm_gflops", lambda device="cpu": 10.0)
    before = torch.get_num_threads()
    assert main(["bench", "--op", "toy", "--threads", "1,2", "--repeats", "1"]) == 0
    captured = capsys.readouterr()
    assert set(seen) == {1, 2} and torch.get_num_threads() == before
    from sr_ops import cpu_memory

    assert cpu_memory.kept_threshold() is None, "bench left glibc's thresholds raised in this process"
    assert "| threads |" in captured.out and "of torch.mm" in captured.out
    assert "10.0 at 1 thread(s), 10.0 at 2 thread(s)" in captured.out
    assert "faiss skipped: absent" in captured.err


@pytest.mark.parametrize("bad", ["0", "a,b", ""])
def test_bench_bad_threads_exit_2(bad):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--threads", bad])
    assert exc.value.code == 2


def test_bench_unknown_op_exits_2_with_the_list(capsys):
    assert main(["bench", "--op", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown --op nope" in err and "cross_scale_knn" in err

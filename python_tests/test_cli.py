"""The command line: `python -m sr_ops eval` and its errors."""
from pathlib import Path

import pytest

from sr_ops.__main__ import main

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"


def test_eval_rt4ksr_on_set5(capsys):
    ckpt = ASSETS / "weights" / "rt4ksr" / "rt4ksr_x2.pth"
    data = ASSETS / "datasets" / "SelfExSR" / "Set5" / "image_SRF_2"
    if not ckpt.exists() or not data.is_dir():
        pytest.skip(f"assets not found under {ASSETS}")
    assert main(["eval", "--model", "rt4ksr", "--scale", "2", "--checkpoint", str(ckpt), "--dataset", str(data)]) == 0
    mean = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| mean")][0]
    model_psnr, bicubic_psnr = (float(v) for v in mean.split("|")[2:4])
    assert abs(model_psnr - 36.15) < 0.05 and abs(bicubic_psnr - 33.66) < 0.05


def test_eval_unknown_model_exits_2(capsys, tmp_path):
    assert main(["eval", "--model", "nope", "--scale", "2", "--dataset", str(tmp_path)]) == 2
    assert "available:" in capsys.readouterr().err


def test_eval_missing_dataset_exits_2(capsys, tmp_path):
    assert main(["eval", "--model", "rt4ksr", "--scale", "2", "--dataset", str(tmp_path / "none")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err

"""`sr-ops upscale` and `eval` failures found by misuse testing: one line naming the file
and the reason, exit 2, and a folder run that goes on with its other images."""
import os
import random

import numpy as np
import pytest
from PIL import Image
from test_cli_upscale import one_error_line, one_line_of, write_rgb

from sr_ops import io
from sr_ops.__main__ import main


def folder_of_three(tmp_path, seed):
    rng = np.random.default_rng(seed)
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        write_rgb(src / name, 8, 9, rng)
    return src, tmp_path / "out"


def test_a_failed_write_does_not_stop_the_folder(tmp_path, monkeypatch, seed, capsys):
    src, out = folder_of_three(tmp_path, seed)
    real = io.save_picture

    def save(path, pic):
        if path.name == "a.png":
            raise PermissionError(13, "Permission denied")
        real(path, pic)

    monkeypatch.setattr("sr_ops.cli.upscale.save_picture", save)
    assert main(["upscale", str(src), str(out), "--model", "rt4ksr", "--scale", "2", "--quiet"]) == 2
    captured = capsys.readouterr()
    line = one_line_of(captured.err)
    assert "cannot write" in line and "a.png" in line and "Permission denied" in line
    assert "2 written, 0 already done, 1 failed" in captured.out
    assert sorted(os.listdir(out)) == ["b.png", "c.png"]


def test_unwritable_output_folder_fails_before_any_work(tmp_path, monkeypatch, seed, capsys):
    src, out = folder_of_three(tmp_path, seed)
    out.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(out) else real_access(p, mode))
    monkeypatch.setattr("sr_ops.cli.upscale.upscale_picture", lambda *a, **k: pytest.fail("computed an image"))
    assert main(["upscale", str(src), str(out), "--model", "rt4ksr", "--scale", "2", "--quiet"]) == 2
    assert "is not writable" in one_error_line(capsys)


def test_decompression_bomb_is_one_line_and_the_others_go_on(tmp_path, monkeypatch, seed, capsys):
    src, out = folder_of_three(tmp_path, seed)
    Image.new("L", (40, 40)).save(src / "bomb.png")  # 1,600 pixels, over twice the limit below
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    assert main(["upscale", str(src), str(out), "--model", "rt4ksr", "--scale", "2", "--quiet"]) == 2
    captured = capsys.readouterr()
    line = one_line_of(captured.err)
    assert "cannot read image" in line and "bomb.png" in line and "decompression bomb" in line
    assert "3 written, 0 already done, 1 failed" in captured.out


@pytest.mark.parametrize("content", [
    pytest.param(random.Random(5).randbytes(64), id="random-bytes"),
    pytest.param(b"", id="empty"),
    pytest.param(b"just some text\n", id="text"),
    pytest.param(b"PK\x03\x04 not a zip", id="bad-zip")])
def test_unreadable_checkpoint_is_one_line(tmp_path, seed, capsys, content):
    src, out = folder_of_three(tmp_path, seed)
    ckpt = tmp_path / "broken.pth"
    ckpt.write_bytes(content)
    for model in ("rt4ksr", "fsrcnn"):
        assert main(["upscale", str(src), str(out), "--model", model, "--scale", "2", "--checkpoint", str(ckpt),
                     "--quiet"]) == 2
        line = one_error_line(capsys)
        assert f"cannot build '{model}'" in line and "broken.pth" in line
    assert not out.exists() or os.listdir(out) == []


def test_eval_truncated_image_is_one_line(tmp_path, seed, capsys):
    rng = np.random.default_rng(seed)
    data = tmp_path / "hr"
    data.mkdir()
    write_rgb(data / "a.png", 16, 16, rng)
    full = (data / "a.png").read_bytes()
    (data / "b.png").write_bytes(full[: len(full) // 2])
    assert main(["eval", "--model", "rt4ksr", "--scale", "2", "--dataset", str(data)]) == 2
    line = one_error_line(capsys)
    assert "cannot read image" in line and "b.png" in line


def test_eval_csv_into_a_missing_folder_fails_first(tmp_path, monkeypatch, seed, capsys):
    rng = np.random.default_rng(seed)
    data = tmp_path / "hr"
    data.mkdir()
    write_rgb(data / "a.png", 16, 16, rng)
    monkeypatch.setattr("sr_ops.evaluate.evaluate", lambda *a, **k: pytest.fail("evaluated first"))
    assert main(["eval", "--model", "rt4ksr", "--scale", "2", "--dataset", str(data),
                 "--csv", str(tmp_path / "no" / "such" / "x.csv")]) == 2
    assert "cannot write --csv" in one_error_line(capsys)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-5"])
def test_max_memory_must_be_a_positive_number(tmp_path, seed, capsys, value):
    src, out = folder_of_three(tmp_path, seed)
    assert main(["upscale", str(src), str(out), "--model", "rt4ksr", "--scale", "2", "--quiet",
                 f"--max-memory={value}"]) == 2
    line = one_error_line(capsys)
    assert line == f"sr-ops: --max-memory must be a positive number of MiB, got {float(value)}"
    assert not out.exists() or os.listdir(out) == []


def test_a_tiny_max_memory_is_reported_as_given(tmp_path, seed, capsys):
    src, out = folder_of_three(tmp_path, seed)
    assert main(["upscale", str(src), str(out), "--model", "rt4ksr", "--scale", "2", "--quiet",
                 "--max-memory", "0.001"]) == 2
    err = capsys.readouterr().err
    assert "--max-memory 0.001 MiB cannot hold this image" in err and " 0 MiB" not in err


def _pickled_object(path):
    import pickle

    with open(path, "wb") as f:
        pickle.dump({"weights": random.Random(0)}, f, protocol=4)


def _torch_saved_object(path):
    import collections

    import torch

    torch.save({"state_dict": collections.Counter("abc"), "cfg": random.Random(0)}, path)


@pytest.mark.parametrize("write, reason", [
    pytest.param(lambda p: p.write_text("lr = 1e-4\nepochs = 100\n"), "is not a PyTorch checkpoint", id="text"),
    pytest.param(_pickled_object, "holds Python objects besides tensors", id="pickled-object"),
    pytest.param(_torch_saved_object, "holds Python objects besides tensors", id="torch-saved-object")])
@pytest.mark.parametrize("model", ["rt4ksr", "fsrcnn", "nafnet_sr"])
def test_a_checkpoint_that_is_not_tensors_says_so_in_one_line(tmp_path, seed, capsys, write, reason, model):
    import warnings

    src, out = folder_of_three(tmp_path, seed)
    ckpt = tmp_path / "notes.pth"
    write(ckpt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's pickle-protocol notice used to print before the error
        assert main(["upscale", str(src), str(out), "--model", model, "--scale", "2", "--checkpoint", str(ckpt),
                     "--quiet"]) == 2
    line = one_error_line(capsys)
    assert f"cannot build '{model}'" in line and f"notes.pth {reason}" in line, line
    assert line.count("notes.pth") == 1 and "Check the documentation" not in line, line

"""`sr-ops upscale`: end to end on Set5, image forms, skipping, crash safety, errors."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_ops import io, models
from sr_ops.__main__ import main

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
CKPT = ASSETS / "weights" / "rt4ksr" / "rt4ksr_x2.pth"
SET5 = ASSETS / "datasets" / "SelfExSR" / "Set5" / "image_SRF_2"


def needs_assets():
    if not CKPT.exists() or not SET5.is_dir():
        pytest.skip(f"RT4KSR weights or Set5 not found under {ASSETS}")


def write_rgb(path, h, w, rng, mode="RGB"):
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode=mode).save(path)
    return arr


def test_set5_with_real_weights(tmp_path, capsys):
    needs_assets()
    src = tmp_path / "lr"
    src.mkdir()
    for p in sorted(SET5.glob("*_LR.png")):
        (src / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "sr"
    args = ["upscale", str(src), str(out), "--model", "rt4ksr", "--scale", "2", "--checkpoint", str(CKPT), "--quiet"]
    assert main(args) == 0
    assert "5 written, 0 already done, 0 failed" in capsys.readouterr().out
    net = models.build("rt4ksr", 2, str(CKPT))
    for p in sorted(src.iterdir()):
        lr = io.read_image(p)
        sr = io.read_image(out / p.name)
        assert sr.shape == (3, 2 * lr.shape[1], 2 * lr.shape[2])
        if p.name.startswith("img_002"):  # what the model gives, rounded to 8 bits
            with torch.no_grad():
                whole = io.to_uint8(net(lr[None])[0]).float() / 255
            diff = (sr - whole).abs()
            # float rounding may tip a value at a rounding boundary by one level, rarely
            assert diff.max().item() <= 1 / 255 + 1e-6 and (diff > 0).float().mean().item() < 1e-3
    assert main(args) == 0  # everything done already: nothing rewritten
    assert "0 written, 5 already done" in capsys.readouterr().out


def test_grey_alpha_and_16bit_keep_their_form(tmp_path, seed, capsys):
    rng = np.random.default_rng(seed)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_rgb(src / "grey.png", 13, 10, rng, "L")
    rgba = write_rgb(src / "rgba.png", 9, 12, rng, "RGBA")
    with open(src / "deep.png", "wb") as f:
        io.write_png(f, rng.integers(0, 65536, size=(8, 7, 3), dtype=np.uint16))
    write_rgb(src / "photo.jpg", 11, 11, rng)
    (src / "notes.txt").write_text("not an image: ignored")
    assert main(["upscale", str(src), str(out), "--model", "nafnet_sr", "--scale", "2"]) == 0
    assert sorted(os.listdir(out)) == ["deep.png", "grey.png", "photo.jpg", "rgba.png"]
    with Image.open(out / "grey.png") as img:
        assert img.mode == "L" and img.size == (20, 26)
    with Image.open(out / "rgba.png") as img:
        assert img.mode == "RGBA" and img.size == (24, 18)
        alpha = np.asarray(img)[:, :, 3].astype(np.float32) / 255
    from sr_ops.imresize import imresize

    expect = imresize(torch.from_numpy(rgba[:, :, 3].astype(np.float32) / 255)[None], 2).clamp(0, 1)[0]
    assert np.abs(alpha - expect.numpy()).max() <= 0.5 / 255 + 1e-6  # alpha is bicubic, not the model
    deep = io.load_picture(out / "deep.png")
    assert deep.bits == 16 and deep.rgb.shape == (3, 16, 14)
    assert io.load_picture(out / "photo.jpg").rgb.shape == (3, 22, 22)
    err = capsys.readouterr().err
    assert "[4/4]" in err or "images" in err  # the progress bar (plain or tqdm)


def test_interrupted_run_leaves_no_partial_file_and_rerun_finishes(tmp_path, monkeypatch, seed, capsys):
    rng = np.random.default_rng(seed)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for k in range(3):
        write_rgb(src / f"im{k}.png", 10 + k, 9, rng)
    real_encode, calls = io._encode, []

    def crash_on_second(f, pic, fmt):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"\x89PNG\r\n\x1a\n half of it")
            raise KeyboardInterrupt  # what a person pressing Ctrl-C mid-write does
        real_encode(f, pic, fmt)

    monkeypatch.setattr(io, "_encode", crash_on_second)
    args = ["upscale", str(src), str(out), "--model", "rt4ksr", "--scale", "2", "--quiet"]
    with pytest.raises(KeyboardInterrupt):
        main(args)
    assert sorted(os.listdir(out)) == ["im0.png"]  # finished one only; no partial, no temp file
    monkeypatch.setattr(io, "_encode", real_encode)
    assert main(args) == 0
    assert "2 written, 1 already done" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["im0.png", "im1.png", "im2.png"]
    mtime = os.stat(out / "im0.png").st_mtime_ns
    assert main(args + ["--overwrite"]) == 0
    assert "3 written" in capsys.readouterr().out and os.stat(out / "im0.png").st_mtime_ns >= mtime


def test_single_file_ensemble_and_max_memory(tmp_path, seed):
    rng = np.random.default_rng(seed)
    write_rgb(tmp_path / "a.png", 12, 15, rng)
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--model", "nafnet_sr", "--scale", "3",
                 "--ensemble", "--quiet"]) == 0
    with Image.open(tmp_path / "b.png") as img:
        assert img.size == (45, 36)
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "c.png"), "--model", "nafnet_sr", "--scale", "2",
                 "--max-memory", "64", "--overlap", "4", "--quiet"]) == 0
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "dir"), "--model", "rt4ksr", "--scale", "2",
                 "--quiet"]) == 0
    assert (tmp_path / "dir" / "a.png").exists()


def one_line_of(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def one_error_line(capsys) -> str:
    return one_line_of(capsys.readouterr().err)


def test_errors_exit_2_with_one_line_and_write_nothing(tmp_path, seed, capsys):
    rng = np.random.default_rng(seed)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_rgb(src / "ok.png", 8, 8, rng)
    base = ["upscale", str(src), str(out), "--scale", "2"]
    assert main(base + ["--model", "no_such_model"]) == 2
    line = one_error_line(capsys)
    assert "unknown model 'no_such_model'" in line and "rt4ksr" in line
    assert main(base + ["--model", "rt4ksr", "--checkpoint", str(tmp_path / "none.pth")]) == 2
    assert "checkpoint not found" in one_error_line(capsys)
    assert main(["upscale", str(tmp_path / "nope"), str(out), "--model", "rt4ksr", "--scale", "2"]) == 2
    assert "input not found" in one_error_line(capsys)
    assert main(base + ["--model", "rt4ksr", "--tile", "8", "--overlap", "16"]) == 2
    assert "--tile" in one_error_line(capsys)
    assert main(base + ["--model", "rt4ksr", "--device", "tpu:7"]) == 2
    assert "--device" in one_error_line(capsys)
    if not torch.cuda.is_available():
        assert main(base + ["--model", "rt4ksr", "--device", "cuda"]) == 2
        assert "no CUDA GPU" in one_error_line(capsys)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG but truncated")
    assert main(["upscale", str(tmp_path / "bad.png"), str(tmp_path / "bad_out.png"), "--model", "rt4ksr",
                 "--scale", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot read image" in err and "bad.png" in err
    assert not (tmp_path / "bad_out.png").exists()
    assert not out.exists() or os.listdir(out) == []


def test_unreadable_image_in_a_folder_does_not_stop_the_others(tmp_path, seed, capsys):
    rng = np.random.default_rng(seed)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_rgb(src / "a.png", 8, 9, rng)
    (src / "b.png").write_bytes(b"garbage")
    write_rgb(src / "c.jpg", 9, 8, rng)
    assert main(["upscale", str(src), str(out), "--model", "rt4ksr", "--scale", "2", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "b.png" in one_line_of(captured.err) and "2 written, 0 already done, 1 failed" in captured.out
    assert sorted(os.listdir(out)) == ["a.png", "c.jpg"]


def test_scale_the_checkpoint_lacks(tmp_path, capsys):
    needs_assets()
    img = sorted(SET5.glob("*_LR.png"))[0]
    assert main(["upscale", str(img), str(tmp_path / "x.png"), "--model", "rt4ksr", "--scale", "3",
                 "--checkpoint", str(CKPT)]) == 2
    line = one_error_line(capsys)
    assert "scale 3" in line and "wrong scale" in line
    assert not (tmp_path / "x.png").exists()

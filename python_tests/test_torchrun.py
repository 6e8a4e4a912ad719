"""`torchrun --nproc_per_node 2 -m sr_ops upscale`: two CPU ranks (gloo) share a folder."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_ops.distributed import launched, setup, shard

REPO = Path(__file__).resolve().parents[1]


def test_shard_is_a_deterministic_partition():
    items = [f"im{k:02d}.png" for k in range(11)]
    shuffled = items[::-1]
    parts = [shard(shuffled, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == items and parts == [shard(items, r, 3) for r in range(3)]
    with pytest.raises(ValueError, match="rank"):
        shard(items, 3, 3)


def test_launch_detected_from_torchrun_env(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not launched()
    group = setup("cpu")  # a plain run: one process, no process group
    assert (group.rank, group.world, group.initialised) == (0, 1, False) and group.sum([2, 3]) == [2, 3]
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert not launched()  # torchrun with one process: nothing to shard
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched()


def test_two_processes_share_the_images_and_report_totals(tmp_path, seed):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
        if torchrun is None:
            pytest.skip("torchrun not found beside this python nor on PATH")
    rng = np.random.default_rng(seed)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for k in range(5):
        arr = rng.integers(0, 256, size=(10 + k, 12, 3), dtype=np.uint8)
        Image.fromarray(arr).save(src / f"im{k}.png")
    # im1 and im4 were finished by an earlier run (say, before a rank crashed): kept as they are
    for name in ("im1.png", "im4.png"):
        (out / name).write_bytes(b"finished earlier")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "sr_ops", "upscale", str(src), str(out),
           "--model", "nafnet_sr", "--scale", "2", "--quiet"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # rank 0 alone prints the totals, summed over both ranks
    totals = [line for line in proc.stdout.splitlines() if line.startswith("sr-ops upscale:")]
    assert totals == [totals[0]] and "3 written, 2 already done, 0 failed (2 processes" in totals[0], proc.stdout
    assert sorted(os.listdir(out)) == [f"im{k}.png" for k in range(5)]
    assert (out / "im1.png").read_bytes() == b"finished earlier"
    # im3 is rank 1's share (sorted list, every 2nd from 1): its presence shows rank 1 worked
    for k in (0, 2, 3):
        with Image.open(out / f"im{k}.png") as img:
            assert img.size == (24, 2 * (10 + k))

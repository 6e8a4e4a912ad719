"""`sr-ops upscale --max-memory M` bounds the whole process: a 2000x2000 RGB image
upscaled x2 adds at most M MiB of peak RSS over the same command on a small image
(imports and weights). Each run is its own process; its peak comes from wait4's rusage."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def _peak_rss_mib(args) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "sr_ops", "upscale", *args, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert os.waitstatus_to_exitcode(status) == 0, err[-2000:]
    return usage.ru_maxrss / 1024  # KiB on Linux


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux only")
@pytest.mark.parametrize("budget_mib", [256])
def test_large_image_stays_within_max_memory(tmp_path, budget_mib):
    rng = np.random.default_rng(0)
    for name, side in (("small", 64), ("big", 2000)):
        coarse = rng.integers(0, 256, (side // 8 + 1, side // 8 + 1, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((side, side), Image.BICUBIC).save(tmp_path / f"{name}.png")
    common = ["--model", "rt4ksr", "--scale", "2", "--max-memory", str(budget_mib)]
    small = _peak_rss_mib([str(tmp_path / "small.png"), str(tmp_path / "small_x2.png"), *common])
    big = _peak_rss_mib([str(tmp_path / "big.png"), str(tmp_path / "big_x2.png"), *common])
    with Image.open(tmp_path / "big_x2.png") as img:
        assert img.size == (4000, 4000) and img.mode == "RGB"
    assert big - small <= budget_mib, f"peak RSS {big:.0f} MiB, {big - small:.0f} over the small image's {small:.0f}"

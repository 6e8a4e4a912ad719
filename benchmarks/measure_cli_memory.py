"""Peak RSS of `python -m sr_ops upscale` (RT4KSR x2, official weights) on a 64x64 and a
2000x2000 RGB PNG, each in its own process (wait4's rusage), with the given flags: the
numbers behind the README's CLI memory claim. Run from the repository root:
    python benchmarks/measure_cli_memory.py --max-memory 256
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHECKPOINT = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets" / "weights" / "rt4ksr" / "rt4ksr_x2.pth"


def main(flags: list[str]) -> None:
    rng = np.random.default_rng(0)
    ckpt = ["--checkpoint", str(CHECKPOINT)] if CHECKPOINT.is_file() else []
    with tempfile.TemporaryDirectory() as tmp:
        peaks = {}
        for name, side in (("small", 64), ("big", 2000)):
            coarse = rng.integers(0, 256, (side // 8 + 1, side // 8 + 1, 3), dtype=np.uint8)
            src = Path(tmp) / f"{name}.png"
            Image.fromarray(coarse).resize((side, side), Image.BICUBIC).save(src)
            start = time.perf_counter()
            dst = str(Path(tmp) / f"{name}_x2.png")
            proc = subprocess.Popen([sys.executable, "-m", "sr_ops", "upscale", str(src), dst,
                                     "--model", "rt4ksr", "--scale", "2", "--quiet", *ckpt, *flags])
            _, status, usage = os.wait4(proc.pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"upscale of the {side}x{side} image failed")
            peaks[name] = usage.ru_maxrss / 1024
            print(f"{side}x{side}: peak RSS {peaks[name]:.1f} MiB, {time.perf_counter() - start:.1f} s", flush=True)
        print(f"flags {' '.join(flags) or '(none)'}: the 2000x2000 image adds {peaks['big'] - peaks['small']:.1f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The test of the simulator tests: plants CUDA-only bugs one at a time and checks that
`make cuda-sim` fails on each.

    python python_tests/cuda_sim/plant_bugs.py            # every mutation, a table at the end
    python python_tests/cuda_sim/plant_bugs.py eca adapn  # only these .cu stems
    python python_tests/cuda_sim/plant_bugs.py --tsan --pick "line 25" eca
        # under the ThreadSanitizer build and the free schedule, mutations matching --pick

Mutations: each `__syncthreads()` / `__syncwarp()` removed alone; every `threadIdx.x` of a
file replaced by `(threadIdx.x / 2 * 2)` (half the threads duplicate their neighbours'
work, the others' elements are skipped); a warp butterfly cut one step short. Each file is
restored afterwards, also on Ctrl-C.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CUDA = ROOT / "csrc" / "cuda"


def mutations(stems):
    for path in sorted(CUDA.glob("*.cu")):
        if stems and path.stem not in stems:
            continue
        text = path.read_text()
        for m in re.finditer(r"__sync(threads|warp)\(\);", text):
            line = text.count("\n", 0, m.start()) + 1
            yield path, f"remove {m.group(0)} at line {line}", text[:m.start()] + text[m.end():]
        if "threadIdx.x" in text:
            yield path, "threadIdx.x -> (threadIdx.x / 2 * 2)", text.replace("threadIdx.x", "(threadIdx.x / 2 * 2)")
        if "o > 0; o >>= 1" in text:
            yield path, "warp butterfly one step short", text.replace("o > 0; o >>= 1", "o > 1; o >>= 1")


def run(stem, tsan) -> tuple[bool, float]:
    env = dict(os.environ, SR_SIM_OPS=stem)
    if tsan:
        libtsan = subprocess.run(["gcc", "-print-file-name=libtsan.so"], capture_output=True, text=True).stdout
        env.update(SR_SIM_TSAN="1", LD_PRELOAD=libtsan.strip(), OMP_NUM_THREADS="1",
                   TSAN_OPTIONS="halt_on_error=1 exitcode=66")
    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "python_tests" / "cuda_sim"), "-x", "-q",
                          "-p", "no:cacheprovider"], env=env, capture_output=True, text=True, cwd=ROOT)
    return res.returncode != 0, time.time() - t0


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stems", nargs="*", help=".cu file stems (default: all)")
    parser.add_argument("--tsan", action="store_true", help="run under ThreadSanitizer, free schedule")
    parser.add_argument("--pick", default="", help="only mutations whose description contains this")
    args = parser.parse_args(argv)
    rows = []
    for path, what, mutated in mutations(set(args.stems)):
        if args.pick not in what:
            continue
        original = path.read_text()
        try:
            path.write_text(mutated)
            caught, secs = run(path.stem, args.tsan)
        finally:
            path.write_text(original)
        rows.append((path.name, what, caught, secs))
        print(f"{path.name:22s} {what:45s} {'caught' if caught else 'MISSED'} ({secs:.0f} s)", flush=True)
    caught = sum(r[2] for r in rows)
    print(f"\n{caught} of {len(rows)} planted bugs caught")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

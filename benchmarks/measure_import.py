"""Time of `import sr_ops` in fresh processes, for one or more source trees side by side.

    python benchmarks/measure_import.py . /path/to/an/older/checkout [--runs 12]

Each tree must hold its built extension (``setup.py build_ext --inplace``). The runs
interleave the trees so that the machine's drift falls on all of them alike. Reported: the
median (and minimum) of ``import sr_ops`` after ``import torch`` in the same process -- what
sr_ops adds -- and the median wall time of a whole ``python -c "import sr_ops"``."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

_AFTER_TORCH = "import time, torch; t = time.perf_counter(); import sr_ops; print(time.perf_counter() - t)"


def _run(tree: str, code: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "PYTHONPATH": os.path.abspath(tree)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"import sr_ops failed in {tree}:\n{done.stderr[-2000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args(argv)
    added = {t: [] for t in args.trees}
    whole = {t: [] for t in args.trees}
    for _ in range(args.runs):
        for tree in args.trees:
            added[tree].append(float(_run(tree, _AFTER_TORCH).split()[-1]))
            start = time.perf_counter()
            _run(tree, "import sr_ops")
            whole[tree].append(time.perf_counter() - start)
    for tree in args.trees:
        a, w = added[tree], whole[tree]
        print(f"{tree}: import sr_ops after torch {1e3 * statistics.median(a):.0f} ms median "
              f"({1e3 * min(a):.0f} min); whole process {1e3 * statistics.median(w):.0f} ms median")


if __name__ == "__main__":
    main()

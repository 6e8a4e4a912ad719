"""PNG chart of the benchmark speedups (``sr-ops bench --plot PATH``), for the README.

One horizontal bar per case and implementation: time of the pure-PyTorch way divided by
the implementation's time, on a log axis with a line at 1x. matplotlib is optional: it
is imported only here, and ``require_matplotlib`` says how to get it.
"""
from __future__ import annotations

import math
from pathlib import Path

__all__ = ["require_matplotlib", "speedups"]

_COLOURS = {"sr_ops": "#1f77b4", "torch.compile": "#ff7f0e"}


def require_matplotlib():
    """matplotlib.pyplot on the Agg backend, or ImportError with the fix."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the speedup plot needs matplotlib, which is not installed: "
                          "pip install matplotlib (or drop --plot)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def speedups(rows: list[dict], info: dict, path: str | Path) -> None:
    """Draw the rows' speedups (``runner.as_dicts`` rows) and save a PNG at ``path``."""
    plt = require_matplotlib()
    from matplotlib.ticker import FuncFormatter

    cases = []  # (label, {impl: speedup}) in table order
    for r in rows:
        if r["impl"] == "pytorch" or r.get("speedup") is None:
            continue
        label = f"{r['op']}: {r['case']}"
        if not cases or cases[-1][0] != label:
            cases.append((label, {}))
        cases[-1][1][r["impl"]] = r["speedup"]
    if not cases:
        raise ValueError("no rows with a speedup to plot (did the bench run any case?)")
    impls = [i for i in _COLOURS if any(i in c[1] for c in cases)]
    impls += sorted({i for _, c in cases for i in c} - set(impls))
    bar = 0.8 / len(impls)
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(cases) * max(len(impls), 1) + 1.6))
    for k, impl in enumerate(impls):
        ys = [n + (k - (len(impls) - 1) / 2) * bar for n, (_, c) in enumerate(cases) if impl in c]
        xs = [c[impl] for _, c in cases if impl in c]
        # bars grow from 1x: right for faster, left for slower than pure PyTorch
        ax.barh(ys, [v - 1 for v in xs], left=1, height=bar, label=impl, color=_COLOURS.get(impl))
        for y, x in zip(ys, xs):
            ax.text(x, y, f" {x:.1f}x " if x >= 1 else f"{x:.2f}x ", va="center", fontsize=7,
                    ha="left" if x >= 1 else "right")
    ax.set_yticks(range(len(cases)), [label for label, _ in cases], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    top = max(v for _, c in cases for v in c.values())
    low = min(v for _, c in cases for v in c.values())
    ax.set_xlim(min(0.5, low / 2.5), 10 ** math.ceil(math.log10(top * 1.6)))  # room for the labels
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speedup over pure PyTorch (its time / this time, log scale)")
    commit = (info.get("commit") or "")[:12]
    ax.set_title(f"sr_ops speedups: {info.get('machine', '?')}, {info.get('cpu_threads', '?')} threads, "
                 f"torch {info.get('torch', '?')}" + (f", {commit}" if commit else "")
                 + (f"\nGPU {info['cuda']}" if info.get("cuda") else ""), fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

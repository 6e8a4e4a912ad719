"""sr_ops.tiled(max_memory=...) holds its budget in a fresh process after a warm-up.

A model that ran once before (a preview) leaves its activations' worth of free heap
behind; a budget measured by resident-set growth then sees ~0 and picks the whole image
as one tile. Each case runs in its own process: build, run the whole image once, then
``tiled`` under the budget, its peak measured by RSS over the heap-trimmed baseline.
"""
import json
import subprocess
import sys

import pytest

from sr_ops.bench.memory import cpu_peak_supported

_SCRIPT = r"""
import json, sys, torch
from torch import nn
import sr_ops
from sr_ops import models
from sr_ops.bench.memory import peak_bytes
name, side, budget_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
torch.set_num_threads(1)
if name == "conv":
    layers = [nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
              nn.Conv2d(32, 12, 3, padding=1), nn.PixelShuffle(2)]
    net = nn.Sequential(*layers).eval()
else:
    net = models.build(name, 2)
x = torch.rand(1, 3, side, side)
budget = budget_mib * 2**20
tiles, kept = [], []
with torch.no_grad():
    whole_peak = peak_bytes(lambda: kept.append(net(x)))   # the preview: warms the allocator
    peak = peak_bytes(lambda: kept.append(sr_ops.tiled(net, x, 2, max_memory=budget, align=8,
                                                       progress=lambda d, t: tiles.append(t))))
print(json.dumps({"whole": whole_peak, "peak": peak, "tiles": tiles[-1],
                  "err": (kept[0] - kept[1]).abs().max().item()}))
"""


@pytest.mark.skipif(not cpu_peak_supported(), reason="peak RSS is not measurable here (/proc/self/clear_refs)")
@pytest.mark.parametrize("name,side,budget_mib", [("rt4ksr", 512, 24), ("conv", 400, 40)])
def test_budget_holds_after_a_warm_up(name, side, budget_mib):
    done = subprocess.run([sys.executable, "-c", _SCRIPT, name, str(side), str(budget_mib)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    mib = {k: round(got[k] / 2**20, 1) for k in ("whole", "peak")}
    print(name, budget_mib, mib, got["tiles"])
    assert got["whole"] > budget_mib * 2**20, f"the whole image fits: nothing to test ({mib})"
    assert got["tiles"] > 1, got
    assert got["peak"] <= budget_mib * 2**20, f"peak over the {budget_mib} MiB budget: {mib}"
    assert got["err"] < 1e-4 if name == "conv" else True  # RT4KSR's receptive field exceeds overlap/2

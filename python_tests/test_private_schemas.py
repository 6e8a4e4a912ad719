"""Every private torch.ops.sr_ops._* schema, called directly with each kind of bad tensor.

The public ops check their arguments before a kernel runs; the private schemas are reachable
too (torch.ops.sr_ops._eca_fwd), and must give the same answer: a result (an empty one for
empty inputs) or a TypeError / ValueError, never a crash, a NotImplementedError or a
RuntimeError (issue 31). Each schema gets one valid small call; then every tensor argument
in turn is made empty along each dim, of another dtype, a meta tensor, and of another rank.

The calls run in one worker process that reports each case before and after it runs, so a
crash (SIGFPE, SIGSEGV) or a hang fails the test of that schema, naming the mutation, and the
worker restarts at the next case.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pytest
import torch

import sr_ops

pytestmark = pytest.mark.skipif("cpu" not in sr_ops.available_backends(), reason="extension not built")

K = torch.ops.sr_ops


def _g():
    return torch.Generator().manual_seed(0)


def _knn():
    q, k = torch.randn(1, 2, 7, 7, generator=_g()), torch.randn(1, 2, 6, 6, generator=_g())
    dist, idx = K._cross_scale_knn_fwd(q, k, 2, 3, 1, -1, 1)
    return torch.ones_like(dist), idx, q, k


def _patches():
    img = torch.randn(1, 2, 5, 5, generator=_g())
    patches, coords = K._extract_patches_fwd(img, 3, 2)
    order = torch.arange(coords.shape[0]).flip(0)
    return img, patches, coords, order


def _graph():
    feat = torch.randn(1, 2, 8, 8, generator=_g())
    idx = torch.randint(0, 4, (1, 36, 2), generator=_g())
    args = (4, 4, 2, 3, 1, True, 1e-5)
    out = K._graph_aggregate_fwd(feat, idx, feat.clone(), None, *args)
    return torch.ones_like(out), feat, idx, args


def _naf():
    C, F = 4, 3
    r = torch.randn
    return (r(1, C, 3, 3), r(C), r(C), r(2 * F, C), r(2 * F), r(C, F), r(C), r(C))


def _merge():
    img, patches, coords, order = _patches()
    outputs = torch.randn(coords.shape[0], 2, 6, 6, generator=_g())
    return outputs, coords, order


X4 = torch.randn(2, 4, 3, 3)
C4 = torch.randn(4)


# name -> a function returning one valid call's arguments (tensors and the rest).
VALID = {
    "_adapn_fwd": lambda: (torch.randn(2, 3, 4, 5, 5), torch.randn(2, 4, 3, 3), 1e-5),
    "_adapn_bwd": lambda: (torch.randn(2, 3, 4, 5, 5), torch.randn(2, 3, 4, 5, 5), torch.randn(2, 4, 3, 3), 1e-5),
    "_class_dispatch_fwd": lambda: (torch.tensor([0, 2, 1, 2]), 3),
    "_conv3x3_fwd": lambda: (X4, torch.randn(3, 4, 3, 3), torch.randn(3)),
    "_conv3x3_bwd_weight": lambda: (torch.randn(2, 3, 3, 3), X4),
    "_conv3x3_gelu": lambda: (X4, torch.randn(2, 4, 3, 3)),
    "_conv3x3_layernorm2d_fwd": lambda: (X4, torch.randn(3, 4, 3, 3), torch.randn(3), torch.randn(3),
                                         torch.randn(3), 1e-6, False),
    "_cross_scale_knn_fwd": lambda: (*_knn()[2:], 2, 3, 1, -1, 1),
    "_cross_scale_knn_bwd": lambda: (*_knn(), 3, 1),
    "_dwconv_gate_ca_fwd": lambda: (X4, torch.randn(4, 1, 3, 3), C4, torch.randn(2, 2, 1, 1), torch.randn(2), True),
    "_dwconv_gate_ca_bwd": lambda: (torch.randn(2, 2, 3, 3), X4, torch.randn(4, 1, 3, 3), C4,
                                    torch.randn(2, 2, 1, 1), torch.randn(2), True),
    "_eca_fwd": lambda: (X4, torch.randn(3)),
    "_eca_bwd": lambda: (torch.randn(2, 4, 3, 3), X4, torch.randn(3)),
    "_extract_patches_fwd": lambda: (torch.randn(1, 2, 5, 5), 3, 2),
    "_gather_patches_fwd": lambda: (_patches()[0], *_patches()[2:], 3),
    "_gather_patches_bwd": lambda: (torch.randn(4, 2, 3, 3), *_patches()[2:], 1, 5, 5),
    "_gelu_layernorm2d_fwd": lambda: (X4, C4, C4, 1e-6, "none"),
    "_graph_aggregate_fwd": lambda: (_graph()[1], _graph()[2], _graph()[1].clone(), None, *_graph()[3]),
    "_graph_aggregate_bwd": lambda: (*_graph()[:3], _graph()[1].clone(), None, *_graph()[3]),
    "_layernorm2d_fwd": lambda: (X4, C4, C4, 1e-6),
    "_layernorm2d_bwd": lambda: (torch.randn(2, 4, 3, 3), X4, C4, C4, 1e-6),
    "_merge_patches_fwd": lambda: (*_merge(), 1, 5, 5, 2),
    "_merge_patches_bwd": lambda: (torch.randn(1, 2, 10, 10), *_merge()[1:], 3, 2),
    "_naf_ffn_fwd": lambda: (*_naf(), 1e-6),
    "_naf_ffn_bwd": lambda: (torch.randn(1, 4, 3, 3), *_naf(), 1e-6),
    "_patch2img_fwd": lambda: (torch.randn(1, 4, 2, 3, 3), 5, 5, 2),
    "_patch2img_bwd": lambda: (torch.randn(1, 2, 5, 5), 3, 2),
    "_to_channels_last_fwd": lambda: (X4,),
    "_vertex_map_fwd": lambda: (torch.tensor([0, 3, 1]), 9, 9, 2, 3, 2),
}

def _mutations(t: torch.Tensor):
    """(label, tensor) pairs: each a way a caller can get one tensor argument wrong."""
    for d in range(t.dim()):
        yield f"size0@dim{d}", t.narrow(d, 0, 0)
    if t.is_floating_point():
        yield "int64", t.long()
        yield "float16", t.half()
        yield "float64", t.double()
    else:
        yield "float32", t.float()
        yield "int32", t.int()
    yield "meta", t.to("meta")
    yield "rank+1", t[None]
    if t.dim() > 0:
        yield "rank-1", t[0]


def cases(name: str):
    """(label, args) for one schema: the valid call, then each tensor argument mutated."""
    args = VALID[name]()
    yield "valid", args
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor):
            for label, t in _mutations(a):
                yield f"arg{i}:{label}", (*args[:i], t, *args[i + 1:])


ALLOWED = ("returned", "TypeError", "ValueError")


def _outcome(name: str, args) -> str:
    try:
        getattr(K, name)(*args)
    except (TypeError, ValueError) as e:
        return type(e).__name__
    except Exception as e:  # noqa: BLE001  (the class is what the test reports)
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return "returned"


def _worker(skip: int) -> None:
    """Runs every case from number `skip` on, one JSON line before and after each."""
    torch.set_num_threads(1)
    n = 0
    for name in sorted(VALID):
        for label, args in cases(name):
            if n >= skip:
                print(json.dumps(["start", n, name, label]), flush=True)
                print(json.dumps(["done", n, name, label, _outcome(name, args)]), flush=True)
            n += 1


def _run_all(timeout_s: float = 60.0) -> dict:
    """{schema: {label: outcome}}, crashes and hangs included, restarting after each."""
    results: dict = {}
    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {here!r}); import test_private_schemas as t; t._worker(int(sys.argv[1]))"
    skip, deadline = 0, time.monotonic() + timeout_s
    while True:
        proc = subprocess.Popen([sys.executable, "-c", code, str(skip)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        current = None
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = proc.stdout.readline() if ready else None
            if not line:
                break
            kind, n, name, label, *rest = json.loads(line)
            if kind == "start":
                current = (n, name, label)
            else:
                results.setdefault(name, {})[label] = rest[0]
                current = None
        if proc.poll() is None:
            proc.kill()
        rc = proc.wait()
        if current is None:
            return results
        n, name, label = current
        results.setdefault(name, {})[label] = "hang" if rc in (-9,) else f"crash (exit {rc})"
        skip = n + 1
        if time.monotonic() > deadline:
            return results


_RESULTS: dict = {}


def results() -> dict:
    if not _RESULTS:
        _RESULTS.update(_run_all())
    return _RESULTS


def _registered() -> set[str]:
    names = set()
    for key in ("CPU", "CUDA"):
        names |= {r.split("::", 1)[1] for r in torch._C._dispatch_get_registrations_for_dispatch_key(key)
                  if r.startswith("sr_ops::_")}
    return {n for n in names if not n.startswith("_sim_")}  # the CUDA simulator's test hooks


def test_the_table_lists_every_private_schema():
    assert _registered() == set(VALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_bad_tensors_raise_type_or_value_errors(name):
    got = results().get(name, {})
    assert got.get("valid") == "returned", f"{name}'s valid call: {got.get('valid')}"
    want = {label for label, _ in cases(name)}
    assert set(got) == want, f"{name}: cases not run (worker timed out?): {sorted(want - set(got))}"
    bad = {label: outcome for label, outcome in got.items() if outcome not in ALLOWED}
    assert not bad, f"{name}: " + "; ".join(f"{k} -> {v}" for k, v in bad.items())

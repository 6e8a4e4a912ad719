"""Property-based differential suite: every op on every available fused backend against
the reference, forward and (for finite inputs) backward, on random valid calls — 1-pixel,
odd and border shapes, k = 1 and k = all candidates, non-contiguous inputs, planted NaN
and infinities (_fuzz_cases.py draws them).

Derandomised (the same examples every run) at SR_OPS_FUZZ_EXAMPLES per op and backend
(default 40; the Triton interpreter, slow, gets an eighth); SR_OPS_FUZZ_RANDOM=1 draws fresh ones.
"""
import dataclasses
import functools
import os

import pytest
import torch

pytest.importorskip("hypothesis", reason="the fuzz suite needs hypothesis (pip install hypothesis)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import sr_ops  # noqa: E402

from _fuzz_cases import BUILDERS, INTEGER_INPUTS  # noqa: E402
from _helpers import device_for  # noqa: E402

EXAMPLES = int(os.environ.get("SR_OPS_FUZZ_EXAMPLES", "40"))
FUSED = [b for b in sr_ops.available_backends() if b != "reference"]


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _compare(got, want, exact, what, truth=None):
    """got (a fused backend) against want (the reference, same precision). Where float32
    rounding puts them further apart than 2e-4 (a LayerNorm over two nearly equal channels
    amplifies it by 1/std), the float64 reference (``truth()``) decides, after flash-attention's
    rule: got's error must stay within 3x want's own, or within 2e-4 of the largest value.
    (naf_ffn's CPU backward is the case: on such pixels its gradient's error reaches ~70x the
    reference's, ~1e-5 of the gradient's size; a kernel bug is far above either bound.)"""
    truths = None
    for j, (a, b) in enumerate(zip(_outputs(got), _outputs(want), strict=True)):
        assert a.shape == b.shape and a.dtype == b.dtype, f"{what}: {a.shape}/{a.dtype} vs {b.shape}/{b.dtype}"
        if exact or not a.is_floating_point():
            assert torch.equal(a.cpu(), b.cpu()) or (a.is_floating_point() and torch.equal(
                a.cpu().nan_to_num(7.5), b.cpu().nan_to_num(7.5))), f"{what}: outputs differ"
            continue
        try:
            torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-4, equal_nan=True, msg=lambda m: f"{what}: {m}")
        except AssertionError:
            if truth is None:
                raise
            truths = truths if truths is not None else _outputs(truth())
            t = truths[j].double().cpu()
            assert torch.equal(a.isnan().cpu(), t.isnan()), f"{what}: NaNs where float64 has none, or the reverse"
            finite = t.isfinite()
            if not finite.any():
                continue
            e_got = (a.double().cpu() - t)[finite].abs().max().item()
            e_want = (b.double().cpu() - t)[finite].abs().max().item()
            floor = 2e-4 * max(1.0, t[finite].abs().max().item())
            assert e_got <= max(3 * e_want, floor), (f"{what}: error against float64 {e_got:.3g}, the "
                                                     f"reference's own {e_want:.3g} (allowed 3x, or {floor:.2g})")


def _run(op, backend, call, upstream_seed=None):
    """The op's outputs on ``backend`` and, given a seed, the gradients of its float
    outputs against random upstream gradients; both under use_backend, since the
    backward picks its backend when autograd runs it."""
    args = [a.detach().requires_grad_(True) if i in call.grad else a for i, a in enumerate(call.args)]
    with sr_ops.use_backend(backend):
        out = getattr(sr_ops, op)(*args)
        if upstream_seed is None:
            return out, None
        outs = [o for o in _outputs(out) if o.is_floating_point() and o.requires_grad]
        gen = torch.Generator().manual_seed(upstream_seed)
        # drawn in float32 for every output dtype, so the float64 run gets the same values
        ups = [torch.randn(o.shape, generator=gen).to(o.dtype).to(o.device) for o in outs]
        grads = torch.autograd.grad(outs, [args[i] for i in call.grad], ups, allow_unused=True,
                                    materialize_grads=True)
    return out, grads


# numpy's warnings from inside the Triton interpreter on inf/NaN arithmetic: expected here
@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")
@pytest.mark.parametrize("finite", [True, False], ids=["finite", "nonfinite"])
@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("op", sorted(BUILDERS))
def test_backend_matches_reference(op, backend, finite):
    if not finite and op in INTEGER_INPUTS:
        pytest.skip("integer inputs only: nothing non-finite to plant")
    dev = device_for(backend)
    slow = backend == "triton" and dev.type == "cpu"

    # The interpreter runs every Triton program in Python: an eighth of the examples.
    @settings(max_examples=max(1, EXAMPLES // 8) if slow else EXAMPLES, deadline=None,
              derandomize=os.environ.get("SR_OPS_FUZZ_RANDOM") != "1", database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(data=st.data())
    def check(data):
        plant = None if finite else data.draw(st.sampled_from(["nan", "inf", "-inf"]))
        call = BUILDERS[op](data.draw, dev, plant)
        upstream = data.draw(st.integers(0, 2**31 - 1)) if finite and call.grad else None
        try:
            got, got_grads = _run(op, backend, call, upstream)
        except NotImplementedError as exc:
            pytest.skip(str(exc))
        want, want_grads = _run(op, "reference", call, upstream)
        call64 = dataclasses.replace(call, args=tuple(
            a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in call.args))
        truth = functools.lru_cache(lambda: _run(op, "reference", call64, upstream))
        _compare(got, want, call.exact, f"{op} on {backend}, forward", lambda: truth()[0])
        for j, (i, a, b) in enumerate(zip(call.grad, got_grads or (), want_grads or ())):
            _compare(a, b, False, f"{op} on {backend}, gradient of argument {i}", lambda j=j: truth()[1][j])

    check()

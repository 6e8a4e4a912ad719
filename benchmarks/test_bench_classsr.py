"""ClassSR-FSRCNN x4: class dispatch (`sr_ops`) vs every sub-image in the largest branch
(`pytorch`).  The two outputs differ by design (different branches), so instead of _cases.run's
equality check: the shapes match and, with the official weights, the two images agree to
within what the smaller branches lose (PSNR between them > 30 dB)."""
import pytest

from sr_ops.metrics import psnr

from _cases import DEVICE, params


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("classsr"))
def test_classsr(benchmark, case, impl):
    inputs = case.make(DEVICE)
    benchmark.group = f"{case.op}: {case.label}"
    out = benchmark(case.impls[impl], inputs)
    B, _, H, W = inputs["x"].shape
    assert out.shape == (B, 3, 4 * H, 4 * W)
    assert 0 <= out.min() and out.max() <= 1
    if impl == "sr_ops" and inputs["official"]:
        hard = case.impls["pytorch"](inputs)
        assert psnr(out.cpu(), hard.cpu(), crop_border=0).item() > 30

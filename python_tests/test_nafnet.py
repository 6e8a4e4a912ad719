"""NAFBlock on the fused ops against an eager NAFBlock in plain torch; nafnet_sr shapes."""
import pytest
import torch
from torch import nn

from sr_ops import models
from sr_ops.models.nafnet import NAFBlock


class EagerLayerNorm2d(nn.Module):
    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c)), eps

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return (x - mu) / (var + self.eps).sqrt() * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class EagerNAFBlock(nn.Module):
    """NAFNet's block as the paper's code writes it, in plain torch ops."""

    def __init__(self, c, dw_expand=2, ffn_expand=2):
        super().__init__()
        dw, ffn = c * dw_expand, c * ffn_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1, self.norm2 = EagerLayerNorm2d(c), EagerLayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    @staticmethod
    def gate(x):
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, inp):
        x = self.gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


def randomised(block):
    with torch.no_grad():
        for name, p in block.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if "conv" in name or "sca" in name else 1.0) + ("weight" in name
                    and "norm" in name))
    return block


def test_parameter_names_are_nafnets():
    names = set(NAFBlock(8).state_dict())
    for want in ["norm1.weight", "norm1.bias", "conv1.weight", "conv2.weight", "conv2.bias", "sca.1.weight",
                 "sca.1.bias", "conv3.weight", "beta", "norm2.weight", "conv4.weight", "conv5.weight", "gamma"]:
        assert want in names
    assert names == set(EagerNAFBlock(8).state_dict())


@pytest.mark.parametrize("shape", [(1, 8, 9, 7), (2, 16, 5, 12), (1, 4, 1, 6)])
def test_nafblock_matches_eager(shape, seed):
    eager = randomised(EagerNAFBlock(shape[1]))
    block = NAFBlock(shape[1])
    block.load_state_dict(eager.state_dict())
    x = torch.randn(shape)
    with torch.no_grad():
        # float32: the random weights make intermediates of ~100 that cancel, so the two
        # summation orders may differ by ~1e-3 on a few outputs; float64 pins the maths.
        torch.testing.assert_close(block(x), eager(x), rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(block.double()(x.double()), eager.double()(x.double()), rtol=1e-9, atol=1e-9)


def test_nafblock_gradients_match_eager(seed):
    # float64: the parameter gradients are sums over every pixel
    eager = randomised(EagerNAFBlock(8)).double()
    block = NAFBlock(8).double()
    block.load_state_dict(eager.state_dict())
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    got = torch.autograd.grad(block(x), [x, *block.parameters()], g)
    want = torch.autograd.grad(eager(x), [x, *eager.parameters()], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("scale, width, depth", [(2, 16, 2), (3, 8, 1), (4, 8, 0)])
def test_nafnet_sr_shapes(scale, width, depth, seed):
    assert "nafnet_sr" in models.available()
    net = models.build("nafnet_sr", scale, width=width, depth=depth)
    assert not net.training
    x = torch.rand(2, 3, 7, 10)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 3, 7 * scale, 10 * scale)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_nafnet_sr_loads_its_state_dict(seed):
    net = models.build("nafnet_sr", 2, width=8, depth=1)
    again = models.build("nafnet_sr", 2, {"params": net.state_dict()}, width=8, depth=1)
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(again(x), net(x))


def test_nafnet_sr_rejects_bad_options():
    with pytest.raises(ValueError, match="width"):
        models.build("nafnet_sr", 2, width=0)
    with pytest.raises(ValueError, match="RGB"):
        models.build("nafnet_sr", 2, width=8, depth=1)(torch.rand(1, 1, 4, 4))

"""Test configuration: Triton runs in its interpreter when there is no GPU.

TRITON_INTERPRET must be set before triton is first imported, hence at the top here.
"""
import os
import zlib

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import sr_ops  # noqa: E402

ASSETS = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "assets"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; this machine has none")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=sr_ops.available_backends())
def backend(request):
    """Each available backend in turn, forced with use_backend."""
    with sr_ops.use_backend(request.param):
        yield request.param


@pytest.fixture(params=[b for b in ("reference", "cpu") if b in sr_ops.available_backends()])
def cpu_backend(request):
    """reference and cpu in turn, forced, for the ops whose only kernel of ours is the CPU's
    (their cuda/triton entries run torch's own kernels: conv3x3, conv3x3_layernorm2d)."""
    with sr_ops.use_backend(request.param):
        yield request.param


@pytest.fixture
def seed(request):
    """A seed per test, from its id: stable across runs (Python's str hash is salted per
    process, so it is not used). SR_OPS_TEST_SEED=<int> shifts every seed, for fresh draws;
    `pytest -l` shows a failing test's seed among its locals."""
    value = (zlib.crc32(request.node.nodeid.encode()) + int(os.environ.get("SR_OPS_TEST_SEED", "0"))) % (2**31)
    torch.manual_seed(value)
    return value

"""Backend listing, forcing (context manager and SR_OPS_BACKEND) and fallback."""
import os
import subprocess
import sys
import warnings

import pytest
import torch

import sr_ops
from sr_ops import _ext, backends


def test_available_backends_on_this_machine():
    names = sr_ops.available_backends()
    assert names[0] == "reference"
    assert set(names) <= set(sr_ops.BACKENDS)
    if _ext.load() is not None:
        assert "cpu" in names
    if os.environ.get("TRITON_INTERPRET") == "1" and backends.importlib.util.find_spec("triton"):
        assert "triton" in names
    assert ("cuda" in names) == (_ext.with_cuda() and torch.cuda.is_available())


def test_default_is_fastest_for_device():
    expected = "cpu" if "cpu" in sr_ops.available_backends() else "reference"
    assert backends.select("patch2img", torch.device("cpu"), sr_ops.BACKENDS) == expected


def test_use_backend_nests_and_restores():
    with sr_ops.use_backend("reference"):
        assert backends.requested_backend() == "reference"
        inner = sr_ops.available_backends()[-1]
        with sr_ops.use_backend(inner):
            assert backends.requested_backend() == inner
        assert backends.requested_backend() == "reference"
    assert backends.requested_backend() == os.environ.get("SR_OPS_BACKEND")


def test_unknown_and_unavailable_backends_raise():
    with pytest.raises(ValueError, match="unknown sr_ops backend 'fast'.*reference"):
        with sr_ops.use_backend("fast"):
            pass
    if "cuda" not in sr_ops.available_backends():
        with pytest.raises(RuntimeError, match=r"'cuda' is not available.*available: \['reference'"):
            with sr_ops.use_backend("cuda"):
                pass


def test_env_variable_forces_backend(monkeypatch):
    monkeypatch.setenv("SR_OPS_BACKEND", "reference")
    assert backends.select("patch2img", torch.device("cpu"), sr_ops.BACKENDS) == "reference"
    monkeypatch.setenv("SR_OPS_BACKEND", "nope")
    with pytest.raises(ValueError, match="unknown sr_ops backend 'nope'"):
        sr_ops.patch2img(torch.randn(1, 1, 1, 3, 3), (3, 3), 3, 1)


def test_backend_that_cannot_take_the_device_raises():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    with sr_ops.use_backend("cpu"):
        with pytest.raises(RuntimeError, match="cannot run sr_ops.patch2img on meta"):
            backends.select("patch2img", torch.device("meta"), sr_ops.BACKENDS)


def test_missing_extension_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setattr(_ext, "_state", {"module": None, "error": "not built (test)"})
    monkeypatch.setattr(backends, "_warned_fallback", False)
    monkeypatch.delenv("SR_OPS_BACKEND", raising=False)
    assert "cpu" not in sr_ops.available_backends()
    p = torch.randn(1, 4, 2, 3, 3)
    with pytest.warns(RuntimeWarning, match="not built \\(test\\).*reference backend"):
        out = sr_ops.patch2img(p, (5, 5), 3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sr_ops.patch2img(p, (5, 5), 3, 2)  # warned once only
    torch.testing.assert_close(out, sr_ops.reference.patch2img(p, (5, 5), 3, 2))


def test_skip_ext_env_gives_pure_python_package():
    code = "import sr_ops; print(sr_ops.available_backends())"
    env = dict(os.environ, SR_OPS_SKIP_EXT="1", TRITON_INTERPRET="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    names = eval(out.stdout.strip())  # a printed list of names
    assert names[0] == "reference" and "cpu" not in names and "cuda" not in names

"""PEP 517 backend: setuptools.build_meta, compiling against the target environment's torch.

sr_ops._C must be built against the torch that will import it (same version, C++ ABI,
CPU or CUDA). `pip install -e .` builds in an isolated environment holding only the
build-system requires, and listing torch there would make pip fetch some other torch.
But pip runs the backend with the target environment's interpreter and merely hides
that environment's site-packages from sys.path; so when torch does not import here,
this appends those site-packages (sysconfig's purelib/platlib for this interpreter),
checks that the torch imported is the one installed there (location and recorded
version) and prints which torch it builds against (shown with `pip install -v`).
With `--no-build-isolation` torch imports directly and nothing changes.
"""
from __future__ import annotations

import os
import site
import sys
import sysconfig

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (every hook, unchanged unless below)


def _site_dirs() -> list[str]:
    dirs = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    if sys.prefix == sys.base_prefix:  # not a venv: a `pip install --user` torch counts too
        dirs.append(site.getusersitepackages())
    return [d for i, d in enumerate(dirs) if d and d not in dirs[:i]]


def _torch_from_target():
    found = [d for d in _site_dirs() if os.path.isdir(os.path.join(d, "torch"))]
    if not found:
        raise SystemExit(
            f"sr_ops: torch is not installed in the environment being installed into "
            f"({sys.prefix}); sr_ops._C is compiled against that torch, so install it first "
            f"(e.g. pip install torch==2.13.0 for CPU, torch==2.14.1 for CUDA 13.0), or set "
            f"SR_OPS_SKIP_EXT=1 for the pure-Python backends only")
    site_dir = found[0]
    sys.path.append(site_dir)  # appended: the build environment's setuptools stays first
    from importlib.metadata import distributions

    import torch

    versions = [d.version for d in distributions(path=[site_dir])
                if (d.metadata["Name"] or "").lower() == "torch"]
    here = os.path.dirname(os.path.realpath(torch.__file__))
    public = torch.__version__.split("+")[0]  # the CUDA wheels record 2.14.1 for 2.14.1+cu130
    if here != os.path.realpath(os.path.join(site_dir, "torch")) or [
            v.split("+")[0] for v in versions] != [public]:
        raise SystemExit(
            f"sr_ops: imported torch {torch.__version__} from {here}, but {site_dir} records "
            f"torch {versions}; build with `pip install -e . --no-build-isolation` instead")
    return torch


def _torch(announce: bool = False) -> None:
    if os.environ.get("SR_OPS_SKIP_EXT", "0").lower() in ("1", "true", "yes", "on"):
        return
    try:
        import torch
    except ImportError:
        torch = _torch_from_target()
    if announce:
        kind = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
        print(f"sr_ops: building sr_ops._C against torch {torch.__version__} ({kind}) at "
              f"{os.path.dirname(torch.__file__)}", file=sys.stderr, flush=True)


# setup.py imports torch in every hook (its extension list needs it), so each one first
# makes it importable; only the hooks that compile say which torch.
def get_requires_for_build_wheel(config_settings=None):
    _torch()
    return _setuptools.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_editable(config_settings=None):
    _torch()
    return _setuptools.get_requires_for_build_editable(config_settings)


def get_requires_for_build_sdist(config_settings=None):
    _torch()
    return _setuptools.get_requires_for_build_sdist(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _torch()
    return _setuptools.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    _torch()
    return _setuptools.prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _torch(announce=True)
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _torch(announce=True)
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    _torch()
    return _setuptools.build_sdist(sdist_directory, config_settings)

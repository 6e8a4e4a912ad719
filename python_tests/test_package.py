"""`import sr_ops` stays light, and its heavier submodules load on first attribute use."""
import subprocess
import sys


def test_models_load_lazily_on_attribute_access():
    code = ("import sys, sr_ops\n"
            "assert 'sr_ops.models' not in sys.modules, 'import sr_ops loaded the models'\n"
            "m = sr_ops.models.build('fsrcnn', 2)\n"
            "assert type(m).__name__ == 'FSRCNN' and 'models' in dir(sr_ops)\n"
            "try:\n    sr_ops.nope\nexcept AttributeError as e:\n    assert 'nope' in str(e)\n"
            "else:\n    raise SystemExit('no AttributeError')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_version_has_one_source():
    """sr_ops/_meta.py holds the version: the package, the installed metadata (setup.py) and
    CMakeLists.txt must all read it from there."""
    import importlib.metadata
    import re
    from pathlib import Path

    import sr_ops
    from sr_ops import _meta

    assert sr_ops.__version__ == _meta.__version__
    try:
        assert importlib.metadata.version("sr_ops") == _meta.__version__
    except importlib.metadata.PackageNotFoundError:
        pass  # run from a source tree that was never pip-installed
    root = Path(__file__).resolve().parents[1]
    for name in ("setup.py", "CMakeLists.txt"):
        text = (root / name).read_text()
        assert _meta.__version__ not in text, f"{name} writes the version itself"
        assert "_meta.py" in text, f"{name} does not read sr_ops/_meta.py"
    assert not re.search(r"CUDA_ARCH\S*:-9\d", (root / "tools" / "build_check.sh").read_text())

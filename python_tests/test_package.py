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

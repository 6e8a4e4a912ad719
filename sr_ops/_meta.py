"""Facts kept in one place. setup.py, CMakeLists.txt and tools/build_check.sh read this file
as text (no import: it must work before torch or the extension exist), so each value stays
a plain quoted string on a line of its own."""

__version__ = "0.1.0"

# CUDA compute capability built when no one says otherwise: CI's real CUDA build, the GPU
# runbook's build (H100/H200) and the ptxas resource report. A user's `pip install` with
# SR_OPS_CUDA_ARCH unset gets torch's own choice instead (TORCH_CUDA_ARCH_LIST, else the
# visible GPU).
DEFAULT_CUDA_ARCH = "90"

#!/usr/bin/env bash
# Build checks that install sr_ops the way users do, each in a copy of the tree (a
# `pip install -e .` writes sr_ops/_C*.so in place, which would replace the dev venv's
# extension in this tree). No GPU needed.
#
#   tools/build_check.sh cuda      the real CUDA build by a plain `pip install -e .`
#       (build isolation on; torch's CUDAExtension flags, so
#       -D__CUDA_NO_HALF_CONVERSIONS__ and friends) against torch $TORCH_CUDA in
#       build/venv-cuda (CUDA_VENV; made once, reused while it has that torch), then
#       `python -m sr_ops._build_check`: every CPU kernel schema has a CUDA kernel.
#   tools/build_check.sh isolated  plain `pip install -e .` (build isolation on) in a
#       fresh throwaway venv with the CPU torch $TORCH_CPU, then `import sr_ops._C`:
#       tools/build_backend.py must find the target's torch.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_CPU=2.13.0
TORCH_CUDA=2.14.1
DEFAULT_CUDA_ARCH=$(sed -n 's/^DEFAULT_CUDA_ARCH = "\([0-9]*\)"$/\1/p' sr_ops/_meta.py)  # one place

# Tracked and untracked-but-not-ignored files (what a commit would hold) into $1.
copy_tree() {
  rm -rf "$1" && mkdir -p "$1"
  git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -cf - | tar -xf - -C "$1"
}

case "${1:-}" in
cuda)
  export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
  if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then echo "cuda-build: no nvcc in $CUDA_HOME, skipped"; exit 0; fi
  venv=${CUDA_VENV:-build/venv-cuda}
  if ! "$venv/bin/python" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$TORCH_CUDA')" 2>/dev/null; then
    echo "cuda-build: creating $venv with torch==$TORCH_CUDA"
    rm -rf "$venv" && python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q "torch==$TORCH_CUDA" numpy pillow pypng tqdm ninja "setuptools>=64" wheel
  fi
  # sr_ops imports its runtime dependencies (the install below is --no-deps); a venv made
  # before they were added lacks them
  "$venv/bin/python" -c "import png, tqdm" 2>/dev/null || "$venv/bin/python" -m pip install -q pypng tqdm
  py=$(cd "$venv" && pwd)/bin/python
  copy_tree build/cuda-tree && cd build/cuda-tree
  # One architecture keeps it short on 2 cores; cuda-check compiles sm_80 and sm_90.
  # Build isolation on, as a user's plain `pip install -e .` (tools/build_backend.py finds
  # this venv's torch), so one build checks both; `make build` covers --no-build-isolation.
  FORCE_CUDA=1 SR_OPS_CUDA_ARCH=${SR_OPS_CUDA_ARCH:-$DEFAULT_CUDA_ARCH} MAX_JOBS=${MAX_JOBS:-2} \
    "$py" -m pip install -q -e . --no-deps
  "$py" -m sr_ops._build_check
  ;;
isolated)
  venv=$PWD/build/venv-isolated tree=$PWD/build/isolated-tree
  rm -rf "$venv" && python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q "torch==$TORCH_CPU" numpy pillow
  copy_tree "$tree" && cd "$tree"
  MAX_JOBS=${MAX_JOBS:-2} "$venv/bin/python" -m pip install -q -e .
  cd / && "$venv/bin/python" -c "import torch, sr_ops._C as C; print('isolated install: sr_ops._C imports, torch', torch.__version__, C.__file__)"
  rm -rf "$venv" "$tree"  # throwaway (kept when a step failed, to look into)
  ;;
*) echo "usage: $0 cuda|isolated" >&2; exit 2 ;;
esac

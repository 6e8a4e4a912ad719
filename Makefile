# sr_ops developer commands. `make demo` and `make test` work on a fresh clone:
# they use the active virtualenv/conda env, or create .venv when none is active,
# install torch==2.13.0 only when torch is missing, and build the extension.

ifneq ($(VIRTUAL_ENV)$(CONDA_PREFIX),)
PYTHON ?= python
else
PYTHON ?= .venv/bin/python
endif
ifeq ($(PYTHON),.venv/bin/python)
VENV := .venv/bin/python
endif
NVCC ?= $(shell command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)
STAMP := build/.ext-stamp
PYTEST_ARGS ?=

.PHONY: demo test env build pytest ctest cuda-check glue-check bench clean

ASSETS := ../shared/assets

demo: build
	$(PYTHON) -m sr_ops bench --quick --json build/demo/bench-quick.json --plot build/demo/speedups.png
	@if [ -d $(ASSETS)/weights/rt4ksr ]; then \
	  $(PYTHON) -m sr_ops upscale $(ASSETS)/datasets/Set5/LRbicx2 build/demo/set5_x2 --model rt4ksr --scale 2 \
	    --checkpoint $(ASSETS)/weights/rt4ksr/rt4ksr_x2.pth --tile 128 --overwrite && \
	  $(PYTHON) -m sr_ops eval --model rt4ksr --scale 2 --checkpoint $(ASSETS)/weights/rt4ksr/rt4ksr_x2.pth \
	    --dataset $(ASSETS)/datasets/SelfExSR/Set5/image_SRF_2 --csv build/demo/set5_x2.csv; \
	else echo "demo: $(ASSETS) not found, skipping the RT4KSR Set5 upscale and evaluation"; fi
	@if [ -d $(ASSETS)/weights/mzsr ]; then \
	  $(PYTHON) -m sr_ops eval --model mzsr --scale 2 \
	    --checkpoint $(ASSETS)/weights/mzsr/mzsr_pretrained_bicubic_x2_torch.pth \
	    --dataset $(ASSETS)/datasets/SelfExSR/Set5/image_SRF_2; \
	else echo "demo: $(ASSETS) not found, skipping the MZSR Set5 evaluation"; fi
	$(PYTHON) -m sr_ops.bench.classsr_report --size 384

test: build
	$(MAKE) --no-print-directory pytest ctest cuda-check glue-check

.venv/bin/python:
	python3 -m venv .venv

env: $(VENV)
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	@$(PYTHON) -c "import triton" 2>/dev/null || $(PYTHON) -m pip install triton
	$(PYTHON) -m pip install -q numpy pillow pytest pytest-benchmark ninja "setuptools>=64" wheel matplotlib

# (Re)build the extension when it does not import or a C++/CUDA source changed.
build: env
	@if $(PYTHON) -c "import torch, sr_ops._C" 2>/dev/null && [ -f $(STAMP) ] \
	    && [ -z "$$(find csrc setup.py -newer $(STAMP))" ]; then echo "sr_ops._C is up to date"; \
	else $(PYTHON) -m pip install -e . --no-build-isolation --no-deps && mkdir -p build && touch $(STAMP); fi

pytest:
	$(PYTHON) -m pytest python_tests benchmarks --benchmark-disable -q $(PYTEST_ARGS)

# The torch-free kernel code and its C++ unit tests (no torch, no CUDA needed).
ctest:
	cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=Release -DSR_OPS_BUILD_EXTENSION=OFF -DSR_OPS_CUDA=OFF >/dev/null
	cmake --build build/cmake -j2
	ctest --test-dir build/cmake --output-on-failure

# Every .cu must compile with plain nvcc, without torch's headers.
cuda-check:
	@if [ -x "$(NVCC)" ]; then \
	  for f in csrc/cuda/*.cu; do \
	    echo "nvcc -c $$f"; \
	    "$(NVCC)" -c -std=c++17 -Icsrc -arch=sm_90 $$f -o build/$$(basename $$f).o || exit 1; \
	  done; \
	else echo "cuda-check: nvcc not found, skipped"; fi

# The *_glue.cpp files need a CUDA build of torch to compile for real; a syntax-only
# pass against this torch's headers (plus a stub for the one header a CPU wheel lacks)
# still catches most mistakes without a GPU.
glue-check: env
	@if [ -d /usr/local/cuda/include ]; then \
	  mkdir -p build/stubinc/c10/cuda/impl && echo '#pragma once' > build/stubinc/c10/cuda/impl/cuda_cmake_macros.h; \
	  inc=$$($(PYTHON) -c "import torch.utils.cpp_extension as c; print(' '.join('-I'+p for p in c.include_paths()))"); \
	  for f in csrc/cuda/*_glue.cpp; do echo "syntax-check $$f"; \
	    $(CXX) -std=c++20 -fsyntax-only $$inc -Ibuild/stubinc -I/usr/local/cuda/include -Icsrc -DSR_OPS_WITH_CUDA=1 $$f || exit 1; \
	  done; \
	else echo "glue-check: CUDA headers not found, skipped"; fi

bench: build
	$(PYTHON) -m sr_ops bench

clean:
	rm -rf build sr_ops/_C*.so *.egg-info

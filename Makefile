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
# pytest-xdist workers for the test runs: one process keeps ~1.1 of 2 cores busy (the Triton
# interpreter and compiles run on one); PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),-p no:xdist,-n $(PYTEST_WORKERS))

.PHONY: demo test env build lint pytest ctest cuda-check cuda-build install-check bench clean

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
	$(MAKE) --no-print-directory lint pytest ctest cuda-check cuda-build cuda-sim cuda-sim-tsan

.venv/bin/python:
	python3 -m venv .venv

# matplotlib and faiss-cpu are benchmark-only (the speedups plot, KNN's FAISS row).
env: $(VENV)
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	@$(PYTHON) -c "import triton" 2>/dev/null || $(PYTHON) -m pip install triton
	$(PYTHON) -m pip install -q numpy pillow pypng tqdm pytest pytest-benchmark pytest-xdist ninja "setuptools>=64" wheel matplotlib faiss-cpu ruff clang-format

# (Re)build the extension when it does not import or a C++/CUDA source changed.
build: env
	@if $(PYTHON) -c "import torch, sr_ops._C" 2>/dev/null && [ -f $(STAMP) ] \
	    && [ -z "$$(find csrc setup.py -newer $(STAMP))" ]; then echo "sr_ops._C is up to date"; \
	else $(PYTHON) -m pip install -e . --no-build-isolation --no-deps && mkdir -p build && touch $(STAMP); fi

# ruff's rules and line length are in pyproject.toml, clang-format's in .clang-format; a
# few seconds. `make format` applies both (no behaviour change).
CLANG_FORMAT ?= $(shell $(PYTHON) -c "import clang_format; print(clang_format.get_executable('clang-format'))" \
  2>/dev/null || command -v clang-format)
CXX_SOURCES = $(shell git ls-files -co --exclude-standard 'csrc/*.cpp' 'csrc/*.h' 'csrc/*.cu' 'csrc/*.cuh')
.PHONY: format
lint:
	$(PYTHON) -m ruff check .
	@echo "clang-format --dry-run --Werror ($(words $(CXX_SOURCES)) C++/CUDA files)"
	@$(CLANG_FORMAT) --dry-run --Werror $(CXX_SOURCES)
format:
	$(PYTHON) -m ruff check --fix .
	@echo "clang-format -i ($(words $(CXX_SOURCES)) C++/CUDA files)"
	@$(CLANG_FORMAT) -i $(CXX_SOURCES)

pytest:
	$(PYTHON) -m pytest python_tests benchmarks --ignore=python_tests/cuda_sim --benchmark-disable -q $(XDIST) $(PYTEST_ARGS)

# The CUDA kernels and glue run on the CPU by the simulator (csrc/testing/cuda_sim), against
# the CPU kernels; OPS="eca patch2img" keeps those .cu stems. The TSan variant runs the free
# schedule under ThreadSanitizer (float32 cases), which reports what a missing barrier races.
# The simulator library is built once before the workers start (they would wait on its lock).
.PHONY: cuda-sim cuda-sim-tsan
OPS ?=
SIM_BUILD = $(PYTHON) -c "import sys; sys.path.insert(0, 'python_tests/cuda_sim'); import _build; _build.ops()"
cuda-sim: build
	$(SIM_BUILD)
	SR_SIM_OPS="$(OPS)" $(PYTHON) -m pytest python_tests/cuda_sim -q -p no:cacheprovider $(XDIST)
TSAN_ENV = SR_SIM_TSAN=1 OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 exitcode=66" \
  LD_PRELOAD=$$($(CXX) -print-file-name=libtsan.so)
cuda-sim-tsan: build
	$(TSAN_ENV) $(SIM_BUILD)
	SR_SIM_OPS="$(OPS)" $(TSAN_ENV) $(PYTHON) -m pytest python_tests/cuda_sim -q -p no:cacheprovider $(XDIST)

# The torch-free kernel code and its C++ unit tests (no torch, no CUDA needed).
ctest:
	cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=Release -DSR_OPS_BUILD_EXTENSION=OFF -DSR_OPS_CUDA=OFF >/dev/null
	cmake --build build/cmake -j2
	ctest --test-dir build/cmake --output-on-failure

# Every .cu must compile with plain nvcc (no torch headers) under the defines torch's
# CUDAExtension adds, which remove __half/__nv_bfloat16's implicit conversions and
# operators, for both sm_80 and sm_90; one nvcc per file, two at a time.
CUDA_CHECK_FLAGS := -c -std=c++17 -Icsrc -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ \
  -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__ \
  -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90
cuda-check:
	@if [ -x "$(NVCC)" ]; then mkdir -p build/cuda-check && \
	  ls csrc/cuda/*.cu | xargs -P2 -n1 sh -c 'echo "nvcc $$0" && \
	    "$(NVCC)" $(CUDA_CHECK_FLAGS) "$$0" -o build/cuda-check/$$(basename "$$0").o'; \
	else echo "cuda-check: nvcc not found, skipped"; fi

# The real CUDA build (CUDA torch in build/venv-cuda, glue files included) in a copy of
# the tree, and the check that every CPU kernel schema has a CUDA kernel.
cuda-build:
	tools/build_check.sh cuda

# Plain `pip install -e .` (build isolation on) in a throwaway venv with the CPU torch.
# Not in `make test` (yet): it took 7 min on 2 busy cores, past the CI step budget of ~6.
install-check:
	tools/build_check.sh isolated

bench: build
	$(PYTHON) -m sr_ops bench

# The differential fuzz suite at 20x make test's cases, with a fresh seed (printed on failure).
.PHONY: fuzz
FUZZ_CASES ?= 20000
fuzz: build
	SR_OPS_FUZZ_CASES=$(FUZZ_CASES) $(PYTHON) -m pytest python_tests/test_fuzz.py -q $(XDIST) $(PYTEST_ARGS)

clean:
	rm -rf build sr_ops/_C*.so *.egg-info

# --- GPU resource report and runbook (issue 12) ---
.PHONY: cuda-resources gpu-check
# python3 where $(PYTHON) does not exist (a GPU machine with its own torch and no .venv).
TOOL_PYTHON = $(shell command -v $(PYTHON) 2>/dev/null || command -v python3)

# ptxas's registers, spills, stack frame and shared memory of every CUDA kernel for
# sm_90 (no GPU needed) -> the CUDA section of docs/gpu-kernels.md.
cuda-resources:
	$(TOOL_PYTHON) sr_ops/bench/cuda_resources.py --report docs/gpu-kernels.md

# The GPU runbook, one command (at most 8 minutes on an H100/H200): build, CUDA and
# Triton tests, benchmarks -> benchmarks/results/gpu-<device>.{json,md}. GPU_CHECK_DRY=1
# runs it on the CPU with tiny sizes (-> build/gpu-check-dry/). Needs no `make env`.
gpu-check:
	$(TOOL_PYTHON) -m sr_ops.bench.gpu_check $(GPU_CHECK_ARGS)

"""pytest-benchmark suites. CI runs them with --benchmark-disable: each benchmark then
runs once, and the correctness check beside it still runs."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

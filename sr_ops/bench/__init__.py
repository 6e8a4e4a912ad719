"""Benchmarks of every op: fused vs pure PyTorch (and torch.compile), time and peak memory.

Shared by `python -m sr_ops bench` and the pytest-benchmark suites in benchmarks/.
"""

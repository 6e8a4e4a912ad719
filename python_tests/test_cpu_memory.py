"""sr_ops.cpu_memory.keep_freed_memory: once applied, a large tensor comes from glibc's heap
(the program break grows) and stays there after it is freed (the break does not shrink), so
the next such tensor reuses those pages; by default glibc maps it afresh. Checked in a
subprocess, so this test process keeps glibc's defaults."""
import platform
import subprocess
import sys

import pytest

from sr_ops.cpu_memory import keep_freed_memory

_CHILD = r"""
import ctypes, sys, torch
from sr_ops.cpu_memory import keep_freed_memory
libc = ctypes.CDLL("libc.so.6")
libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_long]
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.empty(1)  # torch's own start-up allocations first
start = libc.sbrk(0)
t = torch.empty(12 << 20)  # 48 MiB: above glibc's largest dynamic mmap threshold
t.fill_(1.0)
grown = libc.sbrk(0) - start
del t
kept = libc.sbrk(0) - start
print(applied, grown >> 20, kept >> 20)
"""

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="glibc's malloc only")


def _child(mode: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True)
    return out.stdout.split()


@glibc
def test_large_blocks_come_from_the_heap_and_stay_there():
    applied, grown, kept = _child("keep")
    assert applied == "True"
    assert int(grown) >= 40, f"the 48 MiB tensor did not come from the heap (break grew {grown} MiB)"
    assert int(kept) >= 40, f"the heap was trimmed after the free (break now +{kept} MiB)"


@glibc
def test_glibc_default_maps_large_blocks_afresh():
    _, grown, _ = _child("default")
    assert int(grown) < 40, f"with glibc's defaults a 48 MiB block is mmapped, yet the break grew {grown} MiB"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1G"])
def test_bad_threshold_is_refused(bad):
    with pytest.raises(ValueError, match="threshold_bytes"):
        keep_freed_memory(bad)


_PEAK_CHILD = r"""
import torch
from sr_ops.bench.memory import peak_bytes
from sr_ops.cpu_memory import keep_freed_memory, kept_threshold
assert keep_freed_memory()
def three_in_turn():  # one 48 MiB tensor live at a time
    for _ in range(3):
        torch.empty(12 << 20).fill_(1.0)
peak = peak_bytes(three_in_turn)
print(peak >> 20, kept_threshold())
"""


@glibc
def test_rss_peak_is_the_live_peak_while_freed_memory_is_kept():
    # The bench keeps freed memory for its timings. Its RSS peaks must not count the heap's
    # growth past its holes: 64-byte-aligned blocks of one size often do not fit the hole
    # the last one left, so the heap grows by a block per call. The setting comes back after.
    out = subprocess.run([sys.executable, "-c", _PEAK_CHILD], capture_output=True, text=True, check=True)
    peak, kept = out.stdout.split()
    assert 40 <= int(peak) < 80, f"one live 48 MiB tensor at a time measured as a {peak} MiB peak"
    assert kept == str(1 << 30)

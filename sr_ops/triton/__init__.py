"""Triton kernels. Import lazily: importing triton is slow and optional.

On a machine without a GPU they run in Triton's interpreter when TRITON_INTERPRET=1
is set before triton is first imported (the test suite's conftest does that).
"""

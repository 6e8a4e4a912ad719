"""The autograd wiring the ops with a backward kernel share.

Such an op is ``op(*tensors, *attrs)`` (tensors first, then non-tensor settings such as eps)
with a private custom op ``backward_op(grad, *tensors, *attrs)`` that returns one gradient
per tensor, each backend with its own kernel. Second order (gradient penalties, rare) goes
through ``reference_backward``, the same closed form written in differentiable torch ops,
on every backend rather than through a third kernel. torch.func.vjp, not torch.autograd:
custom-op kernels run below the autograd key."""
from __future__ import annotations

from typing import Callable

import torch


def _split(ctx, inputs) -> None:
    n = next((i for i, t in enumerate(inputs) if not isinstance(t, torch.Tensor)), len(inputs))
    ctx.attrs = tuple(inputs[n:])
    ctx.save_for_backward(*inputs[:n])


def register_closed_form_autograd(op, backward_op, reference_backward: Callable) -> None:
    def setup(ctx, inputs, output):
        _split(ctx, inputs)

    def grad(ctx, g):
        return (*backward_op(g, *ctx.saved_tensors, *ctx.attrs), *(None,) * len(ctx.attrs))

    def grad_of_backward(ctx, *grads):
        saved = ctx.saved_tensors  # (grad_out, *tensors)
        cot = tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, saved[1:]))
        _, vjp = torch.func.vjp(lambda *a: reference_backward(*a, *ctx.attrs), *saved)
        return (*vjp(cot), *(None,) * len(ctx.attrs))

    op.register_autograd(grad, setup_context=setup)
    backward_op.register_autograd(grad_of_backward, setup_context=setup)

"""Gradient reversal written the way CellCap (and pytorch-revgrad) write it.

Deliberately kept in that style, warts included, so grl-props can show what it costs:

* an old-style ``autograd.Function`` (``forward`` takes ``ctx``, no ``setup_context``), so
  ``torch.func`` transforms refuse it;
* ``forward`` returns its input object itself, so the output is a view of the input created in a
  custom Function and in-place ops on it raise;
* ``ctx.save_for_backward(input, alpha)`` keeps the whole activation alive for nothing;
* alpha is a 0-d float32 tensor held as a plain attribute: not a buffer, so it is absent from
  ``state_dict`` and not moved by ``.to()``, and float64 gradients are scaled by float32(alpha).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd import Function


class GradientReverseLayer(Function):
    """Identity in forward; multiplies the incoming gradient by ``-alpha`` in backward."""

    @staticmethod
    def forward(ctx: Any, input: Tensor, alpha: Tensor) -> Tensor:  # noqa: A002 - CellCap's name
        ctx.save_for_backward(input, alpha)
        return input

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, None]:
        _, alpha = ctx.saved_tensors
        grad_input = None
        if ctx.needs_input_grad[0]:
            grad_input = -grad_output * alpha
        return grad_input, None


revgrad = GradientReverseLayer.apply


class GradientReverseModule(nn.Module):
    """``nn.Module`` face of :class:`GradientReverseLayer` with a fixed reversal strength."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = torch.tensor(alpha, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return revgrad(x, self.alpha)

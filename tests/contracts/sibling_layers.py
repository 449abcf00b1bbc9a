"""Small custom-gradient layers of the sibling contracts, for the contract tests.

A correct gradient multiplier, one that reverses instead, a straight-through rounding estimator
written as the usual one-liner, a plain ``torch.round`` (zero gradient), a floor-based quantiser
(rounds ties up), and a clipped reversal with the user-defined contract of ``user_contracts``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class GradMultiply(torch.autograd.Function):
    """Identity forward, ``+scale · grad`` backward (fairseq's layer, new-style)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, scale: float) -> Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.scale = float(inputs[1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None

    @staticmethod
    def jvp(ctx: Any, x_tangent: Tensor, scale_tangent: Any) -> Tensor:
        return x_tangent * ctx.scale


class ReversingMultiply(GradMultiply):
    """The bug: a multiplier that reverses (``-scale · grad``)."""

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.scale, None


def ste_round(x: Tensor) -> Tensor:
    """The usual straight-through rounding one-liner."""
    return x + (torch.round(x) - x).detach()


def plain_round(x: Tensor) -> Tensor:
    """The bug: no estimator at all (round's gradient is zero)."""
    return torch.round(x)


def floor_quantiser(x: Tensor) -> Tensor:
    """The bug: rounds ties up (``floor(x + 0.5)``), not half to even."""
    return x + (torch.floor(x + 0.5) - x).detach()


class ClippedReversal(torch.autograd.Function):
    """A reversal of the clipped gradient, ``-alpha · clamp(v, -1, 1)`` (coqui-TTS style)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: float) -> Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.alpha = float(inputs[1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad.clamp(-1.0, 1.0) * -ctx.alpha, None

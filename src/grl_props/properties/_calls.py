"""Calling a layer under test the way properties need: forward, VJP, expected VJP."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from grl_props.compare import require_tensor

Layer = Callable[[Tensor], Any]


def forward(layer: Layer, x: Tensor) -> Tensor:
    """``layer(x)``, required to be a Tensor of ``x``'s shape, dtype and device."""
    return require_tensor(layer(x), "the layer's output", like=x)


def leaf(x: Tensor) -> Tensor:
    """A fresh leaf with ``x``'s values and strides that requires grad."""
    return x.detach().requires_grad_(True)


def vjp(layer: Layer, x: Tensor, v: Tensor) -> Tensor:
    """The gradient reaching ``x`` when ``v`` flows back into ``layer(x)``."""
    x = leaf(x)
    out = forward(layer, x)
    if not out.requires_grad:
        raise AssertionError(
            "the layer's output does not require grad although its input does: "
            "it detached the output, so no gradient can reach the input"
        )
    (grad,) = torch.autograd.grad(out, x, v, allow_unused=True)
    if grad is None:
        raise AssertionError("no gradient reached the input (autograd returned None)")
    return require_tensor(grad, "the input's gradient", like=x)


def expected_vjp(v: Tensor, alpha: float) -> Tensor:
    """``-alpha * v`` computed in double precision, rounded once to ``v``'s dtype."""
    wide = torch.complex128 if v.is_complex() else torch.float64
    return (v.to(wide) * (-alpha)).to(v.dtype)


def exact_product(v: Tensor, alpha: float) -> bool:
    """Whether ``-alpha * v`` is exact in ``v``'s dtype whatever the layer's arithmetic.

    True when alpha is 0 or a power of two and no nonzero product falls below the dtype's smallest
    normal (where rounding paths can differ).
    """
    if alpha != 0 and not (math.isfinite(alpha) and math.frexp(abs(alpha))[0] == 0.5):
        return False
    if not (v.is_floating_point() or v.is_complex()):
        return True
    real = v.dtype.to_real() if v.is_complex() else v.dtype
    product = expected_vjp(v, alpha)
    parts = torch.view_as_real(product) if product.is_complex() else product
    tiny = torch.finfo(real).tiny
    small = (parts != 0) & (parts.abs() < tiny)
    return not bool(small.any())


def grad_capable(x: Tensor) -> bool:
    """Whether ``x``'s dtype can require grad."""
    return x.is_floating_point() or x.is_complex()

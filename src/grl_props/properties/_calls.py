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


def ratio_note(got: Tensor, reference: Tensor, expected: float, *, of: str = "gradient ÷ v") -> str:
    """One line saying how ``got`` relates to ``reference`` elementwise, for a failure message:
    ``gradient ÷ v on 8 ordinary elements: +0.3 (expected -0.3)``, or ``ranges from -1 to +1``.

    Only ordinary elements count (finite, nonzero ``reference`` well inside the dtype's range,
    finite ``got``), so a lost sign, an ignored or rounded alpha reads off directly; ``""`` when
    there is none or the tensors are complex.
    """
    if got.is_complex() or reference.is_complex() or got.shape != reference.shape:
        return ""
    if not (reference.is_floating_point() and got.is_floating_point()):
        return ""
    info = torch.finfo(reference.dtype)
    g, r = got.detach().cpu().to(torch.float64), reference.detach().cpu().to(torch.float64)
    ordinary = (torch.isfinite(g) & torch.isfinite(r) & (r.abs() >= info.tiny * 2.0**12)
                & (r.abs() <= info.max * 2.0**-12))
    if not bool(ordinary.any()):
        return ""
    ratios = g[ordinary] / r[ordinary]
    low, high = float(ratios.min()), float(ratios.max())
    if high - low <= 1e-4 * max(abs(low), abs(high)):
        found = f"{float(ratios.median()):+.5g}"
    else:
        found = f"ranges from {low:+.5g} to {high:+.5g}"
    count = int(ordinary.sum())
    return f"{of} on {count} ordinary element{'s' if count != 1 else ''}: {found} (expected {expected:+.5g})"


def with_note(exc: AssertionError, note: str) -> AssertionError:
    """``exc`` with ``note`` as a last line (Hypothesis adds the counterexample after it)."""
    return AssertionError(f"{exc}\n{note}" if note else str(exc))

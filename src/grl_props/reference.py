"""The reference gradient reversal layer: the layer done right.

Contract
--------
``gradient_reversal(x, alpha)`` returns a tensor equal to ``x`` bit for bit (same dtype, device,
shape and strides for dense tensors) and, in backward, multiplies the incoming gradient by
``-alpha``: the vector-Jacobian product is ``-alpha * v``.

Choices, and what they cost
---------------------------
* **Copy, not alias, in forward.** The output is ``x.clone()`` (``preserve_format``). An alias
  (``view_as`` / returning the input) saves one copy but makes the output a view created inside a
  custom Function, and any in-place op on it, or on the input later, raises "Output 0 of ... is a
  view and is being modified inplace" (pytorch/pytorch#73604). The copy costs one pass over the
  activation and nothing in backward; it keeps strides of dense tensors (expanded inputs come back
  contiguous).
* **Nothing saved for backward but alpha.** Backward needs only alpha, captured at forward time
  (a Python float, or a detached 0-d copy of a tensor alpha), so changing alpha between forward and
  backward does not change the gradient and no activation is kept alive.
* **Two Function classes.** Forward-mode AD (``torch.func.jvp``) needs a custom ``jvp``;
  ``torch.compile`` refuses any Function that defines one ("Unsupported custom jvp"). Under
  compilation we dispatch to a twin without ``jvp``; eager code gets the one with it.
* **Alpha is a float64 buffer in the module.** It is saved in ``state_dict``, moved by ``.to()``,
  read as a tensor so ``torch.compile`` does not recompile per alpha value, and kept float64 when
  the module is cast (``.half()`` would otherwise round 0.1 to 0.09998).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["GradientReversal", "gradient_reversal"]


def _capture_alpha(alpha: float | Tensor) -> float | Tensor:
    """Return alpha as it must be seen by backward: frozen at forward time."""
    if isinstance(alpha, Tensor):
        return alpha.detach().clone()
    return float(alpha)


def _scale(grad: Tensor, alpha: float | Tensor) -> Tensor:
    """``-alpha * grad`` in ``grad``'s dtype."""
    return grad * (-alpha)


def _remember_alpha(ctx: Any, alpha: float | Tensor) -> float | Tensor:
    """Keep alpha for backward as it is now: a float on ctx, or a 0-d tensor copy saved."""
    alpha = _capture_alpha(alpha)
    if isinstance(alpha, Tensor):
        ctx.save_for_backward(alpha)  # a 0-d copy, never the activation
        ctx.alpha = None
    else:
        ctx.alpha = alpha
    return alpha


class _ReverseForCompile(torch.autograd.Function):
    """Gradient reversal without a custom ``jvp``, so that Dynamo can trace it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: float | Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        _remember_alpha(ctx, inputs[1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        alpha = ctx.saved_tensors[0] if ctx.alpha is None else ctx.alpha
        return _scale(grad, alpha), None


class _Reverse(_ReverseForCompile):
    """Gradient reversal with forward-mode AD: the tangent is scaled like the gradient."""

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        alpha = _remember_alpha(ctx, inputs[1])
        if isinstance(alpha, Tensor):
            ctx.save_for_forward(alpha)

    @staticmethod
    def jvp(ctx: Any, x_tangent: Tensor, alpha_tangent: Any) -> Tensor:
        alpha = ctx.saved_tensors[0] if ctx.alpha is None else ctx.alpha
        return _scale(x_tangent, alpha)


def gradient_reversal(x: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
    """Identity in forward; multiply the gradient by ``-alpha`` in backward.

    ``alpha`` is a Python number or a 0-d tensor (a tensor alpha lets ``torch.compile`` reuse one
    graph for every value). Integer and bool inputs pass through unchanged (they carry no gradient).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"gradient_reversal expects a torch.Tensor, got {type(x).__name__}")
    if isinstance(alpha, Tensor) and alpha.dim() != 0:
        raise ValueError(f"alpha must be a number or a 0-d tensor, got shape {tuple(alpha.shape)}")
    if torch.compiler.is_compiling():
        return _ReverseForCompile.apply(x, alpha)
    return _Reverse.apply(x, alpha)


class GradientReversal(nn.Module):
    """Gradient reversal layer holding its alpha as a float64 buffer (see module docstring).

    ``alpha`` is saved in ``state_dict``, follows ``.to(device)``, survives dtype casts of the
    module unrounded, and can be changed between steps with :meth:`set_alpha` (the change applies
    to the next forward, never to a backward already recorded). The layer has no parameters.
    """

    alpha: Tensor

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))

    def set_alpha(self, alpha: float) -> None:
        """Set alpha in place for the forwards that follow."""
        with torch.no_grad():
            self.alpha.fill_(float(alpha))

    def forward(self, x: Tensor) -> Tensor:
        return gradient_reversal(x, self.alpha)

    def _apply(self, fn: Any, recurse: bool = True) -> GradientReversal:
        # Move alpha with the module, but never round it by a dtype cast.
        alpha = self.alpha
        super()._apply(fn, recurse)
        device = self.alpha.device
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self._buffers["alpha"] = alpha.to(device=device, dtype=dtype)
        return self

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha):g}"

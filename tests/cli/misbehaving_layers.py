"""Layers that misbehave in ways the command must survive (used by test_check_command.py)."""

from __future__ import annotations

import os
import time
import warnings

import torch
from torch import nn


class Raises(nn.Module):
    """Raises on every call."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this layer is broken on purpose")


class ReturnsList(nn.Module):
    """Returns a list instead of a tensor."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x]


class WrongShape(nn.Module):
    """Flattens its input."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1)


class Hangs(nn.Module):
    """Never returns."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while True:
            time.sleep(0.05)


class _ForgotNeg(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):  # type: ignore[no-untyped-def]
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        return grad * ctx.alpha, None  # forgot .neg()


class LostSign(nn.Module):
    """A hand-written GRL that forgot ``.neg()`` in backward: the gradient is +alpha·v."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ForgotNeg.apply(x, self.alpha)


class HangsOnFloat64(nn.Module):
    """A right reversal on float32 that never returns on a float64 input."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while x.dtype == torch.float64:
            time.sleep(0.05)
        return _Reverse.apply(x, self.alpha)


class Warns(nn.Module):
    """A right reversal that warns on every call, in Python and as torch's C++ code does (a line
    written straight to file descriptor 2)."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        warnings.warn("the Warns layer warns from Python", UserWarning, stacklevel=1)
        os.write(2, b"[W1129 03:40:16.436401762 Fake.cpp:82] Warning: a C++ warning of the Warns "
                    b"layer (function fake)\n")
        return _Reverse.apply(x, self.alpha)


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):  # type: ignore[no-untyped-def]
        ctx.alpha = alpha
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        return grad * -ctx.alpha, None


def no_reversal(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """A plain identity: the gradient is never reversed."""
    return x.clone()


NOT_A_LAYER = 42

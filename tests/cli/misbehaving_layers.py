"""Layers that misbehave in ways the command must survive (used by test_check_command.py)."""

from __future__ import annotations

import time

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


def no_reversal(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """A plain identity: the gradient is never reversed."""
    return x.clone()


NOT_A_LAYER = 42

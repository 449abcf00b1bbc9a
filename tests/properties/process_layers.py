"""Layers that show where and how the runner runs them (used by test_runner.py).

They are loaded by path (``.../process_layers.py:Name``), as a child process of the runner would.
"""

from __future__ import annotations

import os

import torch
from torch import nn

#: The environment variable naming the file :class:`RecordsProcess` appends to.
PID_FILE = "GRL_PROPS_TEST_PID_FILE"


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):  # type: ignore[no-untyped-def]
        ctx.alpha = float(alpha)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        return grad * -ctx.alpha, None


class RecordsProcess(nn.Module):
    """A right reversal that appends ``pid parent-pid`` of the process running it to $PID_FILE."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with open(os.environ[PID_FILE], "a") as stream:
            stream.write(f"{os.getpid()} {os.getppid()}\n")
        return _Reverse.apply(x, self.alpha)


class ExitsProcess(nn.Module):
    """Ends the process running it on a float64 input, as a crashing extension would:
    ``os._exit(7)`` in forward (float32 inputs, as in grl-props' first call, run)."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float64:
            os._exit(7)
        return _Reverse.apply(x, self.alpha)


class AlwaysExits(nn.Module):
    """Ends the process running it on every call: ``os._exit(7)`` in forward."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        os._exit(7)

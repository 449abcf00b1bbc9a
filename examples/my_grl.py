"""A hand-written gradient reversal layer with a classic bug, to see what grl-props reports.

    grl-props check examples/my_grl.py:MyGradientReversal --no-stats

``backward`` forgot the minus sign: the gradient is scaled by ``alpha`` but not reversed.
"""

import torch
from torch import nn


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.alpha, None  # the bug: should be -ctx.alpha


class MyGradientReversal(nn.Module):
    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Reverse.apply(x, self.alpha)

"""Helpers of the statistical tests: broken layers and a small user-style model (fixed seeds).

A uniquely named module (not ``conftest``) so that importing it cannot clash with another
directory's conftest under ``pytest -n auto``. ``benchmarks/stats_error_rates.py`` imports the
broken layers from here: one definition for the tests and the measured error rates.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from grl_props import GradientReversal
from grl_props.experiment import SimulationConfig, simulate


class _Scaled(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``scale`` (a tensor or float)."""

    @staticmethod
    def forward(ctx, x, scale):  # noqa: ANN001
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        return grad * ctx.scale, None


class _RowMean(torch.autograd.Function):
    """Identity forward; backward gives every row ``-alpha`` times the mean gradient of the rows."""

    @staticmethod
    def forward(ctx, x, alpha):  # noqa: ANN001
        ctx.alpha = alpha
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        return (-ctx.alpha * grad.mean(dim=0, keepdim=True)).expand_as(grad), None


def no_reversal(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Identity forward and identity backward: forgets to reverse."""
    return x.clone()


def zero_gradient(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Identity forward, zero gradient backward."""
    return _Scaled.apply(x, 0.0)


def detached(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Identity forward with the graph cut."""
    return x.detach()


def half_reversed(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Reverses the gradient of the first half of the latent features only; the rest pass as is."""
    k = x.shape[-1] // 2
    scale = torch.ones(x.shape[-1], dtype=x.dtype)
    scale[:k] = -alpha
    return _Scaled.apply(x, scale)


def rows_coupled(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Couples the rows of its input: every cell gets ``-alpha`` times the mean gradient."""
    return _RowMean.apply(x, alpha)


class EveryOtherCall(nn.Module):
    """Reverses on every other call only (a counter that flips); identity backward otherwise."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return _Scaled.apply(x, -self.alpha if self.calls % 2 else 1.0)


class BrokenSetter(GradientReversal):
    """The reference layer with a ``set_alpha`` that forgets to store the new alpha."""

    def set_alpha(self, alpha: float) -> None:
        self._requested = float(alpha)  # stored, never used


BROKEN_FUNCTIONS = {"no_reversal": no_reversal, "zero_gradient": zero_gradient,
                    "detached": detached, "half_reversed": half_reversed,
                    "rows_coupled": rows_coupled}
#: Every broken layer the verdict must fail (spec objects for ``load_layer``).
BROKEN_LAYERS = {**BROKEN_FUNCTIONS, "every_other_call": EveryOtherCall,
                 "broken_setter": BrokenSetter}


def train_user_model(seed: int, *, reverse: bool = True, steps: int = 1200,
                     effect_size: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """A user's own autoencoder with an adversary, written in plain PyTorch, one seed.

    Per-class latent shift before decoding, linear adversary with its own Adam at 10x lr,
    alpha ramped 2/(1+exp(-10p))-1 through ``grl_props.GradientReversal``. Returns latents of
    fresh cells (not used in training) and their labels.
    """
    data = simulate(SimulationConfig(effect_size=effect_size), seed)
    gen = torch.Generator().manual_seed(10_000 + seed)
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    n_classes, latent = 3, 4
    encoder = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, latent))
    decoder = nn.Sequential(nn.Linear(latent, 32), nn.ReLU(), nn.Linear(32, 32))
    shift = nn.Parameter(torch.zeros(n_classes, latent))
    adversary = nn.Linear(latent, n_classes)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters(), shift], lr=3e-3)
    opt_adv = torch.optim.Adam(adversary.parameters(), lr=3e-2)
    x, y = data.x, data.y
    grl = GradientReversal(alpha=0.0)
    for step in range(steps):
        grl.set_alpha(2.0 / (1.0 + np.exp(-10.0 * step / steps)) - 1.0)
        z = encoder(x)
        recon = ((decoder(z + shift[y]) - x) ** 2).mean()
        z_adv = grl(z) if reverse else z
        loss = recon + nn.functional.cross_entropy(adversary(z_adv), y)
        opt.zero_grad()
        opt_adv.zero_grad()
        loss.backward()
        opt.step()
        opt_adv.step()
    with torch.no_grad():
        return encoder(data.x_probe).numpy(), data.y_probe.numpy()


def shifted_latents(seed: int, shift: float, n: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian latents whose two minority classes are shifted by ``shift`` along their own axis
    (classes 0.75 / 0.15 / 0.10, as in the reference experiment)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.75, 0.15, 0.10])
    z = rng.standard_normal((n, 4))
    z[y == 1, 0] += shift
    z[y == 2, 1] += shift
    return z, y

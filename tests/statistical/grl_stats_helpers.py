"""Helpers of the statistical tests: broken layers and a small user-style model (fixed seeds).

A uniquely named module (not ``conftest``) so that importing it cannot clash with another
directory's conftest under ``pytest -n auto``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from grl_props import GradientReversal
from grl_props.experiment import SimulationConfig, simulate


class _ZeroGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):  # noqa: ANN001
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        return grad * 0.0, None


def no_reversal(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Identity forward and identity backward: forgets to reverse."""
    return x.clone()


def zero_gradient(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Identity forward, zero gradient backward."""
    return _ZeroGradient.apply(x, alpha)


def detached(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Identity forward with the graph cut."""
    return x.detach()


BROKEN_LAYERS = {"no_reversal": no_reversal, "zero_gradient": zero_gradient,
                 "detached": detached}


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
    for step in range(steps):
        alpha = 2.0 / (1.0 + np.exp(-10.0 * step / steps)) - 1.0
        z = encoder(x)
        recon = ((decoder(z + shift[y]) - x) ** 2).mean()
        z_adv = GradientReversal(alpha=float(alpha))(z) if reverse else z
        loss = recon + nn.functional.cross_entropy(adversary(z_adv), y)
        opt.zero_grad()
        opt_adv.zero_grad()
        loss.backward()
        opt.step()
        opt_adv.step()
    with torch.no_grad():
        return encoder(data.x_probe).numpy(), data.y_probe.numpy()

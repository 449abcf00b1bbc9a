"""Simulated single-cell-like data whose class lives in a known latent direction.

Generative process (one seed = one independent data set)::

    z      ~ N(0, I_k)                      basal latent, k = ``true_latent_dim``
    y      ~ Categorical(class_probs)        imbalanced by default (0.75, 0.15, 0.10)
    delta  : class effect, delta_0 = 0, |delta_c| = effect_size for c > 0
    x      = tanh((z + delta_y) W1) W2 + noise * eps,   eps ~ N(0, I_d)

The map (W1, W2, delta) is drawn once per seed and shared by the training cells and the fresh
probe cells, so a probe sees new cells from the same world. Every draw comes from a
``torch.Generator`` seeded explicitly; nothing reads global random state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SimulationConfig", "SimulatedData", "simulate", "simulate_batch"]


@dataclass(frozen=True)
class SimulationConfig:
    """Size and shape of one simulated data set (frozen: a config never changes once made)."""

    n_cells: int = 512
    n_probe_cells: int = 1024
    observed_dim: int = 32
    true_latent_dim: int = 4
    hidden_dim: int = 32
    class_probs: tuple[float, ...] = (0.75, 0.15, 0.10)
    effect_size: float = 3.0
    noise: float = 0.1

    def __post_init__(self) -> None:
        if abs(sum(self.class_probs) - 1.0) > 1e-6 or min(self.class_probs) <= 0:
            raise ValueError(f"class_probs must be positive and sum to 1, got {self.class_probs}")
        if self.effect_size < 0:
            raise ValueError(f"effect_size must be >= 0, got {self.effect_size}")

    @property
    def n_classes(self) -> int:
        return len(self.class_probs)


@dataclass(frozen=True)
class SimulatedData:
    """Training cells (``x``, ``y``) and fresh probe cells (``x_probe``, ``y_probe``).

    Tensors carry a leading seed axis when produced by :func:`simulate_batch`.
    """

    x: Tensor
    y: Tensor
    x_probe: Tensor
    y_probe: Tensor


def _draw(config: SimulationConfig, n: int, w1: Tensor, w2: Tensor, delta: Tensor,
          gen: torch.Generator) -> tuple[Tensor, Tensor]:
    probs = torch.tensor(config.class_probs, dtype=torch.float64)
    y = torch.multinomial(probs, n, replacement=True, generator=gen)
    z = torch.randn(n, config.true_latent_dim, generator=gen)
    x = torch.tanh((z + delta[y]) @ w1) @ w2
    x = x + config.noise * torch.randn(x.shape, generator=gen)
    return x, y


def simulate(config: SimulationConfig, seed: int) -> SimulatedData:
    """One data set, a pure function of ``(config, seed)``."""
    gen = torch.Generator().manual_seed(int(seed))
    k, h, d = config.true_latent_dim, config.hidden_dim, config.observed_dim
    w1 = torch.randn(k, h, generator=gen) / k**0.5
    w2 = torch.randn(h, d, generator=gen) / h**0.5
    directions = torch.randn(config.n_classes, k, generator=gen)
    directions = directions / directions.norm(dim=1, keepdim=True)
    delta = config.effect_size * directions
    delta[0] = 0.0
    x, y = _draw(config, config.n_cells, w1, w2, delta, gen)
    x_probe, y_probe = _draw(config, config.n_probe_cells, w1, w2, delta, gen)
    return SimulatedData(x, y, x_probe, y_probe)


def simulate_batch(config: SimulationConfig, seeds: list[int]) -> SimulatedData:
    """:func:`simulate` for every seed, stacked along a leading seed axis."""
    parts = [simulate(config, s) for s in seeds]
    return SimulatedData(*(torch.stack([getattr(p, f) for p in parts])
                           for f in ("x", "y", "x_probe", "y_probe")))

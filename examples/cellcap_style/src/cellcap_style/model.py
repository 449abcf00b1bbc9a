"""A CellCap-style model: an autoencoder whose latent must not carry the perturbation label.

The decoder sees ``z + shift[label]`` (CellCap's "latent space algebra"), so the latent ``z``
need not carry the label to reconstruct the cells; the adversary (:class:`AdvNet`) tries to read
the label from ``z`` through :class:`GradientReverseModule`, which pushes the encoder to remove
it. With ``reverse=False`` the adversary's gradient reaches the encoder unreversed: the control.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cellcap_style.nn.advnet import AdvNet
from cellcap_style.nn.gradient_reversal import GradientReverseModule

__all__ = ["CellCapStyleModel", "fit"]


class CellCapStyleModel(nn.Module):
    """Encoder → latent ``z``; decoder of ``z + shift[label]``; adversary on ``GRL(z)``."""

    def __init__(self, n_genes: int, n_labels: int, *, latent_dim: int = 4,
                 hidden_dim: int = 32, alpha: float = 1.0, reverse: bool = True) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_genes, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, n_genes))
        self.label_shift = nn.Parameter(torch.zeros(n_labels, latent_dim))
        self.reversal: nn.Module = GradientReverseModule(alpha) if reverse else nn.Identity()
        self.adversary = AdvNet(latent_dim, n_labels, hidden_dim)
        self.n_labels = n_labels

    def embed(self, x: Tensor) -> Tensor:
        """The basal latent ``z`` of cells ``x``."""
        return self.encoder(x)

    def loss(self, x: Tensor, labels: Tensor) -> Tensor:
        """Reconstruction (mean squared error) plus the adversary's binary cross-entropy.

        The cross-entropy is summed over labels (as CellCap sums it) and averaged over cells.
        """
        z = self.encoder(x)
        reconstruction = F.mse_loss(self.decoder(z + self.label_shift[labels]), x)
        predicted = self.adversary(self.reversal(z))
        target = F.one_hot(labels, self.n_labels).to(predicted.dtype)
        adversary = F.binary_cross_entropy(predicted, target, reduction="none").sum(1).mean()
        return reconstruction + adversary


def fit(model: CellCapStyleModel, x: Tensor, labels: Tensor, *, steps: int = 400,
        lr: float = 3e-3, adversary_lr: float = 3e-2) -> CellCapStyleModel:
    """Full-batch Adam on :meth:`CellCapStyleModel.loss`; returns the model in eval mode.

    The adversary learns faster (``adversary_lr``) so that the reversed gradient the encoder
    gets comes from an adversary that currently reads the label well.
    """
    adversary = list(model.adversary.parameters())
    ids = {id(p) for p in adversary}
    optimizer = torch.optim.Adam([
        {"params": [p for p in model.parameters() if id(p) not in ids], "lr": lr},
        {"params": adversary, "lr": adversary_lr},
    ])
    model.train()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        model.loss(x, labels).backward()
        optimizer.step()
    return model.eval()

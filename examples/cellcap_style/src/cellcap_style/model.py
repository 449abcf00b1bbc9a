"""A CellCap-style model: an autoencoder whose latent must not carry the perturbation label.

The decoder sees ``z + shift[label]`` (CellCap's "latent space algebra"), so the latent ``z``
need not carry the label to reconstruct the cells; the adversary (:class:`AdvNet`) tries to read
the label from ``z`` through :class:`GradientReverseModule`, which pushes the encoder to remove
it. With ``reverse=False`` the adversary's gradient reaches the encoder unreversed: the control.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cellcap_style.nn.advnet import AdvNet
from cellcap_style.nn.gradient_reversal import GradientReverseModule

__all__ = ["CellCapStyleModel", "fit"]


class CellCapStyleModel(nn.Module):
    """Encoder → latent ``z``; decoder of ``z + shift[label]``; adversary on ``GRL(z)``.

    The adversary is CellCap's :class:`AdvNet` shape without BatchNorm1d and dropout by default:
    grl-props measured that with them the adversary sits near its chance loss while a fresh probe
    still reads the label (its docs/statistical.md, "Worked example").
    """

    def __init__(self, n_genes: int, n_labels: int, *, latent_dim: int = 4,
                 hidden_dim: int = 32, alpha: float = 0.0, reverse: bool = True,
                 adversary_batch_norm: bool = False, adversary_dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_genes, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, n_genes))
        self.label_shift = nn.Parameter(torch.zeros(n_labels, latent_dim))
        self.reversal: nn.Module = GradientReverseModule(alpha) if reverse else nn.Identity()
        self.adversary = AdvNet(latent_dim, n_labels, hidden_dim, drop_rate=adversary_dropout,
                                batch_norm=adversary_batch_norm)
        self.n_labels = n_labels

    def embed(self, x: Tensor) -> Tensor:
        """The basal latent ``z`` of cells ``x``."""
        return self.encoder(x)

    def set_alpha(self, alpha: float) -> None:
        """Set the reversal strength for the steps that follow (no-op without reversal)."""
        if isinstance(self.reversal, GradientReverseModule):
            with torch.no_grad():
                self.reversal.alpha.fill_(alpha)

    def adversary_loss(self, z: Tensor, labels: Tensor) -> Tensor:
        """The adversary's binary cross-entropy against the one-hot label, per element."""
        target = F.one_hot(labels, self.n_labels).to(z.dtype)
        return F.binary_cross_entropy(self.adversary(z), target)

    def loss(self, x: Tensor, labels: Tensor) -> Tensor:
        """Reconstruction (mean squared error) plus the adversary's loss through the layer."""
        z = self.encoder(x)
        reconstruction = F.mse_loss(self.decoder(z + self.label_shift[labels]), x)
        return reconstruction + self.adversary_loss(self.reversal(z), labels)


def fit(model: CellCapStyleModel, x: Tensor, labels: Tensor, *, steps: int = 2500,
        lr: float = 1e-3, adversary_lr: float = 3e-3, adversary_steps: int = 4,
        alpha_max: float = 2.0) -> CellCapStyleModel:
    """Full-batch training with grl-props' measured recipe for an MLP adversary; returns the
    model in eval mode.

    Two Adam optimisers; before every step the adversary takes ``adversary_steps`` extra steps
    on the current (detached) latents, so the reversed gradient comes from an adversary that
    reads the label as well as it can; alpha follows the DANN ramp from 0 to ``alpha_max``,
    set through the layer's own alpha.
    """
    adversary = list(model.adversary.parameters())
    ids = {id(p) for p in adversary}
    main = torch.optim.Adam([p for p in model.parameters() if id(p) not in ids], lr=lr)
    opt_adversary = torch.optim.Adam(adversary, lr=adversary_lr)
    model.train()
    for step in range(steps):
        model.set_alpha(alpha_max * (2.0 / (1.0 + math.exp(-10.0 * step / steps)) - 1.0))
        z = model.embed(x).detach()
        for _ in range(adversary_steps):
            opt_adversary.zero_grad(set_to_none=True)
            model.adversary_loss(z, labels).backward()
            opt_adversary.step()
        main.zero_grad(set_to_none=True)
        opt_adversary.zero_grad(set_to_none=True)
        model.loss(x, labels).backward()
        main.step()
        opt_adversary.step()
    return model.eval()

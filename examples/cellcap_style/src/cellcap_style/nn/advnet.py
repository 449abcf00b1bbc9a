"""The adversary, shaped like CellCap's ``AdvNet``: it predicts the label from the latent."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AdvNet(nn.Module):
    """(Linear → BatchNorm1d → ReLU → Dropout) × 2 → Linear → sigmoid: per-class probabilities.

    BatchNorm1d makes a batch of one cell in training mode raise, as in CellCap.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 32,
                 drop_rate: float = 0.1) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(),
            nn.Dropout(p=drop_rate),
            nn.Linear(hidden_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(),
            nn.Dropout(p=drop_rate),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.network(z))

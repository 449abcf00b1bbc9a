"""The adversary, shaped like CellCap's ``AdvNet``: it predicts the label from the latent."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AdvNet(nn.Module):
    """(Linear → [BatchNorm1d] → ReLU → [Dropout]) × 2 → Linear → sigmoid: per-class
    probabilities.

    With ``batch_norm=True`` and ``drop_rate > 0`` it is CellCap's shape (BatchNorm1d then makes
    a batch of one cell in training mode raise, as in CellCap).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 32,
                 drop_rate: float = 0.1, batch_norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(2):
            layers.append(nn.Linear(width, hidden_dim))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU())
            if drop_rate:
                layers.append(nn.Dropout(p=drop_rate))
            width = hidden_dim
        self.network = nn.Sequential(*layers, nn.Linear(width, out_dim))

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.network(z))

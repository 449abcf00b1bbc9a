"""Batched encoder, decoder and adversary: one set of stacked weights per seed.

Every weight has a leading seed axis ``S`` and every layer is one ``torch.baddbmm``, so the ``S``
independent models of an arm run as one model. Seeds never mix: each seed's loss depends only on
its own slice of every weight, and Adam's update is elementwise, so training the stack equals
training each seed alone (``training.train_arm_per_seed`` checks the same math one seed at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ModelConfig", "BatchedLinear", "ReferenceModel", "stream_seed"]


def stream_seed(seed: int, stream: int) -> int:
    """An independent 63-bit seed for one random stream of one experiment seed."""
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


@dataclass(frozen=True)
class ModelConfig:
    """Widths of the reference model; ``latent_dim`` is the width the layer under test sees."""

    hidden_dim: int = 32
    latent_dim: int = 4


class BatchedLinear(nn.Module):
    """``S`` independent linear maps ``(S, n, i) -> (S, n, o)`` as one ``baddbmm``."""

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)  # (S, i, o)
        self.bias = nn.Parameter(bias)      # (S, 1, o)

    @classmethod
    def init(cls, gens: list[torch.Generator], n_in: int, n_out: int) -> BatchedLinear:
        """PyTorch's default ``nn.Linear`` init, drawn per seed from that seed's generator."""
        bound = 1.0 / n_in**0.5
        w = torch.stack([(torch.rand(n_in, n_out, generator=g) * 2 - 1) * bound for g in gens])
        b = torch.stack([(torch.rand(1, n_out, generator=g) * 2 - 1) * bound for g in gens])
        return cls(w, b)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class ReferenceModel(nn.Module):
    """Autoencoder with a per-class latent shift before decoding, plus a linear adversary.

    ``encode(x)`` gives the latent ``z`` (S, n, latent_dim). The decoder reconstructs ``x`` from
    ``z + shift[y]``: the learned per-class shift lets reconstruction succeed even when ``z``
    carries no label (the CellCap "latent space algebra"), so removing the label costs nothing.
    The adversary is linear, ``z -> class logits``.
    """

    def __init__(self, seeds: list[int], n_in: int, n_classes: int, config: ModelConfig) -> None:
        super().__init__()
        gens = [torch.Generator().manual_seed(stream_seed(s, 1)) for s in seeds]
        h, k = config.hidden_dim, config.latent_dim
        self.enc1 = BatchedLinear.init(gens, n_in, h)
        self.enc2 = BatchedLinear.init(gens, h, k)
        self.dec1 = BatchedLinear.init(gens, k, h)
        self.dec2 = BatchedLinear.init(gens, h, n_in)
        self.adversary = BatchedLinear.init(gens, k, n_classes)
        self.shift = nn.Parameter(torch.zeros(len(seeds), n_classes, k))

    def encode(self, x: Tensor) -> Tensor:
        return self.enc2(torch.relu(self.enc1(x)))

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        shifted = z + torch.gather(self.shift, 1, y.unsqueeze(-1).expand(*y.shape, z.shape[-1]))
        return self.dec2(torch.relu(self.dec1(shifted)))

    def main_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("adversary")]

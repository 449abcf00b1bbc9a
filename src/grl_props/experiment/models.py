"""Batched encoder, decoder and adversary: one set of stacked weights per seed.

Every weight has a leading seed axis ``S`` and every linear layer is one ``torch.baddbmm``, so
the ``S`` independent models of an arm run as one model. Seeds never mix: each seed's loss
depends only on its own slice of every weight (batch statistics and dropout masks are per seed
too), and Adam's update is elementwise, so training the stack equals training each seed alone
(``training.train_arm_per_seed`` checks the same math one seed at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from grl_props.families import ADVERSARY_FAMILIES, AdversaryFamily
from grl_props.seeding import stream_seed

__all__ = ["ADVERSARY_FAMILIES", "AdversaryConfig", "BatchedLinear", "BatchedMLP", "ModelConfig",
           "ReferenceModel"]


# Random streams of one seed (``seeding.stream_seed``) used by the models: weights, dropout masks.
_INIT_STREAM, _DROPOUT_STREAM = 1, 7


@dataclass(frozen=True)
class AdversaryConfig:
    """The adversary behind the layer under test.

    ``linear``: ``z -> class logits``. ``mlp``: CellCap's shape (``Linear -> [BatchNorm1d] ->
    ReLU -> [Dropout]``, ``depth`` times, then ``Linear``); ``batch_norm`` and ``dropout`` are
    off by default because, measured, they leave more of the label for a fresh probe
    (docs/statistical.md, "The two adversary families"). Both are trained with softmax
    cross-entropy against the label, where CellCap uses a sigmoid and binary cross-entropy
    against the one-hot label: the reference experiment keeps one loss for both families, and
    the worked example in docs/statistical.md trains CellCap's own loss.
    """

    family: AdversaryFamily = "linear"
    hidden_dim: int = 32
    depth: int = 2
    batch_norm: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.family not in ADVERSARY_FAMILIES:
            raise ValueError(f"adversary family must be one of {', '.join(ADVERSARY_FAMILIES)}, "
                             f"got {self.family!r}")
        if self.hidden_dim < 1 or self.depth < 1:
            raise ValueError(f"hidden_dim and depth must be >= 1, got {self.hidden_dim}, "
                             f"{self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


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


class BatchedMLP(nn.Module):
    """``S`` independent MLPs ``(S, n, i) -> (S, n, o)``: (Linear, [BatchNorm], ReLU, [Dropout])
    x ``depth``, Linear.

    Batch normalisation uses each seed's own batch statistics (training mode; the adversary is
    only ever used in training) with a per-seed affine map; dropout masks come from each seed's
    own generator, so a seed's adversary is the same alone or stacked.
    """

    def __init__(self, seeds: list[int], gens: list[torch.Generator], n_in: int, n_out: int,
                 config: AdversaryConfig) -> None:
        super().__init__()
        widths = [n_in] + [config.hidden_dim] * config.depth
        self.hidden = nn.ModuleList(BatchedLinear.init(gens, a, b)
                                    for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.out = BatchedLinear.init(gens, widths[-1], n_out)
        s, h = len(seeds), config.hidden_dim
        self.scale = nn.ParameterList(nn.Parameter(torch.ones(s, 1, h))
                                      for _ in range(config.depth if config.batch_norm else 0))
        self.shift = nn.ParameterList(nn.Parameter(torch.zeros(s, 1, h))
                                      for _ in range(config.depth if config.batch_norm else 0))
        self.dropout = config.dropout
        self.mask_gens = [torch.Generator().manual_seed(stream_seed(seed, _DROPOUT_STREAM))
                          for seed in seeds] if config.dropout > 0 else []

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.hidden):
            x = layer(x)
            if len(self.scale):
                mean = x.mean(dim=1, keepdim=True)
                var = x.var(dim=1, keepdim=True, unbiased=False)
                x = (x - mean) / torch.sqrt(var + 1e-5) * self.scale[i] + self.shift[i]
            x = torch.relu(x)
            if self.dropout > 0:
                keep = torch.stack([torch.rand(x.shape[1:], generator=g) >= self.dropout
                                    for g in self.mask_gens])
                x = x * keep / (1.0 - self.dropout)
        return self.out(x)  # type: ignore[no-any-return]


class ReferenceModel(nn.Module):
    """Autoencoder with a per-class latent shift before decoding, plus an adversary.

    ``encode(x)`` gives the latent ``z`` (S, n, latent_dim). The decoder reconstructs ``x`` from
    ``z + shift[y]``: the learned per-class shift lets reconstruction succeed even when ``z``
    carries no label (the CellCap "latent space algebra"), so removing the label costs nothing.
    The adversary (``adversary``) maps ``z`` to class logits.
    """

    def __init__(self, seeds: list[int], n_in: int, n_classes: int, config: ModelConfig,
                 adversary: AdversaryConfig | None = None) -> None:
        super().__init__()
        gens = [torch.Generator().manual_seed(stream_seed(s, _INIT_STREAM)) for s in seeds]
        h, k = config.hidden_dim, config.latent_dim
        self.enc1 = BatchedLinear.init(gens, n_in, h)
        self.enc2 = BatchedLinear.init(gens, h, k)
        self.dec1 = BatchedLinear.init(gens, k, h)
        self.dec2 = BatchedLinear.init(gens, h, n_in)
        adversary = adversary or AdversaryConfig()
        self.adversary: nn.Module
        if adversary.family == "linear":
            self.adversary = BatchedLinear.init(gens, k, n_classes)
        else:
            self.adversary = BatchedMLP(seeds, gens, k, n_classes, adversary)
        self.shift = nn.Parameter(torch.zeros(len(seeds), n_classes, k))

    def encode(self, x: Tensor) -> Tensor:
        return self.enc2(torch.relu(self.enc1(x)))  # type: ignore[no-any-return]

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        shifted = z + torch.gather(self.shift, 1, y.unsqueeze(-1).expand(*y.shape, z.shape[-1]))
        return self.dec2(torch.relu(self.dec1(shifted)))  # type: ignore[no-any-return]

    def main_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("adversary")]

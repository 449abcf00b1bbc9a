"""Training of one arm: all seeds as one batched model, or (same math) one seed at a time.

Loss per seed: mean squared reconstruction error + cross-entropy of the adversary on the latent
seen through the layer under test (the reversal arm) or directly (the control arm). Two Adam
optimisers: encoder/decoder/shift at ``lr``, the adversary at ``adversary_lr`` (faster, so the
adversary keeps up with an encoder that runs away from it), plus ``adversary_steps`` extra
adversary-only updates per step. Shuffled mini-batches of ``batch_size`` cells (each seed its
own order; ``None``: full batch), fixed step count.

The layer under test is trained the way users train it (:class:`SeedLayers`): one instance per
seed, made once, each seed's latent passed through its own instance on its own (so a layer that
mixes rows of its input cannot couple seeds), and alpha driven through the layer's own alpha path
at every step along the DANN schedule ``alpha(p) = alpha_max * (2 / (1 + exp(-10 p)) - 1)``,
``p = step / steps``. A layer with a fixed alpha is used as is, without schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from grl_props.experiment.data import SimulatedData
from grl_props.experiment.models import AdversaryConfig, ModelConfig, ReferenceModel
from grl_props.seeding import stream_seed

__all__ = ["TrainConfig", "TrainedArm", "LayerError", "MiniBatches", "SeedLayers", "alpha_schedule",
           "train_arm", "train_arm_per_seed"]

Layer = Callable[[Tensor], Tensor]
Progress = Callable[[int, int], None]


class LayerError(RuntimeError):
    """The layer under test raised, or returned something that is not a same-shape tensor."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of one arm; the defaults are the reference experiment's measured design.

    Mini-batches of 128 at encoder lr 1e-3 settle the adversarial game in more seeds than full
    batch at lr 3e-3 (docs/statistical.md, "Design history"), and make a step cheap enough for
    stacking seeds to pay (``benchmarks/stats_speed.py``).
    """

    steps: int = 2500
    #: Cells per step and seed; ``None``: every training cell (full batch).
    batch_size: int | None = 128
    lr: float = 1e-3
    adversary_lr: float = 3e-2
    alpha_max: float = 1.0
    adversary_weight: float = 1.0
    #: Extra adversary-only updates per step (on the same mini-batch, latents detached).
    adversary_steps: int = 0
    record_every: int = 10
    #: Fractions of training (0 < f < 1) at which the probe cells' latents are also recorded
    #: (``TrainedArm.checkpoints``), to follow leakage across training; the final latents are
    #: always recorded.
    checkpoints: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None (full batch), got {self.batch_size}")
        if self.adversary_steps < 0:
            raise ValueError(f"adversary_steps must be >= 0, got {self.adversary_steps}")
        if any(not 0.0 < f < 1.0 for f in self.checkpoints):
            raise ValueError(f"checkpoints must be fractions in (0, 1), got {self.checkpoints}")

    def checkpoint_steps(self) -> tuple[int, ...]:
        """The steps after which :attr:`checkpoints` record latents: distinct, increasing, and
        before the last step (which is always recorded); fractions that fall together or on the
        last step are dropped (a training of a few steps may have none)."""
        steps = {max(1, round(f * self.steps)) for f in self.checkpoints}
        return tuple(sorted(s for s in steps if s < self.steps))


@dataclass(frozen=True)
class TrainedArm:
    """Latents of the fresh probe cells after training, and the training curves.

    ``latents``: (S, n_probe, latent_dim). ``curves``: name -> (S, records) tensor of per-seed
    reconstruction loss and adversary cross-entropy every ``record_every`` steps.
    ``checkpoints``: step -> (S, n_probe, latent_dim) latents after that many steps
    (``TrainConfig.checkpoints``).
    """

    latents: Tensor
    curves: dict[str, Tensor]
    checkpoints: dict[int, Tensor] = field(default_factory=dict)


def alpha_schedule(step: int, steps: int, alpha_max: float) -> float:
    """DANN ramp from 0 to ``alpha_max``."""
    p = step / max(steps, 1)
    return alpha_max * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


@dataclass(frozen=True)
class SeedLayers:
    """How training gets the layer under test: ``make(alpha)`` builds one instance at ``alpha``
    (called once per seed, at the schedule's first alpha); ``set_alpha(layer, alpha)`` moves an
    instance to ``alpha`` through the layer's own alpha path and returns the instance to use
    from then on (the same one, unless the layer has no alpha path and is rebuilt);
    ``set_alpha=None``: a fixed alpha, no schedule. ``scale`` multiplies the schedule (the
    layer's own default alpha)."""

    make: Callable[[float], Layer]
    set_alpha: Callable[[Layer, float], Layer] | None = None
    scale: float = 1.0


def _call_layer(layer: Layer, z: Tensor) -> Tensor:
    try:
        out = layer(z)
    except Exception as exc:
        raise LayerError(f"raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, Tensor) or out.shape != z.shape or out.dtype != z.dtype:
        got = (f"shape {tuple(out.shape)}, dtype {out.dtype}" if isinstance(out, Tensor)
               else f"a {type(out).__name__}")
        raise LayerError(f"returned {got} for an input of shape {tuple(z.shape)}, "
                         f"dtype {z.dtype}")
    return out


# Random stream of one seed (``seeding.stream_seed``) that orders the mini-batches.
_BATCH_STREAM = 6


class MiniBatches:
    """Per-seed shuffled mini-batches: every epoch, each seed draws its own permutation.

    Each seed's order comes from its own generator, so seed ``s`` sees the same batches whether
    it trains alone or stacked with others. An epoch is ``n // batch_size`` steps; the
    remainder of a permutation is dropped.
    """

    def __init__(self, seeds: list[int], n: int, batch_size: int) -> None:
        self.gens = [torch.Generator().manual_seed(stream_seed(s, _BATCH_STREAM)) for s in seeds]
        self.n, self.size = n, batch_size
        self.per_epoch = max(n // batch_size, 1)
        self.order = torch.empty(0)

    def indices(self, step: int) -> Tensor:
        """(S, batch_size) cell indices of ``step``."""
        k = step % self.per_epoch
        if k == 0:
            self.order = torch.stack([torch.randperm(self.n, generator=g) for g in self.gens])
        return self.order[:, k * self.size:(k + 1) * self.size]


def _through_layers(layers: list[Layer], z: Tensor) -> Tensor:
    """Each seed's slice of ``z`` (S, n, k) through that seed's own instance."""
    return torch.stack([_call_layer(layer, z_seed) for layer, z_seed in zip(layers, z, strict=True)])


def train_arm(data: SimulatedData, seeds: list[int], *, model_config: ModelConfig,
              train_config: TrainConfig, layer: SeedLayers | None,
              adversary: AdversaryConfig | None = None,
              progress: Progress | None = None) -> TrainedArm:
    """Train every seed of one arm as one batched model; ``layer=None`` is the control arm.

    ``data`` tensors carry the seed axis (``simulate_batch``). Raises :class:`LayerError` when the
    layer under test raises (when built, when alpha is set, in forward or in backward) or returns
    a tensor of the wrong shape.
    """
    x_all, y_all = data.x, data.y
    n, d = x_all.shape[1], x_all.shape[2]
    batches = None
    if train_config.batch_size is not None and train_config.batch_size < n:
        batches = MiniBatches(seeds, n, train_config.batch_size)
    x, y = x_all, y_all  # full batch, unless mini-batches replace them at every step
    n_classes = int(max(data.y.max(), data.y_probe.max())) + 1
    model = ReferenceModel(seeds, d, n_classes, model_config, adversary)
    opt_main = torch.optim.Adam(model.main_parameters(), lr=train_config.lr)
    opt_adv = torch.optim.Adam(model.adversary.parameters(), lr=train_config.adversary_lr)
    steps = train_config.steps
    alpha_max = train_config.alpha_max * (layer.scale if layer is not None else 1.0)
    instances = [] if layer is None else _start_layers(layer, len(seeds),
                                                       alpha_schedule(0, steps, alpha_max))
    records: dict[str, list[Tensor]] = {"reconstruction": [], "adversary": []}
    checkpoint_steps = set(train_config.checkpoint_steps())
    checkpoints: dict[int, Tensor] = {}
    for step in range(steps):
        if batches is not None:
            idx = batches.indices(step)
            x = torch.gather(x_all, 1, idx.unsqueeze(-1).expand(-1, -1, d))
            y = torch.gather(y_all, 1, idx)
        z = model.encode(x)
        for _ in range(train_config.adversary_steps):
            extra = F.cross_entropy(model.adversary(z.detach()).transpose(1, 2), y)
            opt_adv.zero_grad(set_to_none=True)
            (extra * len(seeds)).backward()  # mean over seeds x cells; x S: per-seed mean
            opt_adv.step()
        if layer is None:
            z_adv = z
        else:
            if layer.set_alpha is not None and step > 0:
                instances = _set_alpha(layer, instances, alpha_schedule(step, steps, alpha_max))
            z_adv = _through_layers(instances, z)
        recon = ((model.decode(z, y) - x) ** 2).mean(dim=(1, 2))                      # (S,)
        logits = model.adversary(z_adv)
        ce = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(dim=1)  # (S,)
        loss = (recon + train_config.adversary_weight * ce).sum()  # sum: seeds stay independent
        opt_main.zero_grad(set_to_none=True)
        opt_adv.zero_grad(set_to_none=True)
        try:
            loss.backward()
        except Exception as exc:
            raise LayerError(f"raised {type(exc).__name__} in backward: {exc}") from exc
        opt_main.step()
        opt_adv.step()
        if step % train_config.record_every == 0 or step == steps - 1:
            records["reconstruction"].append(recon.detach())
            records["adversary"].append(ce.detach())
        if step + 1 in checkpoint_steps:
            with torch.no_grad():
                checkpoints[step + 1] = model.encode(data.x_probe)
        if progress is not None:
            progress(step + 1, steps)
    with torch.no_grad():
        latents = model.encode(data.x_probe)
    return TrainedArm(latents, {k: torch.stack(v, dim=1) for k, v in records.items()},
                      checkpoints)


def _start_layers(layer: SeedLayers, n: int, alpha: float) -> list[Layer]:
    try:
        return [layer.make(alpha) for _ in range(n)]
    except Exception as exc:
        raise LayerError(f"raised {type(exc).__name__} when built: {exc}") from exc


def _set_alpha(layer: SeedLayers, instances: list[Layer], alpha: float) -> list[Layer]:
    assert layer.set_alpha is not None
    try:
        return [layer.set_alpha(instance, alpha) for instance in instances]
    except Exception as exc:
        raise LayerError(f"raised {type(exc).__name__} when its alpha was set: {exc}") from exc


def train_arm_per_seed(data: SimulatedData, seeds: list[int], **kwargs) -> TrainedArm:
    """The same training, one seed at a time in a Python loop (for the speed benchmark)."""
    arms = [
        train_arm(SimulatedData(data.x[i:i + 1], data.y[i:i + 1], data.x_probe[i:i + 1],
                                data.y_probe[i:i + 1]), [s], **kwargs)
        for i, s in enumerate(seeds)
    ]
    return TrainedArm(torch.cat([a.latents for a in arms]),
                      {k: torch.cat([a.curves[k] for a in arms]) for k in arms[0].curves},
                      {k: torch.cat([a.checkpoints[k] for a in arms]) for k in arms[0].checkpoints})

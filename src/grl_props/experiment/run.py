"""The reference experiment: arms, probes and baselines for a set of seeds.

Per seed ``s`` (the seed fixes data, split, initialisation, probe and baselines):

* **reversal** — the reference model trained with the layer under test between encoder and
  adversary;
* **control** — the same model, same seed, trained without the layer (the adversary's gradient
  reaches the encoder unreversed, so the label is pulled into the latent);
* **random** — Gaussian latents of the same shape; **shuffled** — the reversal latents with rows
  permuted against the labels.

All arms of a seed are scored by the same probe on the same stratified split of fresh probe
cells. Each trained arm runs all seeds as one batched model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from grl_props.experiment.data import SimulationConfig, simulate_batch
from grl_props.experiment.models import ModelConfig, stream_seed
from grl_props.experiment.training import TrainConfig, train_arm
from grl_props.probes import ProbeConfig, ProbeScore, score_probe, split_indices

__all__ = ["ExperimentConfig", "ExperimentRun", "SeedScores", "run_experiment", "score_seed",
           "seed_set", "ARMS"]

Layer = Callable[[Tensor], Tensor]
#: Arms scored per seed, in report order.
ARMS = ("reversal", "control", "random", "shuffled")

# Random streams of one seed (see ``stream_seed``): 1 = model init (models.py).
_SPLIT_STREAM, _RANDOM_STREAM, _SHUFFLE_STREAM, _PROBE_STREAM = 2, 3, 4, 5


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines the reference experiment; defaults are the measured design."""

    simulation: SimulationConfig = field(default_factory=lambda: SimulationConfig(effect_size=6.0))
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    secondary_probe: ProbeConfig | None = field(default_factory=lambda: ProbeConfig(name="mlp"))
    #: torch intra-op threads while training. 1: the matrices are tiny (n=512, width 32), a
    #: second thread gains little, and spinning OpenMP threads slow down many-fold when another
    #: process holds a core (measured: 38 s instead of 4.4 s). None: leave torch's setting.
    threads: int | None = 1


@dataclass(frozen=True)
class SeedScores:
    """Primary (and secondary) probe scores of every arm for one seed; absent arms are omitted."""

    seed: int
    primary: dict[str, ProbeScore]
    secondary: dict[str, ProbeScore]

    def leakage(self, arm: str = "reversal", secondary: bool = False) -> float:
        """Probe macro-F1 on ``arm`` minus on random latents (same seed, split and probe)."""
        scores = self.secondary if secondary else self.primary
        return scores[arm].macro_f1 - scores["random"].macro_f1


@dataclass(frozen=True)
class ExperimentRun:
    """Scores per seed, plus what the report draws (probe latents, labels, training curves)."""

    seeds: tuple[int, ...]
    scores: tuple[SeedScores, ...]
    latents: dict[str, np.ndarray] = field(repr=False)   # arm -> (S, n_probe, latent_dim)
    labels: np.ndarray = field(repr=False)               # (S, n_probe)
    curves: dict[str, dict[str, np.ndarray]] = field(repr=False)  # arm -> name -> (S, records)


def seed_set(seed: int, n_seeds: int) -> list[int]:
    """Seed set number ``seed``: ``n_seeds`` consecutive seeds, disjoint from every other set."""
    return list(range(seed * n_seeds, (seed + 1) * n_seeds))


def score_seed(seed: int, latents: dict[str, np.ndarray], labels: np.ndarray,
               probe: ProbeConfig, secondary: ProbeConfig | None = None) -> SeedScores:
    """Score every arm of one seed, adding the random and shuffled baselines.

    ``latents`` maps arm name -> (n, d) latents of the same n cells as ``labels``; it must hold
    ``"reversal"``. The random baseline is Gaussian with the reversal latents' shape, the shuffled
    one the reversal latents with rows permuted. One split and one probe seed serve every arm.
    The secondary probe (reported, not judged) scores only the reversal and random arms.
    """
    labels = np.asarray(labels).astype(np.int64)
    rev = np.asarray(latents["reversal"], dtype=np.float64)
    rng_random = np.random.default_rng(stream_seed(seed, _RANDOM_STREAM))
    rng_shuffle = np.random.default_rng(stream_seed(seed, _SHUFFLE_STREAM))
    arms = {arm: np.asarray(z, dtype=np.float64) for arm, z in latents.items()}
    arms["random"] = rng_random.standard_normal(rev.shape)
    arms["shuffled"] = rev[rng_shuffle.permutation(len(rev))]
    split = split_indices(labels, probe.test_fraction, stream_seed(seed, _SPLIT_STREAM) % 2**32)
    probe_seed = stream_seed(seed, _PROBE_STREAM) % 2**32
    ordered = [a for a in ARMS if a in arms] + [a for a in arms if a not in ARMS]
    primary = {a: score_probe(arms[a], labels, split, probe, probe_seed) for a in ordered}
    second = {}
    if secondary is not None:
        second = {a: score_probe(arms[a], labels, split, secondary, probe_seed)
                  for a in ("reversal", "random")}
    return SeedScores(seed, primary, second)


def run_experiment(build: Callable[[float], Layer], seeds: Sequence[int],
                   config: ExperimentConfig | None = None, *, with_control: bool = True,
                   progress: Callable[[str, int, int], None] | None = None) -> ExperimentRun:
    """Train the reversal (and control) arm for ``seeds`` and score every arm of every seed.

    ``build(alpha)`` returns the layer under test for one training step (see ``training``).
    ``progress(stage, done, total)`` is called after every training step and every scored seed.
    Raises ``training.LayerError`` when the layer raises or returns a wrong-shape result.
    """
    config = config or ExperimentConfig()
    seeds = [int(s) for s in seeds]
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        data = simulate_batch(config.simulation, seeds)
        trained = {}
        for arm, arm_build in (("reversal", build), ("control", None)):
            if arm == "control" and not with_control:
                continue
            report = (lambda d, t, arm=arm: progress(f"training {arm}", d, t)) if progress else None
            trained[arm] = train_arm(data, seeds, model_config=config.model,
                                     train_config=config.train, build=arm_build, progress=report)
    finally:
        torch.set_num_threads(previous_threads)
    labels = data.y_probe.numpy()
    latents = {arm: t.latents.numpy() for arm, t in trained.items()}
    scores = []
    for i, seed in enumerate(seeds):
        scores.append(score_seed(seed, {a: z[i] for a, z in latents.items()}, labels[i],
                                 config.probe, config.secondary_probe))
        if progress:
            progress("probing", i + 1, len(seeds))
    curves = {arm: {k: v.numpy() for k, v in t.curves.items()} for arm, t in trained.items()}
    return ExperimentRun(tuple(seeds), tuple(scores), latents, labels, curves)

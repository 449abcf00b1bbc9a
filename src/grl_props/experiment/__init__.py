"""The reference experiment: simulated data, batched models, batched training, arms.

``data`` simulates cells with a class effect in latent space; ``models`` holds stacked-weight
encoder/decoder/adversary (linear or MLP); ``training`` trains all seeds of one arm as one model,
with the layer under test as users train it; ``run`` trains the arms and scores them with the
probes (``grl_props.probes``).
"""

from __future__ import annotations

from grl_props.experiment.data import SimulatedData, SimulationConfig, simulate, simulate_batch
from grl_props.experiment.models import AdversaryConfig, ModelConfig
from grl_props.experiment.run import (
    ARMS,
    TRAIN_RECIPES,
    ExperimentConfig,
    ExperimentRun,
    run_experiment,
    train_control,
)
from grl_props.experiment.training import (
    LayerError,
    SeedLayers,
    TrainConfig,
    TrainedArm,
    alpha_schedule,
    train_arm,
)
from grl_props.families import ADVERSARY_FAMILIES, DEFAULT_ADVERSARY
from grl_props.seeding import seed_set, stream_seed

__all__ = [
    "ADVERSARY_FAMILIES", "ARMS", "DEFAULT_ADVERSARY", "AdversaryConfig", "ExperimentConfig", "ExperimentRun",
    "LayerError", "ModelConfig", "SeedLayers", "SimulatedData", "SimulationConfig",
    "TRAIN_RECIPES", "TrainConfig", "TrainedArm", "alpha_schedule", "run_experiment", "seed_set",
    "simulate", "simulate_batch", "stream_seed", "train_arm", "train_control",
]

"""The reference experiment: simulated data, batched models, batched training, arms.

``data`` simulates cells with a class effect in latent space; ``models`` holds stacked-weight
encoder/decoder/adversary; ``training`` trains all seeds of one arm as one model; ``run`` trains
the arms, adds the baselines and scores everything with the probes.
"""

from __future__ import annotations

from grl_props.experiment.data import SimulatedData, SimulationConfig, simulate, simulate_batch
from grl_props.experiment.models import ModelConfig, stream_seed
from grl_props.experiment.run import (
    ARMS,
    ExperimentConfig,
    ExperimentRun,
    SeedScores,
    run_experiment,
    score_seed,
    seed_set,
)
from grl_props.experiment.training import LayerError, TrainConfig, alpha_schedule, train_arm

__all__ = [
    "ARMS", "ExperimentConfig", "ExperimentRun", "LayerError", "ModelConfig", "SeedScores",
    "SimulatedData", "SimulationConfig", "TrainConfig", "alpha_schedule", "run_experiment",
    "score_seed", "seed_set", "simulate", "simulate_batch", "stream_seed", "train_arm",
]

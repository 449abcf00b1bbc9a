"""Batched training: the seeds of a stack never mix, mini-batches included."""

from __future__ import annotations

import pytest
import torch

from grl_props import gradient_reversal
from grl_props.experiment import ExperimentConfig, TrainConfig, simulate_batch, train_arm
from grl_props.experiment.training import _MiniBatches, train_arm_per_seed

CONFIG = ExperimentConfig()


def _build(alpha: float):
    return lambda z: gradient_reversal(z, alpha)


@pytest.mark.parametrize("batch_size", [None, 64])
def test_stacked_seeds_train_as_if_alone(batch_size):
    seeds = [3, 11, 40]
    data = simulate_batch(CONFIG.simulation, seeds)
    train = TrainConfig(steps=30, batch_size=batch_size)
    kwargs = dict(model_config=CONFIG.model, train_config=train, build=_build)
    stacked = train_arm(data, seeds, **kwargs)
    alone = train_arm_per_seed(data, seeds, **kwargs)
    torch.testing.assert_close(stacked.latents, alone.latents)
    # Same seeds in another order and company: seed 11 still trains the same.
    other = [11, 7]
    again = train_arm(simulate_batch(CONFIG.simulation, other), other, **kwargs)
    torch.testing.assert_close(again.latents[0], stacked.latents[1])


def test_mini_batches_are_a_fresh_permutation_per_seed_and_epoch():
    batches = _MiniBatches([0, 1], n=512, batch_size=128)
    first_epoch = torch.cat([batches.indices(step) for step in range(4)], dim=1)  # (2, 512)
    second_epoch = torch.cat([batches.indices(step) for step in range(4, 8)], dim=1)
    for epoch in (first_epoch, second_epoch):
        assert all(sorted(row.tolist()) == list(range(512)) for row in epoch)
    assert not torch.equal(first_epoch[0], first_epoch[1])   # seeds draw their own order
    assert not torch.equal(first_epoch, second_epoch)        # reshuffled every epoch


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(batch_size=-4), dict(steps=0)])
def test_a_config_that_cannot_train_is_refused_in_one_sentence(bad):
    with pytest.raises(ValueError, match=r"must be >= 1"):
        TrainConfig(**bad)

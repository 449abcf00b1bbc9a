"""Batched training: the seeds of a stack never mix — mini-batches, MLP adversaries with batch
statistics and dropout, and per-seed layer instances included."""

from __future__ import annotations

import pytest
import torch

from grl_props import GradientReversal
from grl_props.experiment import (
    AdversaryConfig,
    ExperimentConfig,
    SeedLayers,
    TrainConfig,
    simulate_batch,
    train_arm,
)
from grl_props.experiment.training import MiniBatches, train_arm_per_seed

CONFIG = ExperimentConfig(adversary="linear")
REFERENCE = SeedLayers(make=GradientReversal, set_alpha=lambda layer, a: (layer.set_alpha(a), layer)[1])
ADVERSARIES = {
    "linear": AdversaryConfig(family="linear"),
    "mlp": AdversaryConfig(family="mlp"),
    "mlp with batch norm and dropout": AdversaryConfig(family="mlp", batch_norm=True, dropout=0.25),
}


@pytest.mark.parametrize("adversary", sorted(ADVERSARIES))
@pytest.mark.parametrize("batch_size", [None, 64])
def test_stacked_seeds_train_exactly_as_if_alone(batch_size, adversary):
    seeds = [3, 11, 40]
    data = simulate_batch(CONFIG.simulation, seeds)
    train = TrainConfig(steps=30, batch_size=batch_size, adversary_steps=1)
    kwargs = dict(model_config=CONFIG.model, train_config=train, layer=REFERENCE,
                  adversary=ADVERSARIES[adversary])
    stacked = train_arm(data, seeds, **kwargs)
    alone = train_arm_per_seed(data, seeds, **kwargs)
    # "Identical" means bit for bit: no tolerance.
    torch.testing.assert_close(stacked.latents, alone.latents, rtol=0, atol=0)
    # Same seeds in another order and company: seed 11 still trains the same.
    other = [11, 7]
    again = train_arm(simulate_batch(CONFIG.simulation, other), other, **kwargs)
    torch.testing.assert_close(again.latents[0], stacked.latents[1], rtol=0, atol=0)


def test_sharing_one_layer_instance_across_seeds_is_noticed():
    """The per-seed check bites: a layer whose state couples seeds breaks stacked == alone."""
    seeds = [3, 11]

    class CountingAcrossSeeds:
        calls = 0  # class-level: shared by every instance, so seeds see each other's calls

        def __init__(self, alpha: float) -> None:
            self.alpha = alpha

        def __call__(self, z: torch.Tensor) -> torch.Tensor:
            type(self).calls += 1
            return GradientReversal(self.alpha if type(self).calls % 3 else 0.0)(z)

    layer = SeedLayers(make=lambda _alpha: CountingAcrossSeeds(1.0))
    data = simulate_batch(CONFIG.simulation, seeds)
    kwargs = dict(model_config=CONFIG.model, train_config=TrainConfig(steps=20), layer=layer)
    stacked = train_arm(data, seeds, **kwargs)
    CountingAcrossSeeds.calls = 0
    alone = train_arm_per_seed(data, seeds, **kwargs)
    assert not torch.equal(stacked.latents, alone.latents)


def test_mini_batches_are_a_fresh_permutation_per_seed_and_epoch():
    batches = MiniBatches([0, 1], n=512, batch_size=128)
    first_epoch = torch.cat([batches.indices(step) for step in range(4)], dim=1)  # (2, 512)
    second_epoch = torch.cat([batches.indices(step) for step in range(4, 8)], dim=1)
    for epoch in (first_epoch, second_epoch):
        assert all(sorted(row.tolist()) == list(range(512)) for row in epoch)
    assert not torch.equal(first_epoch[0], first_epoch[1])   # seeds draw their own order
    assert not torch.equal(first_epoch, second_epoch)        # reshuffled every epoch


def test_alpha_follows_the_schedule_through_the_layers_own_setter():
    seen: list[float] = []

    class Recording(GradientReversal):
        def set_alpha(self, alpha: float) -> None:
            seen.append(alpha)
            super().set_alpha(alpha)

    layer = SeedLayers(make=Recording, set_alpha=lambda inst, a: (inst.set_alpha(a), inst)[1],
                       scale=0.5)
    data = simulate_batch(CONFIG.simulation, [0])
    train_arm(data, [0], model_config=CONFIG.model, layer=layer,
              train_config=TrainConfig(steps=50, alpha_max=2.0))
    assert len(seen) == 49                      # every step after the first
    assert seen == sorted(seen) and 0 < seen[0] < seen[-1] <= 1.0   # ramp up to 2 * 0.5


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(batch_size=-4), dict(steps=0)])
def test_a_config_that_cannot_train_is_refused_in_one_sentence(bad):
    with pytest.raises(ValueError, match=r"must be >= 1"):
        TrainConfig(**bad)


def test_checkpoints_record_latents_before_the_end_and_change_nothing_else():
    seeds = [3, 11]
    data = simulate_batch(CONFIG.simulation, seeds)
    kwargs = dict(model_config=CONFIG.model, layer=REFERENCE)
    plain = train_arm(data, seeds, train_config=TrainConfig(steps=40), **kwargs)
    recorded = train_arm(data, seeds, train_config=TrainConfig(steps=40, checkpoints=(0.25, 0.5)),
                         **kwargs)
    torch.testing.assert_close(recorded.latents, plain.latents, rtol=0, atol=0)
    assert sorted(recorded.checkpoints) == [10, 20]
    assert recorded.checkpoints[10].shape == plain.latents.shape
    assert not torch.equal(recorded.checkpoints[10], recorded.latents)   # taken mid-training
    alone = train_arm_per_seed(data, seeds, train_config=TrainConfig(steps=40, checkpoints=(0.25,)),
                               **kwargs)
    torch.testing.assert_close(alone.checkpoints[10], recorded.checkpoints[10], rtol=0, atol=0)


@pytest.mark.parametrize("fractions,steps,expected", [((0.5, 0.75), 50, (25, 38)),
                                                      ((0.5, 0.75), 2, (1,)),
                                                      ((0.5, 0.99), 10, (5,)),
                                                      ((0.5,), 1, ())])
def test_checkpoint_steps_are_distinct_and_before_the_last_step(fractions, steps, expected):
    assert TrainConfig(steps=steps, checkpoints=fractions).checkpoint_steps() == expected


@pytest.mark.parametrize("bad", [(0.0,), (1.0,), (-0.5,)])
def test_checkpoints_must_be_fractions_of_training(bad):
    with pytest.raises(ValueError, match="checkpoints must be fractions in"):
        TrainConfig(checkpoints=bad)

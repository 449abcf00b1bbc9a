"""diagnose_model: a user's model, judged from what its training recorded (synthetic latents)."""

from __future__ import annotations

import numpy as np
import pytest
from grl_stats_helpers import BROKEN_LAYERS, shifted_latents  # this directory is on sys.path under pytest
from scipy.stats import entropy

from grl_props.model_diagnosis import TrainingHistory, diagnose_model, one_hot_bce_chance

H_Y = 0.7313  # nats, classes 0.75 / 0.15 / 0.10


def _model(final: float, *, loss: float | None, checkpoints: dict[int, float] | None = None,
           chance: float | None = None):
    """An embed whose latents leak by ``final`` (bits grow with it), with a history."""
    def embed(seed: int):
        z, y = shifted_latents(seed, final)
        if loss is None and checkpoints is None:
            return z, y
        return z, y, TrainingHistory(
            adversary_loss=[] if loss is None else [1.2] * 80 + [loss] * 20,
            adversary_chance=chance,
            checkpoints={s: shifted_latents(seed, shift)[0] for s, shift in (checkpoints or {}).items()},
            steps=1000)
    return embed


def _control(seed: int):
    return shifted_latents(seed, 4.0)


def test_an_adversary_at_chance_while_a_probe_reads_the_label_is_a_fooled_adversary():
    result = diagnose_model(_model(3.0, loss=H_Y, checkpoints={500: 3.0, 750: 3.0}),
                            control=_control)
    assert result.conclusion == "setup", result.text()
    setup = result.findings[2]
    assert setup.supported and "the adversary is fooled, not beaten" in setup.evidence
    assert result.findings[1].supported is False  # leakage flat, adversary at chance


def test_leakage_still_falling_with_the_adversary_winning_is_convergence():
    result = diagnose_model(_model(1.6, loss=0.5 * H_Y, checkpoints={500: 3.0, 750: 2.4}),
                            control=_control)
    assert result.conclusion == "convergence", result.text()
    convergence = result.findings[1]
    assert "leakage is still falling" in convergence.evidence
    assert "the adversary still reads the label" in convergence.evidence
    assert "at step 500" in convergence.evidence and "at step 1000" in convergence.evidence


def test_without_a_history_it_says_what_it_could_not_judge():
    result = diagnose_model(_model(3.0, loss=None), control=_control)
    assert result.conclusion == "unknown", result.text()
    layer, convergence, setup = result.findings
    assert layer.supported is None and "no layer given" in layer.evidence
    assert convergence.supported is None and "the history has no adversary losses" in \
        convergence.evidence and "the history has no checkpoints" in convergence.evidence
    assert "a fooled adversary is not judged" in setup.evidence
    assert "return a TrainingHistory" in result.text()


def test_a_model_that_removes_the_label_is_none_and_a_missing_control_is_said():
    result = diagnose_model(_model(0.0, loss=H_Y))
    assert result.conclusion == "none", result.text()
    assert "no control arm was given" in result.findings[2].evidence
    assert result.verdict is not None and result.verdict.outcome == "pass"
    assert result.to_json()["verdict"]["verdict"] == "pass"


def _radial(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The label lives in the radius only: no linear probe reads it, an MLP probe does."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=1500, p=[0.75, 0.15, 0.10])
    return rng.standard_normal((1500, 2)) * np.where(y == 0, 1.0, 3.0)[:, None], y


def test_a_linear_adversary_judged_by_mlp_probes_is_the_setup_when_linear_probes_read_nothing():
    def embed(seed: int):
        return (*_radial(seed), TrainingHistory(adversary_loss=[H_Y] * 50))

    def control(seed: int):
        z, y = _radial(seed)
        return z + 3.0 * (y == 1)[:, None], y

    result = diagnose_model(embed, control=control, adversary="linear", probe="mlp")
    assert result.conclusion == "setup", result.text()
    assert "stronger than the linear adversary" in result.findings[2].evidence


def test_a_broken_layer_is_decisive_and_the_model_is_never_trained():
    calls = []
    result = diagnose_model(lambda s: calls.append(s), layer=BROKEN_LAYERS["no_reversal"])
    assert result.conclusion == "layer" and calls == []
    assert "core properties fail" in result.findings[0].evidence


def test_two_workers_give_the_same_diagnosis():
    embed = _model(1.6, loss=0.5 * H_Y, checkpoints={500: 3.0, 750: 2.4})
    assert (diagnose_model(embed, control=_control).to_json()
            == diagnose_model(embed, control=_control, n_jobs=2).to_json())


def test_one_hot_bce_chance_is_the_mean_binary_entropy_of_the_class_frequencies():
    labels = np.repeat([0, 1, 2], [75, 15, 10])
    expected = np.mean([entropy([p, 1 - p]) for p in (0.75, 0.15, 0.10)])  # nats
    assert one_hot_bce_chance(labels) == pytest.approx(expected, rel=1e-12)
    assert one_hot_bce_chance(labels) == pytest.approx(0.437, abs=5e-4)  # docs' chance level


def test_a_checkpoint_of_other_cells_is_refused():
    def embed(seed: int):
        z, y = shifted_latents(seed, 0.0)
        return z, y, TrainingHistory(checkpoints={10: z[:5]})

    with pytest.raises(ValueError, match="checkpoint 10 must hold latents .* of the same 1024"):
        diagnose_model(embed)


def test_signs_of_an_unsettled_game_are_not_held_against_a_passing_verdict():
    result = diagnose_model(_model(0.0, loss=0.5 * H_Y), control=_control)
    assert result.conclusion == "none", result.text()
    convergence = result.findings[1]
    assert convergence.supported is False
    assert "the adversary still reads the label" in convergence.evidence
    assert convergence.evidence.endswith("the verdict does not fail, so these signs explain no "
                                         "leakage")

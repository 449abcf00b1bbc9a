"""The model-level API: a user's model in plain PyTorch, synthetic latents of known leakage."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from grl_stats_helpers import shifted_latents, train_user_model  # this directory is on sys.path under pytest

from grl_props.label_removal import LabelRemovalResult, assert_label_removed
from grl_props.probes import ProbeConfig, score_seed
from grl_props.sign_test import Contract


@cache
def _embed(seed: int, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    return train_user_model(seed, reverse=reverse)


def test_user_model_with_reversal_passes():
    result = assert_label_removed(lambda s: _embed(s, True), seeds=range(9),
                                  control=lambda s: _embed(s, False))
    assert isinstance(result, LabelRemovalResult)
    assert result.outcome == "pass" and result.probe.name == "logistic"
    assert result.verdict.control_n_blind == 0
    assert set(result.scores[0].probes) == {"logistic", "mlp"}
    assert set(result.scores[0].probes["logistic"]) == {
        "reversal", "control", "shuffled reversal", "shuffled control"}


def test_user_model_without_reversal_raises_with_the_verdict():
    with pytest.raises(AssertionError, match="label removed for linear probes: fail"):
        assert_label_removed(lambda s: _embed(s, False), seeds=range(9))


def test_bad_embed_output_is_refused():
    with pytest.raises(ValueError, match=r"must return \(latents, labels\)"):
        assert_label_removed(lambda s: np.zeros((10, 2)), seeds=range(9))


def test_too_few_seeds_are_refused_before_any_training():
    calls: list[int] = []

    def embed(seed: int):
        calls.append(seed)
        return shifted_latents(seed, 0.0)

    with pytest.raises(ValueError, match="5 seeds are too few for this contract; at least 9"):
        assert_label_removed(embed, seeds=range(5))
    with pytest.raises(ValueError, match="probe must be one of logistic, mlp"):
        assert_label_removed(embed, probe="svm")
    with pytest.raises(ValueError, match="distinct and 0 or more"):
        assert_label_removed(embed, seeds=range(-1, 8))
    with pytest.raises(ValueError, match="this contract is for 12 seeds, got 9"):
        assert_label_removed(embed, seeds=range(9), contract=Contract(n_seeds=12))
    assert calls == []


@pytest.mark.parametrize("probe", ["logistic", "mlp"])
def test_weak_leakage_moves_the_measure_above_the_null_where_argmax_macro_f1_does_not(probe):
    """Shift 1.0: the Bayes one-vs-rest AUC is about 0.74 (0.14 bits). Under this imbalance the
    arg-max of a probe predicts a minority class only for a few cells, so macro-F1 moves little:
    the first verdict (macro-F1 over the null, a seed counted above 0.175) passed such latents
    with no seed counted. Usable information puts every seed well above the null (whose spread
    is about 0.02 bits)."""
    seeds = range(9)
    scores = [score_seed(s, {"reversal": shifted_latents(s, 1.0)[0]}, shifted_latents(s, 1.0)[1],
                         (ProbeConfig(name=probe),)) for s in seeds]
    f1_leakage = np.array([s.leakage("reversal", probe, "macro_f1") for s in scores])
    bits = np.array([s.leakage("reversal", probe) for s in scores])
    auc = np.array([s.probes[probe]["reversal"].auc_ovr for s in scores])
    assert np.median(auc) > 0.7
    assert np.all(f1_leakage <= 0.175)                  # the first verdict: 0 of 9 counted
    assert bits.min() > 0.08 and np.median(bits) > 0.12  # bits: every seed well above the null


@pytest.mark.parametrize("probe", ["logistic", "mlp"])
def test_leakage_read_at_auc_08_fails_the_verdict(probe):
    """Shift 1.2: Bayes one-vs-rest AUC about 0.79, 0.2 bits = tau + delta: cannot pass."""
    with pytest.raises(AssertionError, match="label removed for .* probes: fail"):
        assert_label_removed(lambda s: shifted_latents(s, 1.2), probe=probe)


@pytest.mark.parametrize("probe", ["logistic", "mlp"])
def test_latents_without_the_label_pass(probe):
    result = assert_label_removed(lambda s: shifted_latents(s, 0.0), probe=probe,
                                  control=lambda s: shifted_latents(s, 3.0))
    assert result.verdict.n_leaking == 0 and result.verdict.control_n_blind == 0

"""Per-seed scoring: the split, usable information, the permutation null, the linear guard."""

from __future__ import annotations

import numpy as np
import pytest

from grl_props.probes import (
    ProbeConfig,
    linear_guard_test,
    score_probe,
    score_seed,
    split_indices,
)


def _labels(values: tuple[int, ...], counts: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.permutation(np.repeat(values, counts))


@pytest.mark.parametrize("values", [(0, 1, 2), (1, 2, 5), (-3, 0, 7)])
def test_split_is_stratified_for_any_label_values(values):
    labels = _labels(values, (300, 60, 40))
    train, test = split_indices(labels, 0.5, seed=1)
    assert len(set(train) | set(test)) == len(labels) and not set(train) & set(test)
    for value, count in zip(values, (300, 60, 40), strict=True):
        assert np.sum(labels[train] == value) == count // 2  # stratified: exact halves


def test_a_class_seen_once_turns_stratification_off_without_crashing():
    labels = _labels((0, 1, 2), (50, 20, 1))
    train, test = split_indices(labels, 0.5, seed=1)
    assert len(train) + len(test) == 71


def test_label_values_with_gaps_are_scored_like_consecutive_ones():
    rng = np.random.default_rng(3)
    labels = _labels((0, 1, 2), (600, 120, 80))
    z = rng.standard_normal((800, 4)) + np.eye(4)[:3][labels] * 1.5
    split = split_indices(labels, 0.5, seed=2)
    plain = score_probe(z, labels, split, ProbeConfig(), seed=0)
    gapped = score_probe(z, np.array([1, 2, 5])[labels], split, ProbeConfig(), seed=0)
    assert gapped.usable_information_bits == pytest.approx(plain.usable_information_bits)
    assert gapped.macro_f1 == pytest.approx(plain.macro_f1)


@pytest.mark.parametrize("probe", ["logistic", "mlp"])
def test_usable_information_is_near_zero_without_the_label_and_near_h_y_with_it(probe):
    rng = np.random.default_rng(4)
    labels = _labels((0, 1, 2), (750, 150, 100))
    h_y = -sum(p * np.log2(p) for p in (0.75, 0.15, 0.10))
    noise = rng.standard_normal((1000, 4))
    separated = noise + 8.0 * np.eye(4)[:3][labels]
    split = split_indices(labels, 0.5, seed=5)
    none = score_probe(noise, labels, split, ProbeConfig(name=probe), seed=0)
    full = score_probe(separated, labels, split, ProbeConfig(name=probe), seed=0)
    assert abs(none.usable_information_bits) < 0.06
    assert full.usable_information_bits == pytest.approx(h_y, abs=0.05)
    assert full.prior_entropy_bits == pytest.approx(h_y, abs=0.05)


def test_leakage_is_over_each_arms_own_permutation_null():
    rng = np.random.default_rng(6)
    labels = _labels((0, 1, 2), (750, 150, 100))
    z = rng.standard_normal((1000, 4)) + 1.5 * np.eye(4)[:3][labels]
    scores = score_seed(7, {"reversal": z, "control": z * 2}, labels,
                        (ProbeConfig(), ProbeConfig(name="mlp")))
    assert set(scores.probes["logistic"]) == {"reversal", "control", "shuffled reversal",
                                               "shuffled control"}
    assert set(scores.probes["mlp"]) == {"reversal", "shuffled reversal"}  # reported: reversal
    judged = scores.probes["logistic"]
    assert scores.leakage() == pytest.approx(judged["reversal"].usable_information_bits
                                             - judged["shuffled reversal"].usable_information_bits)
    assert scores.leakage("reversal", "logistic", "macro_f1") == pytest.approx(
        judged["reversal"].macro_f1 - judged["shuffled reversal"].macro_f1)
    again = score_seed(7, {"reversal": z, "control": z * 2}, labels,
                       (ProbeConfig(), ProbeConfig(name="mlp")))
    assert again.leakage() == scores.leakage()  # a pure function of the seed


def test_linear_guard_sees_unequal_class_means():
    rng = np.random.default_rng(8)
    labels = _labels((0, 1, 2), (750, 150, 100))
    equal = rng.standard_normal((1000, 4))
    shifted = equal + 0.5 * np.eye(4)[:3][labels]
    assert linear_guard_test(equal, labels).p_value > 0.01
    assert linear_guard_test(shifted, labels).p_value < 1e-6
    constant = linear_guard_test(np.ones((1000, 4)), labels)
    assert (constant.pillai_trace, constant.p_value) == (0.0, 1.0)
    assert np.isnan(linear_guard_test(np.full((1000, 4), np.nan), labels).p_value)

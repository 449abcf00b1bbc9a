"""The sign test and its design functions: exact binomial arithmetic, no training."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from grl_props.stats import (
    Contract,
    fail_count_for_sign_test,
    label_removal_verdict,
    min_leaking_fraction_detectable_by_sign_test,
    min_num_seeds_for_sign_test,
)


def test_default_design_is_nine_seeds_failing_at_five():
    contract = Contract()
    assert contract.seeds == 9
    k = fail_count_for_sign_test(9)
    assert k == 5
    assert binom.sf(k - 1, 9, 0.1) <= 1e-3 < binom.sf(k - 2, 9, 0.1)  # smallest such k
    assert binom.cdf(k - 1, 9, 0.9) <= 1e-3                             # false-pass side


@pytest.mark.parametrize("rho,alpha,beta", [(0.1, 1e-3, 1e-3), (0.05, 1e-2, 1e-3),
                                            (0.2, 1e-4, 1e-2)])
def test_min_num_seeds_is_the_smallest_that_meets_both_rates(rho, alpha, beta):
    n = min_num_seeds_for_sign_test(robustness=rho, false_fail_rate=alpha, false_pass_rate=beta)
    q = min_leaking_fraction_detectable_by_sign_test(n, robustness=rho, false_fail_rate=alpha,
                                                     false_pass_rate=beta)
    assert q <= 1 - rho
    assert min_leaking_fraction_detectable_by_sign_test(
        n - 1, robustness=rho, false_fail_rate=alpha, false_pass_rate=beta) > 1 - rho


def test_min_leaking_fraction_is_exact():
    n, k = 20, fail_count_for_sign_test(20)
    q = min_leaking_fraction_detectable_by_sign_test(20)
    assert binom.cdf(k - 1, n, q) == pytest.approx(1e-3, rel=1e-6)
    assert math.isinf(min_leaking_fraction_detectable_by_sign_test(3))


def test_verdict_fails_on_leakage_and_passes_without():
    assert label_removal_verdict([0.0] * 9, [0.6] * 9).outcome == "pass"
    assert label_removal_verdict([0.5] * 9, [0.6] * 9).outcome == "fail"


def test_one_wild_seed_cannot_decide():
    leakage = [0.0] * 8 + [float("nan")]
    verdict = label_removal_verdict(leakage, [0.6] * 9)
    assert verdict.n_leaking == 1 and verdict.outcome == "pass"
    assert label_removal_verdict([0.0] * 8 + [0.9], [0.6] * 9).outcome == "pass"


def test_fail_count_is_the_boundary():
    below = [0.5] * 4 + [0.0] * 5
    at = [0.5] * 5 + [0.0] * 4
    assert label_removal_verdict(below, [0.6] * 9).outcome == "pass"
    assert label_removal_verdict(at, [0.6] * 9).outcome == "fail"


def test_blind_control_makes_a_pass_invalid_but_not_a_fail():
    assert label_removal_verdict([0.0] * 9, [0.0] * 9).outcome == "invalid"
    assert label_removal_verdict([0.5] * 9, [0.0] * 9).outcome == "fail"
    assert label_removal_verdict([0.0] * 9).outcome == "pass"  # no control: not checked


def test_too_few_seeds_are_refused():
    with pytest.raises(ValueError, match="at least 9"):
        label_removal_verdict([0.0] * 8)
    with pytest.raises(ValueError, match="at least 9"):
        Contract(n_seeds=5)


def test_verdict_text_and_json_state_the_contract():
    v = label_removal_verdict(list(np.linspace(0, 0.01, 9)), [0.6] * 9)
    text = v.text()
    assert text.startswith("label removed: pass")
    assert "false-fail rate 0.001" in text and "false-pass rate 0.001" in text
    js = v.to_json()
    assert js["verdict"] == "pass" and js["contract"]["tau"] == 0.05
    assert js["fail_count"] == 5 and len(js["leakage"]) == 9

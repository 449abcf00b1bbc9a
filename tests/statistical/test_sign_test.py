"""The sign test and its design functions: exact binomial arithmetic, no training."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from grl_props.sign_test import (
    Contract,
    Judged,
    fail_count_for_sign_test,
    label_removal_verdict,
    min_leaking_fraction_detectable_by_sign_test,
    min_num_seeds_for_sign_test,
    pass_probability_of_sign_test,
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


def test_the_verdict_reports_the_seeds_it_used():
    js = label_removal_verdict([0.0] * 12, [0.6] * 12).to_json()
    assert js["contract"]["n_seeds"] == 12 and js["contract"]["fail_count"] == js["fail_count"] == 6
    with pytest.raises(ValueError, match="this contract is for 9 seeds, got 12"):
        label_removal_verdict([0.0] * 12, contract=Contract(n_seeds=9))


def test_too_few_seeds_are_refused():
    with pytest.raises(ValueError, match="at least 9"):
        label_removal_verdict([0.0] * 8)
    with pytest.raises(ValueError, match="at least 9"):
        Contract(n_seeds=5)


def test_verdict_text_and_json_say_what_was_judged():
    judged = Judged(probe="MLP probe (16 hidden units)", family="MLP")
    v = label_removal_verdict(list(np.linspace(0, 0.01, 9)), [0.6] * 9, judged=judged)
    text = v.text()
    assert text.startswith("label removed for MLP probes: pass — usable information +0.005 bits")
    assert "0 of 9 seeds above 0.15 bits, fail at ≥5" in text
    js = v.to_json()
    assert js["verdict"] == "pass" and js["contract"]["tau"] == 0.1
    assert js["judged"]["probe"] == "MLP probe (16 hidden units)" and js["judged"]["unit"] == "bits"
    assert js["fail_count"] == 5 and len(js["leakage"]) == 9
    assert "false-pass rate 0.001" in Contract().describe("bits")
    short = v.short_text()
    assert short == ("label removed for MLP probes: pass — +0.005 bits (median of 9 seeds), "
                     "0 of 9 seeds above 0.15, control +0.600")
    assert "fail when ≥5 of 9 seeds exceed τ+Δ/2 = 0.15" in v.contract_text()


def test_pass_probability_is_the_exact_binomial_and_meets_both_rates():
    n, k = 9, fail_count_for_sign_test(9)
    for q in (0.0, 0.1, 0.3, 0.5, 0.9, 1.0):
        assert pass_probability_of_sign_test(q, n) == pytest.approx(binom.cdf(k - 1, n, q))
    assert pass_probability_of_sign_test(0.1, n) >= 1 - 1e-3          # correct layers
    assert pass_probability_of_sign_test(0.9, n) <= 1e-3              # leaking layers
    curve = [pass_probability_of_sign_test(q, n) for q in np.linspace(0, 1, 11)]
    assert all(a >= b for a, b in zip(curve, curve[1:], strict=False))  # monotone
    with pytest.raises(ValueError, match="leaking_fraction"):
        pass_probability_of_sign_test(1.5, n)


@pytest.mark.parametrize("bad", [dict(delta=0.0), dict(delta=float("inf")), dict(tau=float("nan")),
                                 dict(robustness=1.0), dict(false_fail_rate=0.0)])
def test_a_contract_that_cannot_hold_is_refused(bad):
    with pytest.raises(ValueError):
        Contract(**bad)

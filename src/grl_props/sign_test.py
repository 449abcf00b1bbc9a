"""The label-removal verdict: an exact sign test on per-seed leakage, and its design functions.

Pure arithmetic on numbers, no training and no probes (those are ``grl_props.label_removal``
and ``grl_props.probes``).

Contract (quote this)
---------------------
Each seed ``s`` contributes one leakage ``L(s)``: what a fresh probe reads of the label from the
latents, minus what it reads from the same latents with rows permuted against the labels (the
permutation null). :class:`Judged` names the probe and the measure (by default usable
information in bits). A seed whose leakage is not finite counts as leaking.

With tolerance ``tau``, discrepancy ``delta``, robustness ``rho``, false-fail rate ``alpha`` and
false-pass rate ``beta`` (defaults: ``tau = 0.1`` bits, ``delta = 0.1`` bits, ``rho = 0.1``,
``alpha = beta = 1e-3``, 9 seeds):

* **Correct code fails rarely.** If at most a fraction ``rho`` of seeds leaks more than ``tau``
  (``P[L(s) > tau] <= rho``: one seed in ten may misbehave arbitrarily, e.g. not converge), the
  verdict is ``fail`` with probability at most ``alpha``.
* **Code that misbehaves by more than the discrepancy passes rarely.** If at least a fraction
  ``1 - rho`` of seeds leaks at least ``tau + delta`` (``P[L(s) >= tau + delta] >= 1 - rho``),
  the verdict is ``pass`` with probability at most ``beta``.
* **Nothing reliable is said in between.** :func:`pass_probability_of_sign_test` gives the
  exact probability of ``pass`` for any fraction of leaking seeds, so the middle can be read.
* **A blind experiment is reported, not passed.** With a control arm (no reversal), if at most
  ``rho`` of control seeds leak less than ``tau + delta``, a non-failing verdict is ``pass``, and
  is wrongly ``invalid`` with probability at most ``alpha``; if at least ``1 - rho`` of control
  seeds leak less than ``tau + delta`` (the probe cannot see the label even without reversal), a
  non-failing verdict is ``invalid`` with probability at least ``1 - beta``. Evidence of leakage
  (``fail``) stands whatever the control shows.

The statistic is a one-sided binomial (sign) test on the count ``K`` of seeds with
``L(s) > tau + delta / 2``: ``fail`` iff ``K >= k``, the smallest ``k`` with
``P[Binomial(n, rho) >= k] <= alpha``. It is robust: a single seed, however wild (a diverged run,
a ``nan``), moves ``K`` by one and cannot decide the verdict alone (``k = 5`` of 9 seeds for the
defaults). Its error rates are exact binomial tails, valid for any distribution of ``L`` (seeds
are independent); leakage enters only through the two fractions above, so the design functions
are stated in fractions of seeds, exactly, and ``delta`` sets the gap that keeps seeds near
``tau`` from being counted by noise.

Every assertion has its design functions (TFP ``statistical_testing`` style):
:func:`fail_count_for_sign_test`, :func:`min_leaking_fraction_detectable_by_sign_test` (given
``n`` seeds), :func:`min_num_seeds_for_sign_test` (given the fraction to detect) and
:func:`pass_probability_of_sign_test` (the power curve).

Example::

    >>> from grl_props.sign_test import label_removal_verdict
    >>> label_removal_verdict([0.0] * 9, control_leakage=[0.6] * 9).outcome
    'pass'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binom, binomtest

__all__ = [
    "Contract",
    "Judged",
    "LabelRemovalVerdict",
    "Outcome",
    "fail_count_for_sign_test",
    "label_removal_verdict",
    "min_leaking_fraction_detectable_by_sign_test",
    "min_num_seeds_for_sign_test",
    "pass_probability_of_sign_test",
]

Outcome = Literal["pass", "fail", "invalid"]


# ---------------------------------------------------------------------------------------------
# Design functions


def fail_count_for_sign_test(n_seeds: int, *, robustness: float = 0.1,
                             false_fail_rate: float = 1e-3) -> int:
    """The smallest count ``k`` with ``P[Binomial(n_seeds, robustness) >= k] <= false_fail_rate``.

    Returns ``n_seeds + 1`` when no count reaches the rate (the test could never fail).
    """
    _check_rates(robustness, false_fail_rate)
    for k in range(n_seeds + 1):
        if binom.sf(k - 1, n_seeds, robustness) <= false_fail_rate:
            return k
    return n_seeds + 1


def pass_probability_of_sign_test(leaking_fraction: float, n_seeds: int, *,
                                  robustness: float = 0.1, false_fail_rate: float = 1e-3) -> float:
    """Exact probability that the verdict does not fail, when each seed independently counts as
    leaking (``L(s) > tau + delta / 2``) with probability ``leaking_fraction``.

    ``1 -`` this is the probability of ``fail``. At ``leaking_fraction <= robustness`` it is
    ``>= 1 - false_fail_rate``; the contract promises it is ``<= false_pass_rate`` once the
    fraction of seeds leaking ``>= tau + delta`` reaches
    :func:`min_leaking_fraction_detectable_by_sign_test`.
    """
    if not 0.0 <= leaking_fraction <= 1.0:
        raise ValueError(f"leaking_fraction must be in [0, 1], got {leaking_fraction}")
    k = fail_count_for_sign_test(n_seeds, robustness=robustness, false_fail_rate=false_fail_rate)
    return float(binom.cdf(k - 1, n_seeds, leaking_fraction))


def min_leaking_fraction_detectable_by_sign_test(
        n_seeds: int, *, robustness: float = 0.1, false_fail_rate: float = 1e-3,
        false_pass_rate: float = 1e-3) -> float:
    """Smallest fraction ``q`` of seeds leaking ``>= tau + delta`` that fails w.p. ``>= 1 - beta``.

    Exact for the sign test of :func:`label_removal_verdict` with ``n_seeds`` seeds: a layer with
    ``P[L(s) >= tau + delta] >= q`` passes with probability at most ``false_pass_rate``. Returns
    ``inf`` when ``n_seeds`` is too few for any fraction (even ``q = 1``).
    """
    _check_rates(robustness, false_fail_rate, false_pass_rate)
    k = fail_count_for_sign_test(n_seeds, robustness=robustness, false_fail_rate=false_fail_rate)
    if k > n_seeds:
        return math.inf
    if k == 0:
        return 0.0
    pass_probability = lambda q: binom.cdf(k - 1, n_seeds, q) - false_pass_rate  # noqa: E731
    if pass_probability(1.0) > 0:
        return math.inf
    if pass_probability(0.0) <= 0:
        return 0.0
    return float(brentq(pass_probability, 0.0, 1.0, xtol=1e-12))


def min_num_seeds_for_sign_test(leaking_fraction: float | None = None, *, robustness: float = 0.1,
                                false_fail_rate: float = 1e-3, false_pass_rate: float = 1e-3,
                                max_seeds: int = 10_000) -> int:
    """Fewest seeds for which the sign test meets both rates.

    ``leaking_fraction`` (default ``1 - robustness``) is the fraction of seeds that leak
    ``>= tau + delta`` in the layers that must fail; it must exceed ``robustness``.
    """
    q = 1.0 - robustness if leaking_fraction is None else leaking_fraction
    _check_rates(robustness, false_fail_rate, false_pass_rate)
    if not robustness < q <= 1.0:
        raise ValueError(f"leaking_fraction must be in (robustness={robustness}, 1], got {q}")
    for n in range(1, max_seeds + 1):
        k = fail_count_for_sign_test(n, robustness=robustness, false_fail_rate=false_fail_rate)
        if k <= n and binom.cdf(k - 1, n, q) <= false_pass_rate:
            return n
    raise ValueError(f"no seed count up to {max_seeds} reaches these rates")


def _check_rates(robustness: float, *rates: float) -> None:
    if not 0.0 <= robustness < 1.0:
        raise ValueError(f"robustness must be in [0, 1), got {robustness}")
    for rate in rates:
        if not 0.0 < rate < 1.0:
            raise ValueError(f"error rates must be in (0, 1), got {rate}")


# ---------------------------------------------------------------------------------------------
# Contract and verdict


@dataclass(frozen=True)
class Contract:
    """Tolerance, discrepancy, robustness and error rates of a label-removal verdict.

    ``tau`` and ``delta`` are in the unit of the judged measure (bits of usable information by
    default). The defaults are measured on the reference experiment (docs/statistical.md):
    ``tau = 0.1`` bits is what the reference layer meets in 99 % of seeds for the linear family
    (the ``mlp`` family misses it in about a third of its seeds: its figures say so), and
    ``tau + delta = 0.2`` bits is about what a probe reads at a one-vs-rest AUC of 0.8 on these
    labels, so a layer leaking that much in nine seeds of ten passes with probability at most
    ``false_pass_rate``. A seed counts as leaking above ``tau + delta / 2 = 0.15`` bits.
    ``n_seeds`` defaults to :func:`min_num_seeds_for_sign_test` (9 for the defaults).
    """

    tau: float = 0.1
    delta: float = 0.1
    robustness: float = 0.1
    false_fail_rate: float = 1e-3
    false_pass_rate: float = 1e-3
    n_seeds: int | None = None

    def __post_init__(self) -> None:
        _check_rates(self.robustness, self.false_fail_rate, self.false_pass_rate)
        if not math.isfinite(self.tau):
            raise ValueError(f"tau must be finite, got {self.tau}")
        if not (self.delta > 0 and math.isfinite(self.delta)):
            raise ValueError(f"delta must be > 0 and finite, got {self.delta}")
        if self.n_seeds is not None and self.n_seeds < self.min_seeds:
            raise ValueError(f"n_seeds={self.n_seeds} is too few for these rates; "
                             f"at least {self.min_seeds} are needed")

    @property
    def min_seeds(self) -> int:
        """Fewest seeds meeting both rates (:func:`min_num_seeds_for_sign_test`)."""
        return min_num_seeds_for_sign_test(robustness=self.robustness,
                                           false_fail_rate=self.false_fail_rate,
                                           false_pass_rate=self.false_pass_rate)

    @property
    def seeds(self) -> int:
        """Seeds per verdict."""
        return self.n_seeds if self.n_seeds is not None else self.min_seeds

    @property
    def threshold(self) -> float:
        """A seed counts as leaking when ``L(s) > tau + delta / 2``."""
        return self.tau + self.delta / 2

    @property
    def fail_count(self) -> int:
        """Leaking seeds (of :attr:`seeds`) at which the verdict fails."""
        return fail_count_for_sign_test(self.seeds, robustness=self.robustness,
                                        false_fail_rate=self.false_fail_rate)

    def check_seed_count(self, n: int) -> None:
        """Raise ``ValueError`` (one sentence) when ``n`` seeds are too few for this contract, or
        differ from the ``n_seeds`` it fixes."""
        if n < self.min_seeds:
            raise ValueError(f"{n} seeds are too few for this contract; at least "
                             f"{self.min_seeds} are needed")
        if self.n_seeds is not None and n != self.n_seeds:
            raise ValueError(f"this contract is for {self.n_seeds} seeds, got {n}")

    def to_json(self) -> dict[str, float | int]:
        return {"tau": self.tau, "delta": self.delta, "robustness": self.robustness,
                "false_fail_rate": self.false_fail_rate, "false_pass_rate": self.false_pass_rate,
                "n_seeds": self.seeds, "count_threshold": self.threshold,
                "fail_count": self.fail_count}

    def describe(self, unit: str = "") -> str:
        u = f" {unit}" if unit else ""
        return (f"false-fail rate {self.false_fail_rate:g} if ≤{self.robustness:.0%} of seeds leak "
                f"> τ={self.tau:g}{u}, false-pass rate {self.false_pass_rate:g} if ≥"
                f"{1 - self.robustness:.0%} of seeds leak ≥ τ+Δ={self.tau + self.delta:g}{u}")


@dataclass(frozen=True)
class Judged:
    """What a verdict judged: the probe, the measure (and its unit) and the null."""

    probe: str = "logistic-regression probe"
    measure: str = "usable information"
    unit: str = "bits"
    null: str = "the same latents with rows permuted against the labels"
    family: str = "linear"  # which probes: "linear" or "MLP" (for the verdict line)

    def to_json(self) -> dict[str, str]:
        return {"probe": self.probe, "measure": self.measure, "unit": self.unit,
                "null": self.null}


@dataclass(frozen=True)
class LabelRemovalVerdict:
    """Outcome of the sign test, with everything needed to reproduce it."""

    outcome: Outcome
    leakage: tuple[float, ...]
    n_leaking: int
    fail_count: int
    p_value: float
    contract: Contract
    control_leakage: tuple[float, ...] | None = None
    control_n_blind: int | None = None
    control_p_value: float | None = None
    judged: Judged = Judged()

    @property
    def median_leakage(self) -> float:
        return _nan_high_median(self.leakage)

    def text(self) -> str:
        """One line: outcome, median leakage, the count against the fail count, the control."""
        n, c, j = len(self.leakage), self.contract, self.judged
        line = (f"label removed for {j.family} probes: {self.outcome} — {j.measure} "
                f"{self.median_leakage:+.3f} {j.unit} over the permutation null (median of {n} "
                f"seeds); {self.n_leaking} of {n} seeds above {c.threshold:g} {j.unit}, fail at "
                f"≥{self.fail_count} (p={self.p_value:.2g})")
        if self.control_leakage is None:
            return line + "; no control arm, validity not checked"
        return line + (f"; control {_nan_high_median(self.control_leakage, -math.inf):+.3f} "
                       f"{j.unit}, {self.control_n_blind} of {n} control seeds below "
                       f"{c.tau + c.delta:g}")

    def short_text(self) -> str:
        """The verdict in brief (the contract stated elsewhere, once): outcome, what was
        judged, median leakage, the count, the control."""
        n, j = len(self.leakage), self.judged
        line = (f"label removed for {j.family} probes: {self.outcome} — {self.median_leakage:+.3f} "
                f"{j.unit} (median of {n} seeds), {self.n_leaking} of {n} seeds above "
                f"{self.contract.threshold:g}")
        if self.control_leakage is not None:
            line += f", control {_nan_high_median(self.control_leakage, -math.inf):+.3f}"
        return line

    def contract_text(self) -> str:
        """The contract and what was measured, in one sentence (to print once per run)."""
        c, j = self.contract, self.judged
        return (f"leakage = {j.measure} ({j.unit}) a fresh probe of the adversary's family reads "
                f"from held-out latents, over the permutation null; fail when ≥{self.fail_count} "
                f"of {len(self.leakage)} seeds exceed τ+Δ/2 = {c.threshold:g}; "
                f"{c.describe(j.unit)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.outcome, "leakage": _json_floats(self.leakage),
            "median_leakage": _json_float(self.median_leakage), "n_leaking": self.n_leaking,
            "fail_count": self.fail_count, "p_value": self.p_value,
            "control_leakage": None if self.control_leakage is None
            else _json_floats(self.control_leakage),
            "control_median_leakage": None if self.control_leakage is None
            else _json_float(_nan_high_median(self.control_leakage, -math.inf)),
            "control_n_blind": self.control_n_blind, "control_p_value": self.control_p_value,
            "contract": self.contract.to_json(), "judged": self.judged.to_json(),
        }


def label_removal_verdict(leakage: Sequence[float], control_leakage: Sequence[float] | None = None,
                          contract: Contract | None = None,
                          judged: Judged | None = None) -> LabelRemovalVerdict:
    """The sign-test verdict on per-seed leakage (see the module contract).

    ``fail`` iff at least ``k`` seeds have ``L(s) > tau + delta / 2`` (``nan`` counts); else,
    with ``control_leakage`` (same seeds, no reversal), ``invalid`` iff at least ``k`` control
    seeds have ``C(s) < tau + delta`` (``nan`` counts); else ``pass``. ``k`` is
    :func:`fail_count_for_sign_test` for ``len(leakage)`` seeds. Raises ``ValueError`` when there
    are fewer seeds than the contract's false-pass rate needs.
    """
    contract = contract or Contract()
    values = np.asarray(leakage, dtype=np.float64)
    n = len(values)
    contract.check_seed_count(n)
    contract = replace(contract, n_seeds=n)  # what the verdict reports is what it used
    k = contract.fail_count
    leaking = int(np.sum(~(values <= contract.threshold)))  # nan counts as leaking
    p_value = _upper_tail_p(leaking, n, contract.robustness)
    outcome: Outcome = "fail" if leaking >= k else "pass"
    control = n_blind = control_p = None
    if control_leakage is not None:
        control = np.asarray(control_leakage, dtype=np.float64)
        if len(control) != n:
            raise ValueError(f"control_leakage has {len(control)} seeds, leakage has {n}")
        n_blind = int(np.sum(~(control >= contract.tau + contract.delta)))
        control_p = _upper_tail_p(n_blind, n, contract.robustness)
        if outcome == "pass" and n_blind >= k:
            outcome = "invalid"
    return LabelRemovalVerdict(
        outcome, tuple(float(v) for v in values), leaking, k, p_value, contract,
        None if control is None else tuple(float(v) for v in control), n_blind, control_p,
        judged or Judged())


def _upper_tail_p(count: int, n: int, rate: float) -> float:
    """``P[Binomial(n, rate) >= count]``, via ``scipy.stats.binomtest``."""
    if count == 0:
        return 1.0
    return float(binomtest(count, n, rate, alternative="greater").pvalue)


def _nan_high_median(values: Sequence[float], nan_as: float = math.inf) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.median(np.where(np.isnan(arr), nan_as, arr)))


def _json_float(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


def _json_floats(values: Sequence[float]) -> list[float | str]:
    return [_json_float(float(v)) for v in values]

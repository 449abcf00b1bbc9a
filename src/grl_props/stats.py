"""Verdicts with stated error rates: does training through the layer remove the label?

Contract (quote this)
---------------------
Leakage of one seed ``s`` is ``L(s) = F(s) - R(s)``: the held-out macro-F1 of a fresh probe on
the latents under test, minus the same probe, same split, same seed on Gaussian random latents of
the same shape. A seed whose latents are not finite has ``L(s) = nan`` and counts as leaking.

With tolerance ``tau``, discrepancy ``delta``, robustness ``rho``, false-fail rate ``alpha`` and
false-pass rate ``beta`` (defaults: ``tau = 0.05``, ``delta = 0.25``, ``rho = 0.1``,
``alpha = beta = 1e-3``, 9 seeds):

* **Correct code fails rarely.** If at most a fraction ``rho`` of seeds leaks more than ``tau``
  (``P[L(s) > tau] <= rho``: one seed in ten may misbehave arbitrarily, e.g. not converge), the
  verdict is ``fail`` with probability at most ``alpha``.
* **Code that misbehaves by more than the discrepancy passes rarely.** If at least a fraction
  ``1 - rho`` of seeds leaks at least ``tau + delta`` (``P[L(s) >= tau + delta] >= 1 - rho``),
  the verdict is ``pass`` with probability at most ``beta``.
* **Nothing reliable is said in between**, e.g. for a layer that leaks ``tau + delta / 2`` in
  every seed, or that leaks a lot in a third of the seeds.
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
defaults; ``k >= 2`` whenever ``1 - (1 - rho)^n > alpha``). Its
error rates are exact binomial tails, valid for any distribution of ``L`` (seeds are
independent); leakage enters only through the two fractions above, so the design functions are
stated in fractions of seeds, exactly, and ``delta`` sets the gap that keeps seeds near ``tau``
from being counted by noise.

Every assertion has its two design functions (TFP ``statistical_testing`` style):
:func:`min_leaking_fraction_detectable_by_sign_test` (given ``n`` seeds) and
:func:`min_num_seeds_for_sign_test` (given the fraction to detect).

Example::

    >>> from grl_props.stats import Contract, label_removal_verdict
    >>> v = label_removal_verdict([0.0] * 9, control_leakage=[0.6] * 9)
    >>> v.outcome
    'pass'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binom, binomtest

from grl_props.probes import ProbeConfig

__all__ = [
    "Contract",
    "LabelRemovalResult",
    "LabelRemovalVerdict",
    "Outcome",
    "assert_label_removed",
    "fail_count_for_sign_test",
    "label_removal_verdict",
    "min_leaking_fraction_detectable_by_sign_test",
    "min_num_seeds_for_sign_test",
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

    ``tau`` and ``delta`` are in macro-F1 over the random-latent baseline. Defaults come from
    measurements of the reference experiment (docs/statistical.md, 1800 seeds): the reference
    layer's leakage is 0.00 in the median seed (the probe falls back to the majority class, as
    on random latents; seed-to-seed noise about ±0.01), so ``tau = 0.05``; about 2 % of seeds do
    not converge and leak more (6 % in an earlier design), which ``rho = 0.1`` absorbs. Control
    and broken layers leak 0.42–0.72 (median 0.70), so ``tau + delta = 0.30`` sits well below
    every one of them.
    ``n_seeds`` defaults to :func:`min_num_seeds_for_sign_test` (9 for the defaults).
    """

    tau: float = 0.05
    delta: float = 0.25
    robustness: float = 0.1
    false_fail_rate: float = 1e-3
    false_pass_rate: float = 1e-3
    n_seeds: int | None = None

    def __post_init__(self) -> None:
        _check_rates(self.robustness, self.false_fail_rate, self.false_pass_rate)
        if self.delta <= 0:
            raise ValueError(f"delta must be > 0, got {self.delta}")
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

    def to_json(self) -> dict[str, float | int]:
        return {"tau": self.tau, "delta": self.delta, "robustness": self.robustness,
                "false_fail_rate": self.false_fail_rate, "false_pass_rate": self.false_pass_rate,
                "n_seeds": self.seeds, "count_threshold": self.threshold}

    def describe(self) -> str:
        return (f"false-fail rate {self.false_fail_rate:g} if ≤{self.robustness:.0%} of seeds leak "
                f"> τ={self.tau:g}, false-pass rate {self.false_pass_rate:g} for leakage "
                f"≥ τ+Δ={self.tau + self.delta:g} in ≥{1 - self.robustness:.0%} of seeds")


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

    @property
    def median_leakage(self) -> float:
        return _nan_high_median(self.leakage)

    def text(self) -> str:
        """One line: outcome, median leakage, counts and the contract."""
        n = len(self.leakage)
        line = (f"label removed: {self.outcome} — leakage {self.median_leakage:+.3f} macro-F1 over "
                f"random latents (median of {n} seeds; {self.n_leaking} of {n} above "
                f"{self.contract.threshold:g}, fail at ≥{self.fail_count}, p={self.p_value:.2g}")
        if self.control_leakage is None:
            line += "; no control arm, validity not checked"
        else:
            line += (f"; control leakage {_nan_high_median(self.control_leakage, -1):+.3f}, "
                     f"{self.control_n_blind} of {n} control seeds below "
                     f"{self.contract.tau + self.contract.delta:g}")
        return line + f"; {self.contract.describe()})"

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.outcome, "leakage": _json_floats(self.leakage),
            "median_leakage": _json_float(self.median_leakage), "n_leaking": self.n_leaking,
            "fail_count": self.fail_count, "p_value": self.p_value,
            "control_leakage": None if self.control_leakage is None
            else _json_floats(self.control_leakage),
            "control_median_leakage": None if self.control_leakage is None
            else _json_float(_nan_high_median(self.control_leakage, -1)),
            "control_n_blind": self.control_n_blind, "control_p_value": self.control_p_value,
            "contract": self.contract.to_json(),
        }


def label_removal_verdict(leakage: Sequence[float], control_leakage: Sequence[float] | None = None,
                          contract: Contract | None = None) -> LabelRemovalVerdict:
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
    if n < contract.min_seeds:
        raise ValueError(f"{n} seeds are too few for this contract; at least "
                         f"{contract.min_seeds} are needed")
    k = fail_count_for_sign_test(n, robustness=contract.robustness,
                                 false_fail_rate=contract.false_fail_rate)
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
        None if control is None else tuple(float(v) for v in control), n_blind, control_p)


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


# ---------------------------------------------------------------------------------------------
# Model-level API

Embed = Callable[[int], tuple[Any, Any]]


@dataclass(frozen=True)
class LabelRemovalResult:
    """The verdict of :func:`assert_label_removed` and the probe scores behind it, per seed."""

    verdict: LabelRemovalVerdict
    seeds: tuple[int, ...]
    scores: tuple[Any, ...] = field(repr=False)  # experiment.run.SeedScores per seed

    @property
    def outcome(self) -> Outcome:
        return self.verdict.outcome

    def summary(self) -> str:
        return self.verdict.text()


def assert_label_removed(embed: Embed, *, seeds: Sequence[int] | None = None,
                         control: Embed | None = None, contract: Contract | None = None,
                         probe: ProbeConfig | None = None,
                         secondary_probe: ProbeConfig | None = None) -> LabelRemovalResult:
    """Assert that a user's model removes the label from its latents, at stated error rates.

    ``embed(seed) -> (latents, labels)`` trains the user's model with that seed (reversal in
    place) and returns latents ``(n, d)`` of cells, ideally cells not used in training, with
    their integer labels ``(n,)``. ``control``, optional, does the same without reversal; with
    it, a probe that cannot see the label even in the control makes the verdict ``invalid``
    rather than ``pass``. Seeds default to ``range(contract.seeds)``.

    Every seed is scored like the reference experiment: the same probe (standardised
    ``LogisticRegression`` by default) on the same stratified split of the returned cells, for
    the latents, Gaussian random latents of the same shape, and row-shuffled latents. The
    verdict is :func:`label_removal_verdict` with the module contract: a model whose leakage is
    ``<= tau`` in all but ``rho`` of seeds raises with probability ``<= false_fail_rate``; one
    that leaks ``>= tau + delta`` in ``1 - rho`` of seeds returns with probability
    ``<= false_pass_rate``.

    Returns the :class:`LabelRemovalResult` on ``pass``; raises ``AssertionError`` with the
    verdict text on ``fail`` or ``invalid``.
    """
    from grl_props.experiment.run import score_seed  # the experiment imports stats lazily

    contract = contract or Contract()
    probe = probe or ProbeConfig()
    seeds = tuple(int(s) for s in (range(contract.seeds) if seeds is None else seeds))
    scores = []
    for seed in seeds:
        latents, labels = _as_arrays(embed(seed), "embed", seed)
        arms = {"reversal": latents}
        if control is not None:
            control_latents, control_labels = _as_arrays(control(seed), "control", seed)
            if not np.array_equal(control_labels, labels):
                raise ValueError(f"control({seed}) must return the same cells and labels as "
                                 f"embed({seed})")
            arms["control"] = control_latents
        scores.append(score_seed(seed, arms, labels, probe, secondary_probe))
    verdict = label_removal_verdict(
        [s.leakage() for s in scores],
        None if control is None else [s.leakage("control") for s in scores], contract)
    result = LabelRemovalResult(verdict, seeds, tuple(scores))
    if verdict.outcome != "pass":
        raise AssertionError(verdict.text())
    return result


def _as_arrays(pair: Any, name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        latents, labels = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name}({seed}) must return (latents, labels), got "
                         f"{type(pair).__name__}") from None
    latents = _to_numpy(latents).astype(np.float64)
    labels = _to_numpy(labels)
    if latents.ndim != 2 or labels.ndim != 1 or len(latents) != len(labels):
        raise ValueError(f"{name}({seed}) must return latents (n, d) and labels (n,), got shapes "
                         f"{latents.shape} and {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name}({seed}) labels must be integers, got {labels.dtype}")
    return latents, labels.astype(np.int64)


def _to_numpy(x: Any) -> np.ndarray:
    detach = getattr(x, "detach", None)
    if callable(detach):
        x = detach().cpu().numpy()
    return np.asarray(x)

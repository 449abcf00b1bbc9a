"""Post-hoc probes: how much of the label can a fresh classifier read from frozen latents?

Per seed, one stratified split of the probe cells: a probe is fitted on one half and scored on
the other, held-out half (Elazar & Goldberg 2018: judge removal only with fresh probes on
held-out data). Features are standardised on the training half. Two probe families, matching the
two adversary families of the experiment: ``logistic`` (``LogisticRegression``, a linear guard as
in INLP / LEACE) and ``mlp`` (``MLPClassifier``, one hidden layer: non-linear leakage).

Measures, all on the held-out half:

* **usable information** (predictive V-information, Xu et al., ICLR 2020), in bits:
  ``H(Y) - CE(probe)``, where ``H(Y)`` is the cross-entropy of the constant predictor that
  outputs the training half's class frequencies, and ``CE(probe)`` the probe's cross-entropy.
  It reads weak leakage that an arg-max never acts on; it is negative when the probe overfits;
* macro-F1 (the seed thread's headline: accuracy misleads under class imbalance), per-class F1,
  balanced accuracy, one-vs-rest AUC;
* the **linear guard test**, probe-free (:func:`linear_guard_test`): no linear classifier beats
  the constant predictor iff the class-conditional means of the latents coincide (LEACE, Belrose
  et al. 2023); Pillai's trace of the latents against the one-hot label and its chi-square
  p-value test exactly that.

Leakage of an arm is a measure on its latents minus the same measure, same probe and split, on
the same latents with rows permuted against the labels (:func:`score_seed`'s ``shuffled`` arms):
the permutation null, which has the arm's own marginal distribution, so a probe's overfitting
cancels. scikit-learn estimators and metrics, scipy for the chi-square tail.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.stats import chi2
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from grl_props.seeding import stream_seed

__all__ = [
    "MEASURES",
    "PROBE_NAMES",
    "LinearGuard",
    "ProbeConfig",
    "ProbeScore",
    "SeedScores",
    "linear_guard_test",
    "score_probe",
    "score_seed",
    "split_indices",
]

ProbeName = Literal["logistic", "mlp"]
Measure = Literal["usable_information_bits", "macro_f1", "auc_ovr"]
PROBE_NAMES: tuple[ProbeName, ...] = ("logistic", "mlp")
#: Per-seed measures a leakage can be taken in (``SeedScores.leakage``).
MEASURES: tuple[Measure, ...] = ("usable_information_bits", "macro_f1", "auc_ovr")

# Random streams of one seed (``seeding.stream_seed``): the split, the permutation, the probe.
_SPLIT_STREAM, _SHUFFLE_STREAM, _PROBE_STREAM = 2, 4, 5


@dataclass(frozen=True)
class ProbeConfig:
    """Which probe: ``logistic`` or ``mlp`` (and the MLP's width and iterations)."""

    name: ProbeName = "logistic"
    mlp_hidden: int = 16
    mlp_max_iter: int = 300

    def __post_init__(self) -> None:
        if self.name not in PROBE_NAMES:
            raise ValueError(f"probe name must be one of {', '.join(PROBE_NAMES)}, "
                             f"got {self.name!r}")

    @property
    def description(self) -> str:
        """What the probe is, in words (for verdict lines and reports)."""
        if self.name == "logistic":
            return "logistic-regression probe"
        return f"MLP probe ({self.mlp_hidden} hidden units)"


@dataclass(frozen=True)
class ProbeScore:
    """Held-out scores of one probe on one set of latents (``nan`` everywhere for non-finite
    latents)."""

    usable_information_bits: float
    cross_entropy_bits: float
    prior_entropy_bits: float
    macro_f1: float
    per_class_f1: tuple[float, ...]
    balanced_accuracy: float
    auc_ovr: float

    def to_json(self) -> dict:
        return {"usable_information_bits": _json(self.usable_information_bits),
                "cross_entropy_bits": _json(self.cross_entropy_bits),
                "prior_entropy_bits": _json(self.prior_entropy_bits),
                "macro_f1": _json(self.macro_f1),
                "per_class_f1": [_json(v) for v in self.per_class_f1],
                "balanced_accuracy": _json(self.balanced_accuracy), "auc_ovr": _json(self.auc_ovr)}


def split_indices(labels: np.ndarray, test_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / held-out indices, a pure function of ``(labels, seed)``.

    Any label values work (negative, gaps). Stratification needs every class twice; with a
    class seen once the split is not stratified (that class then lands in one half only).
    """
    labels = np.asarray(labels)
    idx = np.arange(len(labels))
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 else None
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                   stratify=stratify)
    return train, test


def _estimator(config: ProbeConfig, seed: int):
    if config.name == "logistic":
        clf = LogisticRegression(max_iter=1000, random_state=seed)
    else:
        clf = MLPClassifier(hidden_layer_sizes=(config.mlp_hidden,), max_iter=config.mlp_max_iter,
                            random_state=seed)
    return make_pipeline(StandardScaler(), clf)


def score_probe(latents: np.ndarray, labels: np.ndarray, split: tuple[np.ndarray, np.ndarray],
                config: ProbeConfig, seed: int) -> ProbeScore:
    """Fit the probe on ``split[0]``, score it on ``split[1]``.

    Usable information: ``H(Y) - CE`` in bits, both cross-entropies on the held-out half; the
    constant predictor's class frequencies come from the training half (a class absent there
    gets half a count, so no held-out cell costs infinitely many bits); the probe's
    probabilities are clipped at ``1e-12``. Non-finite latents cannot be probed; they score
    ``nan`` everywhere (callers decide what a ``nan`` means; the verdict counts it as leakage).
    """
    train, test = split
    classes = np.unique(labels)
    y_train, y = labels[train], labels[test]
    if not np.isfinite(latents).all():
        nan = float("nan")
        return ProbeScore(nan, nan, nan, nan, tuple(nan for _ in classes), nan, nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = _estimator(config, seed).fit(latents[train], y_train)
    proba = np.zeros((len(test), len(classes)))
    proba[:, np.searchsorted(classes, model.classes_)] = model.predict_proba(latents[test])
    column = np.searchsorted(classes, y)
    cross_entropy = float(-np.mean(np.log2(np.clip(proba[np.arange(len(y)), column], 1e-12, 1))))
    counts = np.array([np.sum(y_train == c) for c in classes], dtype=float)
    prior = np.where(counts > 0, counts, 0.5) / np.where(counts > 0, counts, 0.5).sum()
    prior_entropy = float(-np.mean(np.log2(prior[column])))
    pred = classes[np.argmax(proba, axis=1)]
    per_class = f1_score(y, pred, labels=classes, average=None, zero_division=0.0)
    try:
        auc = (roc_auc_score(y, proba[:, 1]) if len(classes) == 2
               else roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    except ValueError:  # a class missing from the held-out half
        auc = float("nan")
    return ProbeScore(prior_entropy - cross_entropy, cross_entropy, prior_entropy,
                      float(np.mean(per_class)), tuple(float(v) for v in per_class),
                      float(balanced_accuracy_score(y, pred)), float(auc))


@dataclass(frozen=True)
class LinearGuard:
    """Probe-free linear check: do the class-conditional means of the latents coincide?

    ``pillai_trace``: the sum of squared canonical correlations between the latents and the
    one-hot label (0 iff the class means coincide in the sample); ``p_value``: a test of equal
    class means, ``(n - 1 - (d + K) / 2) * trace`` against chi-square with ``d (K - 1)`` degrees
    of freedom (Bartlett's multiplier applied to Pillai's trace; since the trace is at most
    ``-ln`` of Wilks' lambda, the p-value is conservative); small means a linear classifier can
    beat the constant predictor. The test assumes the classes share one
    covariance: latents whose spread depends on the class (non-linear leakage) can make the
    p-value small without a difference in means. Reported, never judged.
    """

    pillai_trace: float
    p_value: float

    def to_json(self) -> dict:
        return {"pillai_trace": _json(self.pillai_trace), "p_value": _json(self.p_value)}


def linear_guard_test(latents: np.ndarray, labels: np.ndarray) -> LinearGuard:
    """:class:`LinearGuard` of ``latents`` (n, d) against integer ``labels`` (n,).

    Latent directions without variance are dropped (they carry no label); non-finite latents
    give ``nan``.
    """
    z = np.asarray(latents, dtype=np.float64)
    classes, y = np.unique(labels, return_inverse=True)
    if not np.isfinite(z).all() or len(classes) < 2:
        return LinearGuard(float("nan"), float("nan"))
    n = len(y)
    onehot = np.eye(len(classes))[y][:, 1:]
    zc, yc = z - z.mean(axis=0), onehot - onehot.mean(axis=0)
    # Orthonormal bases of both centred column spaces: the singular values of Qz' Qy are the
    # canonical correlations.
    qz = _orthonormal_basis(zc)
    qy = _orthonormal_basis(yc)
    if qz.shape[1] == 0:
        return LinearGuard(0.0, 1.0)
    trace = float(np.sum((qz.T @ qy) ** 2))
    d, k = qz.shape[1], qy.shape[1] + 1
    statistic = (n - 1 - 0.5 * (d + k)) * trace
    return LinearGuard(trace, float(chi2.sf(statistic, d * (k - 1))))


def _orthonormal_basis(x: np.ndarray) -> np.ndarray:
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    keep = s > s.max(initial=0.0) * 1e-9 if len(s) else s > 0
    return u[:, keep]


# ---------------------------------------------------------------------------------------------
# One seed: every arm, its permutation null, both probes


@dataclass(frozen=True)
class SeedScores:
    """Scores of one seed: per probe name, per arm (and ``shuffled <arm>``), a :class:`ProbeScore`;
    per arm, the :class:`LinearGuard`."""

    seed: int
    probes: Mapping[str, Mapping[str, ProbeScore]]
    linear_guard: Mapping[str, LinearGuard] = field(default_factory=dict)

    def leakage(self, arm: str = "reversal", probe: str = "logistic",
                measure: Measure = "usable_information_bits") -> float:
        """``measure`` of ``probe`` on ``arm`` minus on ``arm`` with rows permuted against the
        labels (same split, same probe seed): leakage over the permutation null."""
        scores = self.probes[probe]
        return float(getattr(scores[arm], measure) - getattr(scores[f"shuffled {arm}"], measure))

    def to_json(self) -> dict:
        return {"seed": self.seed,
                "probes": {p: {a: s.to_json() for a, s in arms.items()}
                           for p, arms in self.probes.items()},
                "linear_guard": {a: g.to_json() for a, g in self.linear_guard.items()}}


def score_seed(seed: int, latents: Mapping[str, np.ndarray], labels: np.ndarray,
               probes: tuple[ProbeConfig, ...], *, test_fraction: float = 0.5,
               reported_arms: tuple[str, ...] = ("reversal",), guard: bool = True) -> SeedScores:
    """Score the arms of one seed with the probes, each against its permutation null.

    ``latents`` maps arm name -> (n, d) latents of the same n cells as ``labels``. Each arm is
    also scored with its rows permuted against the labels (``"shuffled <arm>"``). The first probe
    (the judged one) scores every arm; the others (reported only) score ``reported_arms``. One
    split (``test_fraction`` of the cells held out), one permutation and one probe seed serve
    every arm and probe, all drawn from ``seed``. ``guard=False`` skips the linear guard test.
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    arms = {arm: np.asarray(z, dtype=np.float64) for arm, z in latents.items()}
    order = np.random.default_rng(stream_seed(seed, _SHUFFLE_STREAM)).permutation(len(labels))
    for arm in list(arms):
        arms[f"shuffled {arm}"] = arms[arm][order]
    split = split_indices(labels, test_fraction, stream_seed(seed, _SPLIT_STREAM) % 2**32)
    probe_seed = stream_seed(seed, _PROBE_STREAM) % 2**32
    scores: dict[str, dict[str, ProbeScore]] = {}
    for i, probe in enumerate(probes):
        chosen = {a: z for a, z in arms.items()
                  if i == 0 or a.removeprefix("shuffled ") in reported_arms}
        scores[probe.name] = {a: score_probe(z, labels, split, probe, probe_seed)
                              for a, z in chosen.items()}
    guards = {a: linear_guard_test(z, labels) for a, z in arms.items()
              if guard and not a.startswith("shuffled ")}
    return SeedScores(seed, scores, guards)


def _json(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)

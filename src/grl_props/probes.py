"""Post-hoc probes: can a fresh classifier read the label from frozen latents?

A probe is fitted on one stratified half of the probe cells and scored on the other, held-out
half (Elazar & Goldberg 2018: judge removal only with fresh probes on held-out data). Features
are standardised on the training half. Primary probe: ``LogisticRegression`` (a linear guard,
as in INLP / LEACE); secondary: a small ``MLPClassifier`` (stricter: non-linear leakage).
Primary metric: macro-F1 (accuracy misleads under class imbalance); also per-class F1,
balanced accuracy and one-vs-rest AUC. scikit-learn estimators and metrics only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["ProbeConfig", "ProbeScore", "split_indices", "score_probe"]

ProbeName = Literal["logistic", "mlp"]


@dataclass(frozen=True)
class ProbeConfig:
    """Which probe, and how the probe cells are split."""

    name: ProbeName = "logistic"
    test_fraction: float = 0.5
    mlp_hidden: int = 16
    mlp_max_iter: int = 300


@dataclass(frozen=True)
class ProbeScore:
    """Held-out scores of one probe on one set of latents."""

    macro_f1: float
    per_class_f1: tuple[float, ...]
    balanced_accuracy: float
    auc_ovr: float

    def to_json(self) -> dict:
        return {"macro_f1": self.macro_f1, "per_class_f1": list(self.per_class_f1),
                "balanced_accuracy": self.balanced_accuracy, "auc_ovr": self.auc_ovr}


def split_indices(labels: np.ndarray, test_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / held-out indices, a pure function of ``(labels, seed)``."""
    idx = np.arange(len(labels))
    stratify = labels if np.bincount(labels).min() >= 2 else None
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                   stratify=stratify)
    return train, test


def _estimator(config: ProbeConfig, seed: int):
    if config.name == "logistic":
        clf = LogisticRegression(max_iter=1000, random_state=seed)
    elif config.name == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(config.mlp_hidden,), max_iter=config.mlp_max_iter,
                            random_state=seed)
    else:
        raise ValueError(f"probe name must be 'logistic' or 'mlp', got {config.name!r}")
    return make_pipeline(StandardScaler(), clf)


def score_probe(latents: np.ndarray, labels: np.ndarray, split: tuple[np.ndarray, np.ndarray],
                config: ProbeConfig, seed: int) -> ProbeScore:
    """Fit the probe on ``split[0]``, score it on ``split[1]``.

    Non-finite latents cannot be probed; they score ``nan`` everywhere (callers decide what a
    ``nan`` means; the verdict counts it as leakage).
    """
    train, test = split
    classes = np.unique(labels)
    if not np.isfinite(latents).all():
        nan = float("nan")
        return ProbeScore(nan, tuple(nan for _ in classes), nan, nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = _estimator(config, seed).fit(latents[train], labels[train])
    pred = model.predict(latents[test])
    y = labels[test]
    per_class = f1_score(y, pred, labels=classes, average=None, zero_division=0.0)
    try:
        proba = model.predict_proba(latents[test])
        if len(classes) == 2:
            auc = roc_auc_score(y, proba[:, 1])
        else:
            auc = roc_auc_score(y, proba, multi_class="ovr", labels=model.classes_)
    except ValueError:  # a class missing from the held-out half
        auc = float("nan")
    return ProbeScore(float(np.mean(per_class)), tuple(float(v) for v in per_class),
                      float(balanced_accuracy_score(y, pred)), float(auc))

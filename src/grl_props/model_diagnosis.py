"""Is it the layer, the training, or the test? — for a user's own model, from its history.

:func:`diagnose_model` weighs the hypotheses of :mod:`grl_props.diagnosis` for a model trained
by ``embed(seed)``, with the same rule and sentences, from what the user gives:

* the final latents and labels (required) — the verdict, scored as
  :func:`~grl_props.label_removal.assert_label_removed` scores it;
* a :class:`TrainingHistory` returned as a third item — the adversary's loss per step (with its
  chance level) and latents of the same cells at checkpoints — for the convergence and
  fooled-adversary findings;
* ``control`` — the blind-experiment finding;
* ``adversary`` (its family, ``"linear"`` or ``"mlp"``) — whether the judged probe is stronger
  than the adversary;
* ``layer`` (the GRL, a class, instance or spec) — the core properties, decisive when one fails
  (then ``embed`` is never called).

What it was not given, it says it could not judge, by name; it never guesses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from grl_props.diagnosis import Diagnosis, Evidence, Finding, layer_finding, weigh
from grl_props.families import ADVERSARY_FAMILIES, DEFAULT_ADVERSARY, JUDGED_PROBE
from grl_props.label_removal import LabelRemovalResult, judged_for
from grl_props.probes import ProbeConfig, SeedScores, score_seed
from grl_props.sign_test import Contract, label_removal_verdict
from grl_props.user_model import (
    Embed,
    EmbedOutputError,
    arms_of_seed,
    jobs,
    other_probe,
    per_seed_results,
    probe_config,
    to_numpy,
)

__all__ = ["TrainingHistory", "diagnose_model", "one_hot_bce_chance"]



@dataclass(frozen=True)
class TrainingHistory:
    """What one seed's training recorded, for :func:`diagnose_model`.

    ``adversary_loss``: the adversary's loss at each step (or each record), in nats, as the
    adversary saw it; ``adversary_chance``: that loss for an adversary at chance (default: the
    label entropy H(Y) of the returned labels, right for cross-entropy; for CellCap's BCE against
    one-hot labels use :func:`one_hot_bce_chance`); ``loss_name`` names it in the evidence;
    ``checkpoints``: step -> latents ``(n, d)`` of the *same cells* as the final latents;
    ``steps``: the number of training steps (labels the final point of the trend).
    """

    adversary_loss: Sequence[float] = ()
    adversary_chance: float | None = None
    loss_name: str = "cross-entropy"
    checkpoints: Mapping[int, Any] = field(default_factory=dict)
    steps: int | None = None


def one_hot_bce_chance(labels: Any) -> float:
    """Binary cross-entropy per element (nats) of an adversary at chance against one-hot labels:
    the mean over classes of the binary entropy of each class's frequency (0.437 nats for
    0.75 / 0.15 / 0.10)."""
    counts = np.bincount(np.asarray(labels).astype(np.int64))
    p = counts[counts > 0] / counts.sum()
    q = 1.0 - p
    return float(np.mean(-(p * np.log(p) + np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0))))


@dataclass(frozen=True)
class _SeedEvidence:
    scores: SeedScores
    checkpoint_leakage: dict[int, float] | None
    loss_tail: float | None     # mean of the adversary loss over the last fifth
    chance: float | None
    loss_name: str
    steps: int | None


def diagnose_model(embed: Embed, *, control: Embed | None = None,
                   seeds: Sequence[int] | None = None, probe: str | ProbeConfig | None = None,
                   adversary: str | None = None, contract: Contract | None = None,
                   layer: Any = None, n_jobs: int | None = None,
                   max_examples: int = 50) -> Diagnosis:
    """Diagnose label removal in a user's model (module docstring).

    ``embed(seed)`` returns ``(latents, labels)`` or ``(latents, labels, TrainingHistory)``;
    ``control``, ``seeds``, ``probe``, ``contract`` and ``n_jobs`` are those of
    :func:`~grl_props.label_removal.assert_label_removed` (the judged probe defaults to the
    ``adversary`` family's own, else logistic). Returns the :class:`Diagnosis`; its verdict is
    a :class:`~grl_props.label_removal.LabelRemovalResult` (``None`` when a core property of
    ``layer`` failed and nothing was trained). Raises :class:`EmbedError` when ``embed`` or
    ``control`` raised for some seeds.
    """
    if adversary is not None and adversary not in ADVERSARY_FAMILIES:
        raise ValueError(f"adversary must be one of {', '.join(ADVERSARY_FAMILIES)}, got "
                         f"{adversary!r}")
    contract = contract or Contract()
    judged = probe_config(probe if probe is not None else
                           JUDGED_PROBE[adversary or DEFAULT_ADVERSARY])
    seeds = tuple(int(s) for s in (range(contract.seeds) if seeds is None else seeds))
    contract.check_seed_count(len(seeds))
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds must be distinct and 0 or more, got {list(seeds)}")
    n_jobs = jobs(n_jobs)
    skipped = "a core property of the layer fails, so the model was not trained"
    if layer is None:
        layer_part = Finding("layer", None, "no layer given (pass layer=, your GRL class or its "
                                            "spec, to run the core properties)")
    else:
        from grl_props.adapters import load_layer

        layer_part, report = layer_finding(load_layer(layer), seed=0, max_examples=max_examples)
        if layer_part.supported:
            return Diagnosis("layer", (layer_part, Finding("convergence", None, skipped),
                                       Finding("setup", None, skipped)), None, report)
    other = other_probe(judged)
    run = partial(_seed_evidence, embed=embed, control=control, probes=(judged, other))
    per_seed: list[_SeedEvidence] = per_seed_results(run, seeds, n_jobs)
    scores = tuple(e.scores for e in per_seed)
    verdict = label_removal_verdict(
        [s.leakage("reversal", judged.name) for s in scores],
        None if control is None else [s.leakage("control", judged.name) for s in scores],
        contract, judged_for(judged))
    own = JUDGED_PROBE[adversary] if adversary else None
    own_leak = (None if own is None or own == judged.name else
                _high_median([s.leakage("reversal", own) for s in scores]))
    evidence = Evidence(verdict, judged, adversary, own_leak, *_loss_and_chance(per_seed),
                        per_seed[0].loss_name, _trend(per_seed, verdict.median_leakage),
                        control=control is not None)
    convergence, setup, conclusion = weigh(evidence)
    result = LabelRemovalResult(verdict, seeds, scores, judged)
    return Diagnosis(conclusion, (layer_part, convergence, setup), result)


def _loss_and_chance(per_seed: Sequence[_SeedEvidence]) -> tuple[float | None, float | None]:
    """Median over seeds of the adversary's loss over the last fifth (``nan`` when a seed's is
    not finite: diverged) and of its chance level; ``(None, None)`` unless every seed gave one."""
    tails = [e.loss_tail for e in per_seed]
    chances = [e.chance for e in per_seed]
    if any(t is None for t in tails) or any(c is None for c in chances):
        return None, None
    finite = all(math.isfinite(t) for t in tails if t is not None)
    return (float(np.median(np.asarray(tails, dtype=float))) if finite else math.nan,
            float(np.median(np.asarray(chances, dtype=float))))


def _trend(per_seed: Sequence[_SeedEvidence], final: float
           ) -> tuple[tuple[str, float], ...] | None:
    """Median judged leakage at each checkpoint step every seed recorded, then the final one."""
    if any(e.checkpoint_leakage is None for e in per_seed):
        return None
    steps = sorted(set.intersection(*(set(e.checkpoint_leakage or {}) for e in per_seed)))
    if not steps:
        return None
    points = [(f"step {s}", _high_median([(e.checkpoint_leakage or {})[s] for e in per_seed]))
              for s in steps]
    last = per_seed[0].steps
    points.append((f"step {last}" if last is not None else "the end", final))
    return tuple(points)


def _seed_evidence(seed: int, *, embed: Embed, control: Embed | None,
                   probes: tuple[ProbeConfig, ProbeConfig]) -> _SeedEvidence:
    """One seed: train, score the final latents (and control), each checkpoint, the loss."""
    returned, arms, labels = arms_of_seed(seed, embed, control)
    history = _history(returned, seed)
    scores = score_seed(seed, arms, labels, probes)
    checkpoints = None
    loss_tail = chance = None
    if history is not None:
        if history.checkpoints:
            checkpoints = {}
            for step, latents_then in history.checkpoints.items():
                z = to_numpy(latents_then).astype(np.float64)
                if z.ndim != 2 or len(z) != len(labels):
                    raise EmbedOutputError(
                        f"embed({seed}): checkpoint {step} must hold latents (n, d) of the same "
                        f"{len(labels)} cells as the final latents, got shape {z.shape}")
                checkpoints[int(step)] = score_seed(seed, {"reversal": z}, labels, probes[:1],
                                                    guard=False).leakage("reversal",
                                                                         probes[0].name)
        if len(history.adversary_loss):
            curve = np.asarray(history.adversary_loss, dtype=float)
            loss_tail = float(curve[-max(1, curve.size // 5):].mean())
            chance = (history.adversary_chance if history.adversary_chance is not None
                      else _label_entropy_nats(labels))
    return _SeedEvidence(scores, checkpoints, loss_tail, chance,
                         history.loss_name if history else "cross-entropy",
                         history.steps if history else None)


def _history(returned: Any, seed: int) -> TrainingHistory | None:
    if isinstance(returned, tuple) and len(returned) == 3:
        if not isinstance(returned[2], TrainingHistory):
            raise EmbedOutputError(f"embed({seed})'s third item must be a TrainingHistory, "
                                    f"got {type(returned[2]).__name__}")
        return returned[2]
    return None


def _label_entropy_nats(labels: np.ndarray) -> float:
    counts = np.bincount(labels.astype(np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _high_median(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.median(np.where(np.isnan(arr), math.inf, arr)))

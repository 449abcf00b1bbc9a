"""Does training through the layer remove the label? The two entry points of the verdict.

* :func:`check_label_removal` trains the reference experiment (``grl_props.experiment``) through
  a layer under test, on one seed set, and judges it;
* :func:`assert_label_removed` judges a user's own model from ``embed(seed) -> (latents,
  labels)``.

Both score every seed with fresh probes (``grl_props.probes``) and decide with the sign test of
``grl_props.sign_test``.

What is judged (quote this): per seed, the **usable information** (bits) that a fresh probe of
the adversary's family — a logistic regression for the ``linear`` family, a one-hidden-layer
MLP for the ``mlp`` family — reads of the label from the latents of held-out cells, minus what
the same probe reads from the same latents with rows permuted against the labels (the
permutation null). The contract (``sign_test.Contract``, defaults ``tau = 0.1`` bits,
``tau + delta = 0.2`` bits, false-fail and false-pass rates ``1e-3``, 9 seeds) is stated in
those bits: a layer leaking at most ``tau`` in nine seeds of ten fails with probability at most
``1e-3``; one leaking at least ``tau + delta`` in nine seeds of ten passes with probability at
most ``1e-3``; in between, ``sign_test.pass_probability_of_sign_test`` gives the odds. The other
probe's leakage, macro-F1 and AUC per arm, and the probe-free linear guard test are reported
beside it, never judged: a ``pass`` speaks for probes of the judged family only.

Seed set ``seed`` is ``seeding.seed_set(seed, n)``: ``n`` consecutive seeds ``seed * n ... seed
* n + n - 1``, so different ``seed`` values give disjoint, independent seed sets and the same
``seed`` always gives the same verdict.
"""

from __future__ import annotations

import multiprocessing
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

import numpy as np
import torch

from grl_props.adapters import LayerUnderTest, set_alpha
from grl_props.experiment.run import ExperimentConfig, ExperimentRun, run_experiment, train_control
from grl_props.experiment.training import LayerError, SeedLayers, TrainedArm
from grl_props.families import DEFAULT_ADVERSARY, JUDGED_PROBE
from grl_props.probes import ProbeConfig, SeedScores, score_seed
from grl_props.seeding import seed_set
from grl_props.sign_test import Contract, Judged, LabelRemovalVerdict, label_removal_verdict
from grl_props.user_model import (
    Embed,
    EmbedError,
    arms_of_seed,
    jobs,
    other_probe,
    per_seed_results,
    probe_config,
)

__all__ = [
    "EmbedError",
    "LabelRemovalResult",
    "StatisticalError",
    "StatisticalResult",
    "assert_label_removed",
    "check_label_removal",
    "judged_for",
    "seed_layers",
]

Progress = Callable[[str, int, int], None]
Outcome = Literal["pass", "fail", "invalid"]
MEASURE = "usable_information_bits"


class StatisticalError(ValueError):
    """The experiment could not run with this layer; the message is one sentence for the user."""


def judged_for(probe: ProbeConfig) -> Judged:
    """The :class:`~grl_props.sign_test.Judged` description of a verdict judged by ``probe``."""
    return Judged(probe=probe.description, family="linear" if probe.name == "logistic" else "MLP")


# ---------------------------------------------------------------------------------------------
# The layer as users train it


def seed_layers(layer: LayerUnderTest) -> tuple[SeedLayers, str]:
    """How training drives ``layer``, and a note saying how alpha is applied.

    One instance per seed, built once at the schedule's first alpha (0), then moved along the
    DANN schedule through the layer's own alpha path (``adapters.set_alpha``: a ``set_alpha``
    method, a bound alpha, an alpha buffer or attribute). A layer with no alpha path found is
    rebuilt at every step instead, and the note says so. A layer with a fixed alpha (an instance)
    is copied per seed and used as is. Raises :class:`StatisticalError` when building the layer
    or setting its alpha raises.
    """
    if not layer.any_alpha:
        try:
            first, second = layer.build(), layer.build()
        except Exception as exc:
            raise StatisticalError(f"building the layer under test {layer.name} raised "
                                   f"{type(exc).__name__}: {exc}") from exc
        if first is second:
            raise StatisticalError(f"the layer under test {layer.name} is an instance that cannot "
                                   f"be copied, so each seed cannot get its own; give its class")
        return (SeedLayers(make=lambda _alpha: layer.build()),
                f"fixed alpha {layer.default_alpha:g}, no schedule; one copy per seed")
    try:
        trial = layer.build(0.0)
    except Exception as exc:
        raise StatisticalError(f"building the layer under test {layer.name} raised "
                               f"{type(exc).__name__}: {exc}") from exc
    scale = layer.default_alpha
    try:
        how = set_alpha(trial, 0.5)  # a throwaway instance: finds the path, or LookupError
    except LookupError:
        return (SeedLayers(make=layer.build, set_alpha=lambda _old, alpha: layer.build(alpha),
                           scale=scale),
                "no alpha setter or attribute found, so the layer is rebuilt at every step")
    except Exception as exc:
        raise StatisticalError(f"setting the alpha of the layer under test {layer.name} raised "
                               f"{type(exc).__name__}: {exc}") from exc

    def move(instance: Any, alpha: float) -> Any:
        set_alpha(instance, alpha)
        return instance

    return (SeedLayers(make=layer.build, set_alpha=move, scale=scale),
            f"one instance per seed, alpha set through {how}")


# ---------------------------------------------------------------------------------------------
# The control arm is the same for every layer: train it once per config and seed set.

_CONTROL_CACHE: OrderedDict[tuple[ExperimentConfig, tuple[int, ...]], TrainedArm] = OrderedDict()
_CONTROL_CACHE_SIZE = 4


class _BackgroundControl:
    """The control arm, trained in a spawned worker process (nothing of the user's is inherited)
    while the reversal arm trains here. ``result()`` waits for it (and raises if the worker
    died); ``cancel()`` stops the worker, e.g. when the layer under test fails."""

    def __init__(self, config: ExperimentConfig, seeds: Sequence[int]) -> None:
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_train_control_into, daemon=True,
                                         args=(config, list(seeds), send))
        self._process.start()
        send.close()

    def result(self) -> TrainedArm:
        try:
            latents, curves = self._receive.recv()
        finally:
            self._receive.close()
            self._process.join()
        return TrainedArm(torch.from_numpy(latents), {k: torch.from_numpy(v) for k, v in curves.items()})

    def cancel(self) -> None:
        self._process.kill()
        self._process.join()
        self._receive.close()


def _train_control_into(config: ExperimentConfig, seeds: list[int], send: Any) -> None:
    arm = train_control(config, seeds)  # sent as arrays: plain pickling, no shared memory
    send.send((arm.latents.numpy(), {k: v.numpy() for k, v in arm.curves.items()}))
    send.close()


def _control(config: ExperimentConfig, seeds: Sequence[int],
             background: bool) -> TrainedArm | _BackgroundControl | None:
    """The cached control arm; else (``background``) one being trained in a worker process;
    else ``None``: ``run_experiment`` trains it after the reversal arm."""
    key = _control_key(config, seeds)
    if key in _CONTROL_CACHE:
        _CONTROL_CACHE.move_to_end(key)
        return _CONTROL_CACHE[key]
    return _BackgroundControl(config, seeds) if background else None


def _control_key(config: ExperimentConfig, seeds: Sequence[int]
                 ) -> tuple[ExperimentConfig, tuple[int, ...]]:
    """What the control arm depends on: the config without the judged probe and checkpoints."""
    plain = replace(config, judge=None, train=replace(config.training, checkpoints=()))
    return plain, tuple(int(s) for s in seeds)


def _remember(config: ExperimentConfig, run: ExperimentRun) -> None:
    """Keep (a copy of) the control arm of ``run`` for the next layer with the same config."""
    arm = TrainedArm(torch.from_numpy(run.latents["control"].copy()),
                     {k: torch.from_numpy(v.copy()) for k, v in run.curves["control"].items()})
    _CONTROL_CACHE[_control_key(config, run.seeds)] = arm
    while len(_CONTROL_CACHE) > _CONTROL_CACHE_SIZE:
        _CONTROL_CACHE.popitem(last=False)


# ---------------------------------------------------------------------------------------------
# The reference experiment through a layer


@dataclass(frozen=True)
class StatisticalResult:
    """Verdict of :func:`check_label_removal`, with the experiment behind it."""

    verdict: Outcome
    layer_name: str
    seed: int
    detail: LabelRemovalVerdict
    config: ExperimentConfig
    run: ExperimentRun = field(repr=False)
    alpha_note: str = ""

    @property
    def contract(self) -> Contract:
        return self.detail.contract

    @property
    def adversary(self) -> str:
        return self.config.family

    def summary(self) -> str:
        """One line: which probes, outcome, median leakage, the count, the control, and what
        the other probe family reads (reported, never judged)."""
        return self.detail.text() + _reported(self.run.scores, self.config.probes[1])

    def short_summary(self) -> str:
        """:meth:`summary` in brief, for a terminal; the contract goes in
        ``detail.contract_text()``, printed once."""
        return self.detail.short_text() + _reported(self.run.scores, self.config.probes[1],
                                                    brief=True)

    def to_json(self) -> dict[str, Any]:
        """JSON-able: verdict, what was judged, per-seed leakage and scores, contract."""
        out = self.detail.to_json()
        judged, other = self.config.probes
        out.update({
            "layer": self.layer_name, "seed": self.seed, "seeds": list(self.run.seeds),
            "summary": self.summary(), "short_summary": self.short_summary(),
            "contract_text": self.detail.contract_text(), "alpha": self.alpha_note,
            "adversary": self.config.family, "judged_probe": judged.name, "measure": MEASURE,
            "null": "permutation",
            "reported_probe": other.name,
            "reported_leakage": [s.leakage("reversal", other.name) for s in self.run.scores],
            "per_seed": [_seed_json(s, judged.name) for s in self.run.scores],
            "experiment": {"adversary": _adversary_json(self.config),
                           "n_cells": self.config.simulation.n_cells,
                           "n_probe_cells": self.config.simulation.n_probe_cells,
                           "effect_size": self.config.simulation.effect_size,
                           "class_probs": list(self.config.simulation.class_probs),
                           "latent_dim": self.config.model.latent_dim,
                           "hidden_dim": self.config.model.hidden_dim,
                           "steps": self.config.training.steps,
                           "batch_size": self.config.training.batch_size},
        })
        return out


def _adversary_json(config: ExperimentConfig) -> dict[str, Any]:
    a = config.adversary
    assert not isinstance(a, str)
    return {"family": a.family, "hidden_dim": a.hidden_dim, "depth": a.depth,
            "batch_norm": a.batch_norm, "dropout": a.dropout}


def _seed_json(scores: SeedScores, judged: str) -> dict[str, Any]:
    arms = [a for a in scores.probes[judged] if not a.startswith("shuffled ")]
    return {
        "seed": scores.seed,
        "usable_information_bits": {a: _finite(s.usable_information_bits)
                                    for a, s in scores.probes[judged].items()},
        "leakage": {a: _finite(scores.leakage(a, judged)) for a in arms},
        "macro_f1": {a: _finite(s.macro_f1) for a, s in scores.probes[judged].items()},
        "probes": scores.to_json()["probes"],
        "linear_guard": scores.to_json()["linear_guard"],
    }


def _reported(scores: Sequence[SeedScores], other: ProbeConfig, brief: bool = False) -> str:
    """``; not judged: MLP probes read +0.497 bits`` (median over seeds), or nothing."""
    values = [s.leakage("reversal", other.name) for s in scores if other.name in s.probes]
    if not values:
        return ""
    family = "linear" if other.name == "logistic" else "MLP"
    median = float(np.nanmedian(values))
    if brief:
        return f"; {family} probes read {median:+.3f} (not judged)"
    return f"; not judged: {family} probes read {median:+.3f} bits"


def _finite(v: float) -> float | str:
    return v if np.isfinite(v) else str(v)


def check_label_removal(layer: LayerUnderTest, *, seed: int = 0, adversary: str | None = None,
                        config: ExperimentConfig | None = None, contract: Contract | None = None,
                        progress: Progress | None = None,
                        background_control: bool = False) -> StatisticalResult:
    """Train the reference experiment through ``layer`` and judge label removal.

    ``adversary`` (``"linear"`` or ``"mlp"``) picks the family and its measured recipe;
    ``config`` the whole experiment (not both). Contract: see the module docstring and
    :mod:`grl_props.sign_test` (``contract``, default :class:`~grl_props.sign_test.Contract`):
    false-fail rate ``1e-3`` for a layer whose leakage is ``<= tau`` in at least 90 % of seeds,
    false-pass rate ``1e-3`` for one whose leakage is ``>= tau + delta`` in at least 90 % of
    seeds, ``invalid`` when the control arm shows that the experiment cannot see the label.

    The layer is trained as users train it (:func:`seed_layers`). The control arm is trained once
    per config and seed set in this process and reused for further layers; with
    ``background_control`` it trains in a worker process while the reversal arm trains here
    (same numbers, about half the wall time on two free cores). Raises
    :class:`StatisticalError` when the layer raises or returns something other than a
    same-shape float tensor.
    """
    if adversary is not None and config is not None:
        raise ValueError("give adversary or config, not both")
    try:
        config = config or ExperimentConfig(adversary=adversary or DEFAULT_ADVERSARY)
    except ValueError as exc:
        raise StatisticalError(str(exc)) from None
    contract = contract or Contract()
    if seed < 0:
        raise StatisticalError(f"the seed set must be 0 or more, got {seed}")
    seeds = seed_set(seed, contract.seeds)
    driver, alpha_note = seed_layers(layer)
    if driver.set_alpha is not None:
        ramp_to = config.training.alpha_max * driver.scale
        alpha_note = f"DANN ramp 0 → {ramp_to:g}; {alpha_note}"
    control = _control(config, seeds, background_control)
    try:
        run = run_experiment(driver, seeds, config, progress=progress, control=control)
    except BaseException as exc:
        if isinstance(control, _BackgroundControl):
            control.cancel()  # nobody will use it: stop the worker now
        if not isinstance(exc, LayerError):
            raise
        raise StatisticalError(
            f"the layer under test {layer.name} {exc} during training of the reference "
            f"experiment, so label removal cannot be checked") from exc
    if not isinstance(control, TrainedArm):
        _remember(config, run)
    judged = config.judged_probe.name
    detail = label_removal_verdict([s.leakage("reversal", judged) for s in run.scores],
                                   [s.leakage("control", judged) for s in run.scores], contract,
                                   judged_for(config.judged_probe))
    return StatisticalResult(detail.outcome, layer.name, seed, detail, config, run, alpha_note)


# ---------------------------------------------------------------------------------------------
# A user's own model



@dataclass(frozen=True)
class LabelRemovalResult:
    """The verdict of :func:`assert_label_removed` and the probe scores behind it, per seed."""

    verdict: LabelRemovalVerdict
    seeds: tuple[int, ...]
    scores: tuple[SeedScores, ...] = field(repr=False)
    probe: ProbeConfig = ProbeConfig()

    @property
    def outcome(self) -> Outcome:
        return self.verdict.outcome

    def summary(self) -> str:
        return self.verdict.text() + _reported(self.scores, other_probe(self.probe))

    def to_json(self) -> dict[str, Any]:
        """JSON-able: verdict, contract, what was judged, per-seed leakage and scores."""
        out = self.verdict.to_json()
        out.update({"seeds": list(self.seeds), "summary": self.summary(),
                    "judged_probe": self.probe.name, "measure": MEASURE, "null": "permutation",
                    "per_seed": [_seed_json(s, self.probe.name) for s in self.scores]})
        return out


def assert_label_removed(embed: Embed, *, seeds: Sequence[int] | None = None,
                         control: Embed | None = None, contract: Contract | None = None,
                         probe: str | ProbeConfig | None = None,
                         n_jobs: int | None = None) -> LabelRemovalResult:
    """Assert that a user's model removes the label from its latents, at stated error rates.

    ``embed(seed) -> (latents, labels)`` trains the user's model with that seed (reversal in
    place) and returns latents ``(n, d)`` of cells, ideally cells not used in training, with
    their integer labels ``(n,)``. ``control``, optional, does the same without reversal; with
    it, a probe that cannot see the label even in the control makes the verdict ``invalid``
    rather than ``pass``. Seeds default to ``range(contract.seeds)``; too few seeds for the
    contract are refused before ``embed`` is called.

    ``probe`` is the judged probe: ``"logistic"`` (a linear adversary's family; the default,
    that of :data:`~grl_props.families.DEFAULT_ADVERSARY`) or ``"mlp"`` (an MLP adversary's,
    e.g. CellCap's); choose the family of your adversary, or ``"mlp"`` to ask more. Every seed
    is scored like the reference experiment: usable information (bits) of the probe on a
    stratified held-out half of the returned cells, minus the same on the latents with rows
    permuted against the labels; the other probe, macro-F1 and AUC are reported. The
    verdict is :func:`~grl_props.sign_test.label_removal_verdict` with ``contract``: a model
    whose leakage is ``<= tau`` in all but ``rho`` of seeds raises with probability
    ``<= false_fail_rate``; one that leaks ``>= tau + delta`` in ``1 - rho`` of seeds returns
    with probability ``<= false_pass_rate``.

    ``n_jobs`` (:mod:`grl_props.parallel`): ``None`` runs the seeds here one after another
    (unless the environment variable ``GRL_PROPS_JOBS`` names a number, as pytest's
    ``--grl-jobs`` does); an integer runs ``embed(seed)``, ``control(seed)`` and the scoring
    of each seed in joblib workers (loky, or the backend of an enclosing
    ``joblib.parallel_config``: Dask, Ray). Every seed runs with one torch and one BLAS thread,
    so the verdict and every score are the same for any ``n_jobs`` and backend, provided
    ``embed`` itself draws its randomness from ``seed``.

    Returns the :class:`LabelRemovalResult` on ``pass``; raises ``AssertionError`` with the
    verdict text on ``fail`` or ``invalid``; :class:`EmbedError` naming every seed whose
    ``embed`` or ``control`` raised (after all seeds ran; the others' scores are kept on it);
    ``ValueError`` when they return something other than latents and labels.
    """
    contract = contract or Contract()
    judged = probe_config(JUDGED_PROBE[DEFAULT_ADVERSARY] if probe is None else probe)
    seeds = tuple(int(s) for s in (range(contract.seeds) if seeds is None else seeds))
    contract.check_seed_count(len(seeds))
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds must be distinct and 0 or more, got {list(seeds)}")
    n_jobs = jobs(n_jobs)
    score = partial(_score_user_seed, embed=embed, control=control,
                    probes=(judged, other_probe(judged)))
    scores = tuple(per_seed_results(score, seeds, n_jobs))
    verdict = label_removal_verdict(
        [s.leakage("reversal", judged.name) for s in scores],
        None if control is None else [s.leakage("control", judged.name) for s in scores],
        contract, judged_for(judged))
    result = LabelRemovalResult(verdict, seeds, scores, judged)
    if verdict.outcome != "pass":
        raise AssertionError(verdict.text())
    return result


def _score_user_seed(seed: int, *, embed: Embed, control: Embed | None,
                     probes: tuple[ProbeConfig, ProbeConfig]) -> SeedScores:
    """One seed of :func:`assert_label_removed`: train, check the output, score every arm."""
    _, arms, labels = arms_of_seed(seed, embed, control)
    return score_seed(seed, arms, labels, probes)



"""Is it the layer, the training, or the test? — weigh three hypotheses when a verdict fails.

:func:`diagnose` answers the seed thread's triage question ("either gradient reversal is not
working properly, the training has not converged, or something about the setup of this test is
wrong") for the reference experiment, with evidence for each hypothesis:

* **layer** — the core properties run first; a failing one, with its counterexample, is decisive
  (no training is done);
* **convergence** — at the DANN equilibrium the adversary is at chance, its cross-entropy near
  the label entropy H(Y). Over the last fifth of training, an adversary outside 95–105 % of H(Y)
  (still winning, or pushed past chance) has not settled (train longer; alpha, loss scale or
  learning rates); so has judged leakage still falling between the last checkpoints, and a
  training that diverged;
* **setup** — the control arm cannot see the label (the experiment is blind); the judged probe is
  of a stronger family than the adversary, which removed what it could see (the adversary's own
  family reads at most τ); or the adversary is *fooled rather than beaten*: at chance (within 5 %
  of H(Y)) while a fresh probe still reads the label. "Adversary at chance" is never read as
  "label removed": the fresh probe decides.

The conclusion is ``layer`` when a core property fails (or the layer cannot be trained through);
``none`` only when the verdict passes; otherwise ``setup`` for a blind control or a stronger
probe family (more training cannot help), else ``convergence`` when the game has not settled,
else ``setup`` for a fooled adversary. A failing verdict with none of these signs is put down to
the training (``convergence``), and the evidence says that nothing else explained it — unless
there is no training history to weigh (a user's model, :mod:`grl_props.model_diagnosis`), where
the conclusion is ``unknown`` and says what to record.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from grl_props.adapters import LayerUnderTest
from grl_props.experiment.run import ExperimentConfig
from grl_props.experiment.training import LayerError
from grl_props.families import DEFAULT_ADVERSARY, JUDGED_PROBE
from grl_props.label_removal import (
    LabelRemovalResult,
    StatisticalError,
    StatisticalResult,
    check_label_removal,
)
from grl_props.probes import ProbeConfig
from grl_props.properties import all_properties
from grl_props.runner import LayerReport, RunOptions, run_battery
from grl_props.sign_test import LabelRemovalVerdict

__all__ = ["CHECKPOINTS", "Conclusion", "Diagnosis", "Evidence", "Finding", "diagnose", "weigh"]

Hypothesis = Literal["layer", "convergence", "setup"]
Conclusion = Literal["layer", "convergence", "setup", "none", "unknown"]
Progress = Callable[[str, int, int], None]

#: Fractions of training at which the judged leakage is measured to see its trend.
CHECKPOINTS = (0.5, 0.75)
#: The adversary's loss within these fractions of H(Y) is at chance; below, it still wins;
#: above, it is pushed past chance: in both cases the game has not settled.
_AT_CHANCE = (0.95, 1.05)
#: Judged leakage that falls by more than this (bits, median over seeds) between the last two
#: measurements is still falling.
_FALLING = 0.02


@dataclass(frozen=True)
class Finding:
    """One hypothesis, whether the evidence supports it (``None``: could not be judged), and
    the evidence in one or two sentences."""

    hypothesis: Hypothesis
    supported: bool | None
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return {"hypothesis": self.hypothesis, "supported": self.supported,
                "evidence": self.evidence}


@dataclass(frozen=True)
class Diagnosis:
    """The conclusion, the findings behind it, and the verdict (``None`` when not trained)."""

    conclusion: Conclusion
    findings: tuple[Finding, ...]
    verdict: StatisticalResult | LabelRemovalResult | None = field(default=None, repr=False)
    properties: LayerReport | None = field(default=None, repr=False)

    def text(self) -> str:
        """The findings, one per line, and the conclusion line."""
        marks = {True: "supported", False: "not supported", None: "not judged"}
        lines = [f"{f.hypothesis}: {marks[f.supported]} — {f.evidence}" for f in self.findings]
        return "\n".join(lines + [f"conclusion: {self.conclusion} — {_ADVICE[self.conclusion]}"])

    def to_json(self) -> dict[str, Any]:
        return {"conclusion": self.conclusion,
                "findings": [f.to_json() for f in self.findings],
                "verdict": None if self.verdict is None else self.verdict.to_json()}


_ADVICE: dict[str, str] = {
    "layer": "the layer computes the wrong thing; fix the failing property first",
    "convergence": "the adversarial game has not settled; train longer or rebalance alpha, the "
                   "adversary's loss scale and the learning rates",
    "setup": "the test cannot judge this training as set up; see the supported finding",
    "none": "nothing wrong found: the label is removed for the judged probes",
    "unknown": "the label leaks, but without the adversary's losses or latents at checkpoints "
               "the training and the setup cannot be told apart; return a TrainingHistory",
}


def diagnose(layer: LayerUnderTest, *, adversary: str | None = None, probe: str | None = None,
             steps: int | None = None, seed: int = 0, max_examples: int = 50,
             background_control: bool = False, progress: Progress | None = None) -> Diagnosis:
    """Diagnose label removal through ``layer`` on the reference experiment (module docstring).

    ``adversary``: the family (default :data:`~grl_props.families.DEFAULT_ADVERSARY`);
    ``probe``: the judged probe (default: the family's own; another family's shows whether the
    adversary can fight what the probe reads); ``steps``: training steps (default: the family's
    recipe); ``background_control``: train the control arm in a worker process (see
    ``check_label_removal``). The core properties run with ``max_examples`` examples each, in
    child processes of a fork server — a script calling this needs an
    ``if __name__ == "__main__":`` guard. A layer that passes them but raises, or returns a
    wrong shape, in training is concluded ``layer`` with that sentence as evidence; a layer that
    cannot be used at all as given raises :class:`~grl_props.label_removal.StatisticalError`.
    """
    family = adversary or DEFAULT_ADVERSARY
    config = ExperimentConfig(adversary=family, judge=probe)
    train = replace(config.training, checkpoints=CHECKPOINTS)
    if steps is not None:
        train = replace(train, steps=steps)
    config = replace(config, train=train)

    layer_part, report = layer_finding(layer, seed=seed, max_examples=max_examples,
                                       progress=progress)
    if layer_part.supported:
        skipped = "the layer fails a core property, so no training was done"
        return Diagnosis("layer", (layer_part, Finding("convergence", None, skipped),
                                   Finding("setup", None, skipped)), None, report)
    checked = layer_part.evidence

    try:
        result = check_label_removal(layer, seed=seed, config=config, progress=progress,
                                     background_control=background_control)
    except StatisticalError as exc:
        if not isinstance(exc.__cause__, LayerError):
            raise  # the layer as given cannot be used at all: the caller's mistake, not the layer's
        skipped = "the layer could not be trained through"
        return Diagnosis("layer", (Finding("layer", True, f"{checked}, but {exc}"),
                                   Finding("convergence", None, skipped),
                                   Finding("setup", None, skipped)), None, report)
    convergence, setup, conclusion = weigh(_evidence_of_run(result))
    return Diagnosis(conclusion, (Finding("layer", False, checked), convergence, setup),
                     result, report)


@dataclass(frozen=True)
class Evidence:
    """What the convergence and setup findings are weighed on, from any source.

    ``adversary_loss``: median over seeds of the adversary's loss over the last fifth of
    training (``nan``: diverged; ``None``: not given); ``chance``: that loss at chance (H(Y) for
    cross-entropy); ``trend``: ``("step N", median judged leakage)`` at checkpoints, the final one
    last (``None``: no checkpoints given); ``own_family_leakage``: median leakage read by the
    adversary family's own probe when the judged probe is of another family; ``control``:
    whether a control arm was trained.
    """

    verdict: LabelRemovalVerdict
    judged: ProbeConfig
    family: str | None
    own_family_leakage: float | None
    adversary_loss: float | None
    chance: float | None
    loss_name: str
    trend: tuple[tuple[str, float], ...] | None
    control: bool = True


def layer_finding(layer: LayerUnderTest, *, seed: int = 0, max_examples: int = 50,
                  progress: Progress | None = None) -> tuple[Finding, LayerReport]:
    """The layer finding: the core properties (child processes of a fork server), supported
    when one fails or errors, with its first detail lines as evidence."""
    core = all_properties(("core",))
    on_result = ((lambda _result, done, total: progress("core properties", done, total))
                 if progress else None)
    report = run_battery(layer, options=RunOptions(max_examples=max_examples, seed=seed),
                         properties=core, on_result=on_result)
    counts = report.summary()["core"]
    checked = (f"{counts['pass']} of {len(core)} core properties pass"
               + "".join(f", {counts[k]} {k.replace('_', ' ')}" for k in counts
                         if k.startswith("skip") and counts[k]))
    failed = [r for r in report.properties if r.status in ("fail", "error")]
    if not failed:
        return Finding("layer", False, checked), report
    first = failed[0]
    detail = first.detail.strip().splitlines()
    return Finding("layer", True, f"{len(failed)} of {len(core)} core properties fail; "
                                  f"{first.name}: " + " / ".join(detail[:2])), report


def _evidence_of_run(result: StatisticalResult) -> Evidence:
    d, config = result.detail, result.config
    own = JUDGED_PROBE[config.family]
    own_leak = (None if config.judged_probe.name == own else
                _high_median([s.leakage("reversal", own) for s in result.run.scores]))
    steps = sorted(result.run.checkpoint_leakage)
    trend = [(f"step {s}", _high_median(result.run.checkpoint_leakage[s])) for s in steps]
    trend.append((f"step {config.training.steps}", d.median_leakage))
    return Evidence(d, config.judged_probe, config.family, own_leak, _adversary_loss(result),
                    _label_entropy_nats(result), "cross-entropy", tuple(trend))


def weigh(e: Evidence) -> tuple[Finding, Finding, Conclusion]:
    """The convergence and setup findings and the conclusion, for a layer found correct (or
    not judged): the rule of the module docstring."""
    setup, setup_kind = _setup(e)
    convergence = _convergence(e, unexplained=e.verdict.outcome == "fail" and setup_kind is None)
    conclusion: Conclusion
    if e.verdict.outcome == "pass":
        conclusion = "none"
    elif setup_kind in ("blind", "probe"):
        conclusion = "setup"          # more training cannot help
    elif convergence.supported:
        conclusion = "convergence"    # still moving: train longer before blaming the setup
    elif setup_kind == "fooled":
        conclusion = "setup"
    else:
        conclusion = "unknown"        # leaking, and no history to tell training from setup
    return convergence, setup, conclusion


def _label_entropy_nats(result: StatisticalResult) -> float:
    probs = np.asarray(result.config.simulation.class_probs, dtype=float)
    return float(-(probs * np.log(probs)).sum())


def _adversary_loss(result: StatisticalResult) -> float:
    """Median over seeds of the adversary's cross-entropy over the last fifth of training
    (``nan`` when any seed's is not finite: training diverged)."""
    return last_fifth_median(np.asarray(result.run.curves["reversal"]["adversary"], dtype=float))


def last_fifth_median(curves: np.ndarray) -> float:
    """Median over seeds (rows) of each row's mean over its last fifth; ``nan`` when any
    seed's is not finite."""
    tail = curves[:, -max(1, curves.shape[1] // 5):]
    per_seed = tail.mean(axis=1)
    return float(np.median(per_seed)) if np.isfinite(per_seed).all() else math.nan


def _convergence(e: Evidence, *, unexplained: bool) -> Finding:
    unit = e.verdict.judged.unit
    leaking = e.verdict.outcome == "fail"
    parts, signs = [], []
    if e.adversary_loss is None or e.chance is None:
        parts.append("not judged from the adversary's loss: the history has no adversary losses")
        diverged = winning = above = False
    else:
        loss, chance = e.adversary_loss, e.chance
        diverged = not math.isfinite(loss)
        winning, above = loss < _AT_CHANCE[0] * chance, loss > _AT_CHANCE[1] * chance
        at = "H(Y)" if e.loss_name == "cross-entropy" else "chance"
        parts.append(f"adversary {e.loss_name} over the last fifth of training {loss:.3f} nats "
                     f"against {at} = {chance:.3f} ({loss / chance:.0%})")
    if e.trend is None:
        parts.append("not judged from the leakage trend: the history has no checkpoints")
        falling = False
    else:
        medians = [m for _, m in e.trend]
        diverged = diverged or not all(math.isfinite(m) for m in medians)
        falling = len(medians) >= 2 and medians[-2] - medians[-1] > _FALLING
        trend = ", ".join(f"{m:+.3f} at {s}" for s, m in e.trend)
        parts.append(f"judged leakage {trend} ({unit}, median)")
    if diverged:
        signs.append("training diverged (non-finite losses or latents)")
    if winning:
        signs.append("the adversary still reads the label: the game has not settled")
    if above:
        signs.append("the adversary is above chance: the game has not settled")
    if falling:
        signs.append("leakage is still falling: train longer")
    evidence = "; ".join(parts + signs)
    if signs and not leaking:
        evidence += "; the verdict does not fail, so these signs explain no leakage"
    supported: bool | None = leaking and bool(signs)
    if leaking and unexplained and not supported:
        if e.adversary_loss is None and e.trend is None:
            return Finding("convergence", None, evidence)
        supported = True
        evidence += ("; neither the setup nor a fooled adversary explains the leakage, so the "
                     "training is left: it did not remove the label")
    return Finding("convergence", supported, evidence)


def _setup(e: Evidence) -> tuple[Finding, str | None]:
    """The setup finding and which kind supports it (``blind``, ``probe``, ``fooled``) or
    ``None``."""
    d = e.verdict
    unit = d.judged.unit
    if d.outcome == "invalid":
        return (Finding("setup", True,
                        f"the control arm (no reversal) leaks {_high_median(d.control_leakage):+.3f}"
                        f" {unit}, below τ+Δ in {d.control_n_blind} of {len(d.leakage)} seeds: "
                        f"the experiment cannot see the label, so it vouches for nothing"),
                "blind")
    notes = ([f"control leaks {_high_median(d.control_leakage):+.3f} {unit} (the experiment sees "
              f"the label)"] if e.control else
             ["no control arm was given, so a blind experiment is not ruled out"])
    if d.outcome != "fail":
        return Finding("setup", False, "; ".join(notes)), None
    if e.own_family_leakage is not None:
        if e.own_family_leakage <= d.contract.tau:
            return (Finding("setup", True,
                            f"the judged {e.judged.description} is stronger than the "
                            f"{e.family} adversary: the adversary's own family reads "
                            f"{e.own_family_leakage:+.3f} {unit} (≤ τ = {d.contract.tau:g}), "
                            f"the judged probe {d.median_leakage:+.3f}; the adversary removed "
                            f"what it could see — use an adversary of the judged family"),
                    "probe")
        notes.append(f"the adversary's own family also reads {e.own_family_leakage:+.3f} {unit}")
    if e.adversary_loss is None or e.chance is None:
        notes.append("a fooled adversary is not judged: the history has no adversary losses")
    elif _AT_CHANCE[0] * e.chance <= e.adversary_loss <= _AT_CHANCE[1] * e.chance:
        return (Finding("setup", True,
                        f"the adversary is fooled, not beaten: its {e.loss_name} "
                        f"{e.adversary_loss:.3f} nats is at chance ({e.chance:.3f}) while a fresh "
                        f"{e.judged.description} reads {d.median_leakage:+.3f} {unit}; likely "
                        f"causes: batch statistics or dropout in the adversary, an adversary that "
                        f"overfits its training cells"), "fooled")
    return Finding("setup", False, "; ".join(notes)), None


def _high_median(values: Any) -> float:
    """Median with ``nan`` counted as leaking (as the verdict counts it)."""
    arr = np.asarray(values if values is not None else [math.nan], dtype=float)
    return float(np.median(np.where(np.isnan(arr), math.inf, arr)))

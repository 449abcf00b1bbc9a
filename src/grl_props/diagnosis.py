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
the training (``convergence``), and the evidence says that nothing else explained it.
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
from grl_props.label_removal import StatisticalError, StatisticalResult, check_label_removal
from grl_props.properties import all_properties
from grl_props.runner import LayerReport, RunOptions, run_battery

__all__ = ["CHECKPOINTS", "Conclusion", "Diagnosis", "Finding", "diagnose"]

Hypothesis = Literal["layer", "convergence", "setup"]
Conclusion = Literal["layer", "convergence", "setup", "none"]
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
    verdict: StatisticalResult | None = field(default=None, repr=False)
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
    if failed:
        first = failed[0]
        detail = first.detail.strip().splitlines()
        evidence = (f"{len(failed)} of {len(core)} core properties fail; {first.name}: "
                    + " / ".join(detail[:2]))
        skipped = "the layer fails a core property, so no training was done"
        return Diagnosis("layer", (Finding("layer", True, evidence),
                                   Finding("convergence", None, skipped),
                                   Finding("setup", None, skipped)), None, report)

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
    setup, setup_kind = _setup(result)
    convergence = _convergence(result, unexplained=result.verdict == "fail" and setup_kind is None)
    findings = (Finding("layer", False, checked), convergence, setup)
    conclusion: Conclusion
    if result.verdict == "pass":
        conclusion = "none"
    elif setup_kind in ("blind", "probe"):
        conclusion = "setup"          # more training cannot help
    elif convergence.supported:
        conclusion = "convergence"    # still moving: train longer before blaming the setup
    else:
        conclusion = "setup"          # a fooled adversary
    return Diagnosis(conclusion, findings, result, report)


def _label_entropy_nats(result: StatisticalResult) -> float:
    probs = np.asarray(result.config.simulation.class_probs, dtype=float)
    return float(-(probs * np.log(probs)).sum())


def _adversary_loss(result: StatisticalResult) -> float:
    """Median over seeds of the adversary's cross-entropy over the last fifth of training
    (``nan`` when any seed's is not finite: training diverged)."""
    curve = np.asarray(result.run.curves["reversal"]["adversary"], dtype=float)  # (S, records)
    tail = curve[:, -max(1, curve.shape[1] // 5):]
    per_seed = tail.mean(axis=1)
    return float(np.median(per_seed)) if np.isfinite(per_seed).all() else math.nan


def _convergence(result: StatisticalResult, *, unexplained: bool) -> Finding:
    h_y = _label_entropy_nats(result)
    loss = _adversary_loss(result)
    steps = sorted(result.run.checkpoint_leakage)
    medians = [_high_median(result.run.checkpoint_leakage[s]) for s in steps]
    medians.append(result.detail.median_leakage)
    marks = [*(str(s) for s in steps), str(result.config.training.steps)]
    trend = ", ".join(f"{m:+.3f} at step {s}" for m, s in zip(medians, marks, strict=True))
    unit = result.detail.judged.unit
    diverged = not math.isfinite(loss) or not all(math.isfinite(m) for m in medians)
    winning = loss < _AT_CHANCE[0] * h_y
    above = loss > _AT_CHANCE[1] * h_y
    falling = len(medians) >= 2 and medians[-2] - medians[-1] > _FALLING
    leaking = result.verdict == "fail"
    evidence = (f"adversary cross-entropy over the last fifth of training {loss:.3f} nats against "
                f"H(Y) = {h_y:.3f} ({loss / h_y:.0%}); judged leakage {trend} ({unit}, median)")
    if diverged:
        evidence += "; training diverged (non-finite losses or latents)"
    if winning:
        evidence += "; the adversary still reads the label: the game has not settled"
    if above:
        evidence += "; the adversary is above chance: the game has not settled"
    if falling:
        evidence += "; leakage is still falling: train longer"
    supported = leaking and (diverged or winning or above or falling)
    if leaking and unexplained and not supported:
        supported = True
        evidence += ("; neither the setup nor a fooled adversary explains the leakage, so the "
                     "training is left: it did not remove the label")
    return Finding("convergence", supported, evidence)


def _setup(result: StatisticalResult) -> tuple[Finding, str | None]:
    """The setup finding and which kind supports it (``blind``, ``probe``, ``fooled``) or
    ``None``."""
    d, config = result.detail, result.config
    unit = d.judged.unit
    if result.verdict == "invalid":
        return (Finding("setup", True,
                        f"the control arm (no reversal) leaks {_high_median(d.control_leakage):+.3f}"
                        f" {unit}, below τ+Δ in {d.control_n_blind} of {len(d.leakage)} seeds: "
                        f"the experiment cannot see the label, so it vouches for nothing"),
                "blind")
    h_y = _label_entropy_nats(result)
    loss = _adversary_loss(result)
    judged = config.judged_probe
    own = JUDGED_PROBE[config.family]
    notes = [f"control leaks {_high_median(d.control_leakage):+.3f} {unit} (the experiment sees "
             f"the label)"]
    if result.verdict != "fail":
        return Finding("setup", False, "; ".join(notes)), None
    if judged.name != own:
        own_leak = _high_median([s.leakage("reversal", own) for s in result.run.scores])
        if own_leak <= d.contract.tau:
            return (Finding("setup", True,
                            f"the judged {judged.description} is stronger than the "
                            f"{config.family} adversary: the adversary's own family reads "
                            f"{own_leak:+.3f} {unit} (≤ τ = {d.contract.tau:g}), the judged "
                            f"probe {d.median_leakage:+.3f}; the adversary removed what it could "
                            f"see — use an adversary of the judged family"), "probe")
        notes.append(f"the adversary's own family also reads {own_leak:+.3f} {unit}")
    if _AT_CHANCE[0] * h_y <= loss <= _AT_CHANCE[1] * h_y:
        return (Finding("setup", True,
                        f"the adversary is fooled, not beaten: its cross-entropy {loss:.3f} nats "
                        f"is at chance (H(Y) = {h_y:.3f}) while a fresh {judged.description} "
                        f"reads {d.median_leakage:+.3f} {unit}; likely causes: batch statistics "
                        f"or dropout in the adversary, an adversary that overfits its training "
                        f"cells"), "fooled")
    return Finding("setup", False, "; ".join(notes)), None


def _high_median(values: Any) -> float:
    """Median with ``nan`` counted as leaking (as the verdict counts it)."""
    arr = np.asarray(values if values is not None else [math.nan], dtype=float)
    return float(np.median(np.where(np.isnan(arr), math.inf, arr)))

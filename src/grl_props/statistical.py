"""One entry point for the CLI: does training through this layer remove the label?

:func:`check_label_removal` runs the reference experiment (``grl_props.experiment``) on a seed
set, scores the arms with the probes (``grl_props.probes``) and returns the sign-test verdict of
``grl_props.stats`` with its contract. Seed set ``seed`` is ``seed_set(seed, n)``: ``n``
consecutive seeds ``seed * n ... seed * n + n - 1``, so different ``seed`` values give disjoint,
independent seed sets and the same ``seed`` always gives the same verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor

from grl_props.adapters import LayerUnderTest
from grl_props.experiment.run import ExperimentConfig, ExperimentRun, run_experiment, seed_set
from grl_props.experiment.training import LayerError
from grl_props.stats import Contract, LabelRemovalVerdict, label_removal_verdict

__all__ = ["StatisticalError", "StatisticalResult", "check_label_removal"]

Progress = Callable[[str, int, int], None]


class StatisticalError(ValueError):
    """The experiment could not run with this layer; the message is one sentence for the user."""


@dataclass(frozen=True)
class StatisticalResult:
    """Verdict of :func:`check_label_removal`, with the experiment behind it."""

    verdict: Literal["pass", "fail", "invalid"]
    layer_name: str
    seed: int
    detail: LabelRemovalVerdict
    config: ExperimentConfig
    run: ExperimentRun = field(repr=False)
    alpha_note: str = ""

    @property
    def contract(self) -> Contract:
        return self.detail.contract

    def summary(self) -> str:
        """One line: outcome, median leakage, seeds and the contract."""
        return self.detail.text()

    def secondary_leakage(self) -> list[float] | None:
        """Per-seed leakage under the secondary (MLP) probe; reported only, not judged."""
        if not self.run.scores or not self.run.scores[0].secondary:
            return None
        return [s.leakage(secondary=True) for s in self.run.scores]

    def to_json(self) -> dict[str, Any]:
        """JSON-able: verdict, per-seed leakage and statistics, contract, control, probes."""
        out = self.detail.to_json()
        scores = self.run.scores
        out.update({
            "layer": self.layer_name, "seed": self.seed, "seeds": list(self.run.seeds),
            "summary": self.summary(), "alpha": self.alpha_note,
            "probe": self.config.probe.name,
            "secondary_probe": None if self.config.secondary_probe is None
            else self.config.secondary_probe.name,
            "secondary_leakage": self.secondary_leakage(),
            "per_seed": [{"seed": s.seed,
                          "primary": {a: v.to_json() for a, v in s.primary.items()},
                          "secondary": {a: v.to_json() for a, v in s.secondary.items()}}
                         for s in scores],
            "experiment": {"n_cells": self.config.simulation.n_cells,
                           "n_probe_cells": self.config.simulation.n_probe_cells,
                           "effect_size": self.config.simulation.effect_size,
                           "class_probs": list(self.config.simulation.class_probs),
                           "latent_dim": self.config.model.latent_dim,
                           "hidden_dim": self.config.model.hidden_dim,
                           "steps": self.config.train.steps},
        })
        return out


def check_label_removal(layer: LayerUnderTest, *, seed: int = 0, progress: Progress | None = None,
                        config: ExperimentConfig | None = None,
                        contract: Contract | None = None) -> StatisticalResult:
    """Train the reference experiment through ``layer`` and judge label removal.

    Contract: that of :mod:`grl_props.stats` with ``contract`` (default :class:`Contract`):
    false-fail rate ``1e-3`` for a layer whose leakage is ``<= tau`` in at least 90 % of seeds,
    false-pass rate ``1e-3`` for one whose leakage is ``>= tau + delta`` in at least 90 % of
    seeds, ``invalid`` when the control arm shows that the experiment cannot see the label.

    Alpha follows the DANN ramp to ``layer.default_alpha`` (the layer is rebuilt each step); a
    layer with a fixed alpha is built once and used as is. Raises :class:`StatisticalError` when
    the layer raises or returns something other than a same-shape float tensor.
    """
    config = config or ExperimentConfig()
    contract = contract or Contract()
    seeds = seed_set(seed, contract.seeds)
    build, alpha_note = _builder(layer, config)
    try:
        run = run_experiment(build, seeds, config, progress=progress)
    except LayerError as exc:
        raise StatisticalError(
            f"the layer under test {layer.name} {exc} during training of the reference "
            f"experiment, so label removal cannot be checked") from exc
    detail = label_removal_verdict([s.leakage() for s in run.scores],
                                   [s.leakage("control") for s in run.scores], contract)
    return StatisticalResult(detail.outcome, layer.name, seed, detail, config, run, alpha_note)


def _builder(layer: LayerUnderTest, config: ExperimentConfig
             ) -> tuple[Callable[[float], Callable[[Tensor], Tensor]], str]:
    """``build(alpha)`` for the training loop, and a note on how alpha is applied."""
    if not layer.any_alpha:
        try:
            instance = layer.build()
        except Exception as exc:
            raise StatisticalError(f"building the layer under test {layer.name} raised "
                                   f"{type(exc).__name__}: {exc}") from exc
        return (lambda _alpha: instance), f"fixed alpha {layer.default_alpha:g}, no schedule"
    alpha_max = layer.default_alpha * config.train.alpha_max

    def build(alpha: float) -> Callable[[Tensor], Tensor]:
        return layer.build(alpha * layer.default_alpha)

    return build, f"DANN ramp 0 → {alpha_max:g}, layer rebuilt every step"

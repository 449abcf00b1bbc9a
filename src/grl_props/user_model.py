"""A user's own model, seed by seed: what ``embed(seed)`` must return, and running it.

Shared by :func:`grl_props.label_removal.assert_label_removed` and
:func:`grl_props.model_diagnosis.diagnose_model`: ``embed(seed)`` returns ``(latents,
labels)`` (a third item, a training history, is the diagnosis's business), checked and turned
into arrays here; :func:`per_seed_results` runs one call per seed through
:func:`grl_props.parallel.map_seeds` and turns failures into one error naming every seed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from grl_props.parallel import JOBS_VARIABLE, SeedFailure, check_jobs, map_seeds
from grl_props.probes import PROBE_NAMES, ProbeConfig, SeedScores

__all__ = ["Embed", "EmbedError", "EmbedOutputError", "arms_of_seed", "as_latents_and_labels", "jobs",
           "other_probe", "per_seed_results", "probe_config", "to_numpy"]

Embed = Callable[[int], tuple[Any, ...]]


class EmbedError(RuntimeError):
    """``embed`` or ``control`` raised for some seeds; ``scores`` keeps the other seeds' scores.

    ``failures`` lists :class:`~grl_props.parallel.SeedFailure` (seed, exception, where).
    """

    def __init__(self, failures: Sequence[SeedFailure], scores: Sequence[SeedScores]) -> None:
        self.failures = tuple(failures)
        self.scores = tuple(scores)
        lines = "; ".join(f.describe() for f in self.failures)
        super().__init__(
            f"embed or control raised for {len(self.failures)} of "
            f"{len(self.failures) + len(self.scores)} seeds, so no verdict: {lines} (the "
            f"{len(self.scores)} other seeds were scored; their scores are on this error's "
            f".scores)")


def per_seed_results(call: Callable[[int], Any], seeds: Sequence[int],
                     n_jobs: int | None) -> list[Any]:
    """``call(seed)`` for every seed (:func:`~grl_props.parallel.map_seeds`), in seed order.

    Raises ``ValueError`` when an ``embed`` or ``control`` output was malformed (the caller's
    usage), else :class:`EmbedError` naming every seed that raised, after all seeds ran.
    """
    done = dict(map_seeds(call, seeds, n_jobs))
    failures = [done[s] for s in seeds if isinstance(done[s], SeedFailure)]
    results = [done[s] for s in seeds if not isinstance(done[s], SeedFailure)]
    for failure in failures:
        if isinstance(failure.error, EmbedOutputError):
            raise ValueError(str(failure.error))
    if failures:  # the first seed's own exception is the cause, with its traceback
        raise EmbedError(failures, [getattr(r, "scores", r) for r in results]
                         ) from failures[0].error
    return results


class EmbedOutputError(ValueError):
    """``embed`` or ``control`` returned something other than latents and labels."""


def arms_of_seed(seed: int, embed: Embed, control: Embed | None
                 ) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
    """Train one seed: ``(what embed returned, {"reversal": latents[, "control": ...]},
    labels)``, every output checked (:class:`EmbedOutputError` when malformed, or when the
    control's cells and labels are not embed's)."""
    returned = embed(seed)
    latents, labels = as_latents_and_labels(returned, "embed", seed)
    arms = {"reversal": latents}
    if control is not None:
        control_latents, control_labels = as_latents_and_labels(control(seed), "control", seed)
        if not np.array_equal(control_labels, labels):
            raise EmbedOutputError(f"control({seed}) must return the same cells and labels "
                                   f"as embed({seed})")
        arms["control"] = control_latents
    return returned, arms, labels


def jobs(n_jobs: int | None) -> int | None:
    """``n_jobs`` checked; ``None`` becomes ``GRL_PROPS_JOBS`` when that is set."""
    if n_jobs is None and os.environ.get(JOBS_VARIABLE):
        try:
            return check_jobs(int(os.environ[JOBS_VARIABLE]))
        except ValueError:
            raise ValueError(f"{JOBS_VARIABLE} must be a whole number other than 0, got "
                             f"{os.environ[JOBS_VARIABLE]!r}") from None
    return check_jobs(n_jobs)


def probe_config(probe: str | ProbeConfig) -> ProbeConfig:
    if isinstance(probe, ProbeConfig):
        return probe
    if probe not in PROBE_NAMES:
        raise ValueError(f"probe must be one of {', '.join(PROBE_NAMES)}, got {probe!r}")
    return ProbeConfig(name=probe)  # type: ignore[arg-type]


def other_probe(probe: ProbeConfig) -> ProbeConfig:
    """The probe of the other family (reported beside the judged one)."""
    return ProbeConfig(name="mlp" if probe.name == "logistic" else "logistic")


def as_latents_and_labels(pair: Any, name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(latents, labels)`` as float64 and int64 arrays, checked; a third item (a training
    history for ``model_diagnosis.diagnose_model``) is ignored here."""
    if isinstance(pair, tuple) and len(pair) == 3:
        pair = pair[:2]
    try:
        latents, labels = pair
    except (TypeError, ValueError):
        raise EmbedOutputError(f"{name}({seed}) must return (latents, labels), got "
                                f"{type(pair).__name__}") from None
    latents = to_numpy(latents).astype(np.float64)
    labels = to_numpy(labels)
    if latents.ndim != 2 or labels.ndim != 1 or len(latents) != len(labels):
        raise EmbedOutputError(f"{name}({seed}) must return latents (n, d) and labels (n,), "
                                f"got shapes {latents.shape} and {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise EmbedOutputError(f"{name}({seed}) labels must be integers, got {labels.dtype}")
    return latents, labels.astype(np.int64)


def to_numpy(x: Any) -> np.ndarray:
    detach = getattr(x, "detach", None)
    if callable(detach):
        x = detach().cpu().numpy()
    return np.asarray(x)

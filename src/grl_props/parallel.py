"""Run one call per seed, in this process or in worker processes through joblib.

Contract:

* Seeds, not workers, decide every random draw. Each call runs with one torch thread and one
  BLAS/OpenMP thread (``threadpoolctl``) whatever ``n_jobs`` is, so ``n_jobs=None``, ``1``,
  ``2`` and any joblib backend (``joblib.parallel_config(backend="dask")`` with a
  ``distributed.Client``, Ray's ``ray_backend``) give bit-identical results.
* ``n_jobs=None`` runs the calls here, one after another, without pickling anything. An integer
  runs them through :class:`joblib.Parallel` (loky worker processes unless a
  ``joblib.parallel_config`` says otherwise); the callable must then be picklable by
  cloudpickle (lambdas and closures are).
* A call that raises an :class:`Exception` is returned as a :class:`SeedFailure` naming its seed;
  the other calls still run and are returned. A worker process that dies (segfault, killed)
  ends the whole map with joblib's error.

joblib is the engine because it already speaks to every scheduler users have (loky on one
machine, Dask and Ray on clusters); nothing here schedules work by hand.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["JOBS_VARIABLE", "SeedFailure", "check_jobs", "map_seeds"]

# The n_jobs of assert_label_removed calls that give none (pytest's --grl-jobs sets it).
JOBS_VARIABLE = "GRL_PROPS_JOBS"


@dataclass(frozen=True)
class SeedFailure:
    """A call that raised: its seed, the exception, and where it was raised."""

    seed: int
    error: BaseException
    where: str

    def describe(self) -> str:
        """One line: ``seed 3: ValueError: boom (at model.py:12, in fit)``."""
        at = f" (at {self.where})" if self.where else ""
        return f"seed {self.seed}: {type(self.error).__name__}: {self.error}{at}"


def check_jobs(n_jobs: Any) -> int | None:
    """``n_jobs`` as given if it is ``None`` or a non-zero whole number, else ``ValueError``."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None or a whole number other than 0 (joblib's "
                         f"meaning: -1 for every core), got {n_jobs!r}")
    return n_jobs


def map_seeds(call: Callable[[int], Any], seeds: Iterable[int],
              n_jobs: int | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(seed, call(seed) or SeedFailure)`` for every seed, in the order calls finish."""
    seeds = [int(s) for s in seeds]
    n_jobs = check_jobs(n_jobs)
    if n_jobs is None:
        for seed in seeds:
            yield _single_threaded(call, seed)
        return
    from joblib import Parallel, delayed

    tasks = (delayed(_single_threaded)(call, seed, portable=True) for seed in seeds)
    yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks)


def _single_threaded(call: Callable[[int], Any], seed: int,
                     portable: bool = False) -> tuple[int, Any]:
    """``(seed, call(seed))`` with one torch and one BLAS thread; an Exception is returned.

    ``portable``: the result crosses a process boundary, so an exception that cannot be pickled
    is replaced by a ``RuntimeError`` with its type and message.
    """
    from threadpoolctl import threadpool_limits

    from grl_props.testing import torch_threads

    with threadpool_limits(limits=1), torch_threads(1):
        try:
            return seed, call(seed)
        except Exception as exc:  # returned with its seed: the other seeds go on
            error: BaseException = exc
            if portable:
                try:
                    pickle.loads(pickle.dumps(exc))
                except Exception:
                    error = RuntimeError(f"{type(exc).__name__}: {exc}")
            return seed, SeedFailure(seed, error, _where(exc))


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}, in {last.name}"

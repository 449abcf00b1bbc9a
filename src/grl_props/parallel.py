"""Run one call per seed, in this process or in worker processes through joblib.

Contract:

* Seeds, not workers, decide every random draw. Each call runs with one torch thread and one
  BLAS/OpenMP thread (``threadpoolctl``) whatever ``n_jobs`` is, so ``n_jobs=None``, ``1``,
  ``2`` and joblib's process-based backends — loky (the default) and Dask
  (``joblib.parallel_config(backend="dask")`` with a ``distributed.Client``; Ray's joblib
  backend works the same way) — give bit-identical results. The ``threading`` backend is not
  supported (torch's thread count and generator are process-wide, shared by the threads), nor
  ``multiprocessing`` (joblib does not stream its results).
* ``n_jobs=None`` runs the calls here, one after another, without pickling anything. An integer
  runs them through :class:`joblib.Parallel`; the callable must then be picklable by
  cloudpickle. Lambdas, closures and functions of ``__main__`` travel by value; functions of an
  importable module travel by name, so the workers must be able to import that module (a
  remote Dask worker needs your package installed; or call
  ``cloudpickle.register_pickle_by_value(module)``).
* A call that raises an :class:`Exception` is returned as a :class:`SeedFailure` naming its seed;
  the other calls still run and are returned. A worker process that dies (segfault, killed)
  ends the whole map with joblib's error.

joblib is the engine because it already speaks to every scheduler users have (loky on one
machine, Dask and Ray on clusters); nothing here schedules work by hand.
"""

from __future__ import annotations

import os
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
    """``file.py:LINE, in function`` of the deepest frame in the user's own code (not in an
    installed package or in grl-props), else of the deepest frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    ours = os.path.dirname(os.path.abspath(__file__))  # the grl_props package
    own = [f for f in frames if "site-packages" not in f.filename
           and not os.path.abspath(f.filename).startswith(ours)]
    frame = (own or frames)[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}, in {frame.name}"

"""Seeds: independent random streams per experiment seed, and disjoint seed sets.

Every random draw of the statistical half comes from one seed: the simulated data from the seed
itself (``experiment.data.simulate``), everything else (initialisation, mini-batch order,
dropout masks, split, permutation, probe) from its own stream of the seed, so a seed gives the
same numbers alone or stacked with others, in any process, on any number of workers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["seed_set", "stream_seed"]


def stream_seed(seed: int, stream: int) -> int:
    """An independent 63-bit seed for one random stream of one experiment seed."""
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


def seed_set(seed: int, n_seeds: int) -> list[int]:
    """Seed set number ``seed``: ``n_seeds`` consecutive seeds, disjoint from every other set."""
    return list(range(seed * n_seeds, (seed + 1) * n_seeds))

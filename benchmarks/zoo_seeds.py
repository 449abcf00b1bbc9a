"""Vary the Hypothesis seed and count how often the battery misses a zoo bug or flags a correct layer.

Usage: python benchmarks/zoo_seeds.py [SEED ...]   (default: 0 1 2 3; the test suite uses seed 0)

For each seed, runs every property declared to catch each broken zoo layer and every core
property on each correct zoo layer (in-process, default examples). A catch counts only as
``tests/properties/test_zoo.py`` counts it: status ``fail`` (or ``error`` where the entry's bug is
that exception) and a detail matching the entry's evidence; anything else is a miss, printed
with its reason. Catchers that need CUDA are left out where there is no CUDA (and counted
apart). Prints the misses, the false alarms, and one line
``seeds S: N catches checked, M misses (K caught for another reason), F false alarms of C checks``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "properties"))

import torch  # noqa: E402
from test_zoo import NEEDS_CUDA, caught_for_its_bug  # noqa: E402
from zoo import BROKEN, CORRECT  # noqa: E402

from grl_props.adapters import load_layer  # noqa: E402
from grl_props.properties import all_properties, get  # noqa: E402
from grl_props.runner import RunOptions, run_property  # noqa: E402


def main(seeds: list[int]) -> None:
    checked = misses = wrong_reason = false_alarms = correct_checks = cuda_only = 0
    cuda = torch.cuda.is_available()
    for seed in seeds:
        options = RunOptions(isolate=False, seed=seed)
        for entry in BROKEN:
            for name in sorted(entry.caught_by):
                if name in NEEDS_CUDA and not cuda:
                    cuda_only += 1
                    continue
                checked += 1
                result = run_property(load_layer(entry.layer), get(name), options)
                problem = caught_for_its_bug(entry, name, result)
                if problem is not None:
                    misses += 1
                    wrong_reason += result.status in ("fail", "error")
                    print(f"miss: seed {seed} {entry.name} by {name}: {problem[:400]}")
        for correct in CORRECT:
            for prop in all_properties(("core",)):
                correct_checks += 1
                result = run_property(load_layer(correct.layer), prop, options)
                if result.status != "pass":
                    false_alarms += 1
                    print(f"false alarm: seed {seed} {correct.name} {prop.name}: {result.detail[:200]}")
    print(f"seeds {seeds}: {checked} catches checked, {misses} misses ({wrong_reason} caught for "
          f"another reason), {false_alarms} false alarms of {correct_checks} checks"
          + (f"; {cuda_only} CUDA-only catches not run (no CUDA here)" if cuda_only else ""))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [0, 1, 2, 3])

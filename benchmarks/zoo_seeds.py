"""Vary the Hypothesis seed and count how often the battery misses a zoo bug or flags a correct layer.

Usage: python benchmarks/zoo_seeds.py [SEED ...]   (default: 1 2 3; the test suite uses seed 0)

For each seed, runs every property declared to catch each broken zoo layer and every core
property on each correct zoo layer (in-process, default examples), then prints the misses, the
false alarms, and one line ``seeds S: N catches checked, M misses, F false alarms``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "properties"))

from zoo import BROKEN, CORRECT  # noqa: E402

from grl_props.adapters import load_layer  # noqa: E402
from grl_props.properties import all_properties, get  # noqa: E402
from grl_props.runner import RunOptions, run_property  # noqa: E402


def main(seeds: list[int]) -> None:
    checked = misses = false_alarms = 0
    for seed in seeds:
        options = RunOptions(isolate=False, seed=seed)
        for entry in BROKEN:
            for name in sorted(entry.caught_by):
                checked += 1
                result = run_property(load_layer(entry.layer), get(name), options)
                if result.status not in ("fail", "error"):
                    misses += 1
                    print(f"miss: seed {seed} {entry.name} not caught by {name}")
        for entry in CORRECT:
            for prop in all_properties(("core",)):
                result = run_property(load_layer(entry.layer), prop, options)
                if result.status != "pass":
                    false_alarms += 1
                    print(f"false alarm: seed {seed} {entry.name} {prop.name}: {result.detail[:200]}")
    print(f"seeds {seeds}: {checked} catches checked, {misses} misses, {false_alarms} false alarms")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 2, 3])

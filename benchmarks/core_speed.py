"""How long the core tier takes on one layer with the default profile, as ``grl-props check`` runs it.

Usage: python benchmarks/core_speed.py [--contract NAME] [SPEC ...]
(default: the built-in layers under ``reverse``; with ``--contract``, name the SPECs)

Prints, per layer, the wall time of the core tier in child processes (the command's way: one
child per property, forked from the runner's fork server, whose one-off start-up, imports and
strategy warm-up, falls on the first layer) and in-process, then one line per layer:
``core tier: SPEC X.XX s wall, Y.YY s CPU`` (CPU of this process plus the CPU each child reports
for its property: the figure that does not depend on what else the machine runs; the fork
server's own start-up is not in it). The target is at most 30 s on 2 cores.
"""

from __future__ import annotations

import resource
import sys
import time

from grl_props.adapters import default_layers, load_layer
from grl_props.properties import all_properties
from grl_props.runner import RunOptions, run_battery


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def main(args: list[str]) -> None:
    contract = None
    if args[:1] == ["--contract"]:
        contract, args = args[1], args[2:]
    layers = [load_layer(s, contract=contract) for s in args] if args else default_layers()
    core = all_properties(("core",), contract=layers[0].contract)
    options = RunOptions()
    print(f"core properties: {len(core)} (contract {layers[0].contract.name}), "
          f"max_examples={options.max_examples}, seed={options.seed}")
    lines = []
    for layer in layers:
        timings, cpu = {}, {}
        for isolate in (True, False):
            start, cpu_start = time.perf_counter(), _cpu_seconds()
            report = run_battery(layer, options=RunOptions(isolate=isolate), properties=core)
            timings[isolate] = time.perf_counter() - start
            in_children = sum(r.cpu_seconds for r in report.properties) if isolate else 0.0
            cpu[isolate] = _cpu_seconds() - cpu_start + in_children
            statuses = {r.status for r in report.properties}
        print(f"  {layer.name}: isolated {timings[True]:.2f} s, in-process {timings[False]:.2f} s, "
              f"statuses {sorted(statuses)}")
        lines.append(f"core tier: {layer.name} {timings[True]:.2f} s wall, {cpu[True]:.2f} s CPU")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Seed sets in parallel: ``grl-props calibrate`` with one process, two workers, and a local
Dask cluster of two workers, side by side on the same seed sets.

Each run writes a fresh results file in a temporary folder and is timed end to end (wall
clock, workers' start-up included); all three must give the same per-seed numbers (checked and
printed). The last lines are ``speedup: X.XX`` (``--jobs 1`` time / ``--jobs N`` time) and
``speedup (LocalCluster): X.XX``.

    python benchmarks/calibrate_speed.py [--sets 4] [--first-set 1000] [--workers 2]
                                         [--adversary linear|mlp]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from grl_props.calibration import calibrate, read_results

SPEC = "grl_props:GradientReversal"


def _timed(out: Path, **how: object) -> float:
    start = time.perf_counter()
    run = calibrate(SPEC, out=out, **how)  # type: ignore[arg-type]
    if run.failures:
        sys.exit(f"sets failed: {[f.describe() for f in run.failures]}")
    return time.perf_counter() - start


def _numbers(path: Path) -> dict:
    return {r["set"]: (r["verdict"], r["leakage"], r["control"]) for r in read_results([path])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", type=int, default=4)
    parser.add_argument("--first-set", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--adversary", default="linear")
    args = parser.parse_args()
    common = {"sets": args.sets, "first_set": args.first_set, "adversary": args.adversary}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one = _timed(folder / "one.jsonl", jobs=1, **common)
        print(f"--jobs 1: {one:.1f} s for {args.sets} seed sets", flush=True)
        many = _timed(folder / "many.jsonl", jobs=args.workers, **common)
        print(f"--jobs {args.workers}: {many:.1f} s", flush=True)
        from distributed import LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            dask = _timed(folder / "dask.jsonl", scheduler=cluster.scheduler_address, **common)
        print(f"--scheduler (LocalCluster, {args.workers} workers, started before timing): "
              f"{dask:.1f} s", flush=True)
        same = (_numbers(folder / "one.jsonl") == _numbers(folder / "many.jsonl")
                == _numbers(folder / "dask.jsonl"))
        print(f"same verdicts and per-seed leakage in all three: {same}")
    print(f"speedup: {one / many:.2f}")
    print(f"speedup (LocalCluster): {one / dask:.2f}")


if __name__ == "__main__":
    main()

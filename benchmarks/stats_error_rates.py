"""Measure the error rates of the label-removal verdict by varying seeds (TFP style).

Parts (run separately, in parallel processes if you like, then summarise):

* ``reference`` — seed sets ``first .. first + sets - 1`` with the reference layer, the same
  experiment and verdict as ``check_label_removal(layer, seed=k)`` (several sets trained as one
  batch, ``--chunk``; ``--verify`` re-runs the first set through ``check_label_removal`` and
  compares). Records per-seed leakage ``L(s)``, control leakage ``C(s)`` and every verdict. The
  control arm can be limited to the first ``--control-sets`` sets: ``fail`` never depends on it.
* ``broken`` — the same for broken layers (no reversal, zero gradient, detached output); only the
  reversal arm is trained, since ``fail`` never depends on the control arm.
* ``summarize`` — reads the JSON files of the parts and prints (a) the fraction of seeds with
  ``L(s) <= tau`` and with ``C(s) >= 0.5``, (b) the false-fail rate over seed sets with a
  binomial 95 % CI (``scipy.stats.binomtest(k, n).proportion_ci()``), (c) fails per broken layer.

Seed set ``k`` holds seeds ``9k .. 9k + 8`` (``seed_set``): disjoint sets carved out of one long
run of independent seeds (every seed draws its own data, init, split and probe), so verdicts of
different sets are independent.

Example (the README's figures; about 17 and 8 minutes on one core each, run side by side)::

    python benchmarks/stats_error_rates.py reference --sets 200 --verify --out ref.json
    python benchmarks/stats_error_rates.py broken --sets 50 --out broken.json
    python benchmarks/stats_error_rates.py summarize ref.json broken.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from grl_props.adapters import load_layer
from grl_props.experiment import ExperimentConfig, run_experiment, seed_set
from grl_props.statistical import _builder, check_label_removal
from grl_props.stats import Contract, label_removal_verdict

# The broken layers are the ones tests/statistical fails; one definition for both.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "statistical"))
from grl_stats_helpers import detached, no_reversal, zero_gradient  # noqa: E402

BROKEN = {"no_reversal": no_reversal, "zero_gradient": zero_gradient, "detached": detached}


def _config() -> ExperimentConfig:
    return replace(ExperimentConfig(), secondary_probe=None)  # the verdict uses the primary only


def _chunks(first: int, count: int, size: int) -> list[list[int]]:
    sets = list(range(first, first + count))
    return [sets[i:i + size] for i in range(0, len(sets), size)]


def _run_sets(build, sets: list[int], with_control: bool) -> list[dict]:
    """Train the seeds of several seed sets as one batch and judge each set on its own.

    Batching changes nothing per seed (each seed's slice of the stacked model is independent;
    ``stats_speed.py`` shows batched and per-seed latents are identical) — ``--verify`` checks
    one set against ``check_label_removal`` itself.
    """
    contract = Contract()
    n = contract.seeds
    seeds = [s for k in sets for s in seed_set(k, n)]
    run = run_experiment(build, seeds, _config(), with_control=with_control)
    out = []
    for j, k in enumerate(sets):
        scores = run.scores[j * n:(j + 1) * n]
        leakage = [s.leakage() for s in scores]
        control = [s.leakage("control") for s in scores] if with_control else None
        verdict = label_removal_verdict(leakage, control, contract)
        out.append({"set": k, "verdict": verdict.outcome, "leakage": leakage,
                    "control_leakage": control})
    return out


def run_reference(args: argparse.Namespace) -> dict:
    layer = load_layer("grl_props:GradientReversal")
    build, _ = _builder(layer, _config())
    sets: list[dict] = []
    start = time.time()
    for chunk in _chunks(args.first_set, args.sets, args.chunk):
        t = time.time()
        with_control = chunk[0] < args.first_set + args.control_sets
        sets += _run_sets(build, chunk, with_control)
        _save(args.out, {"part": "reference", "sets": sets, "seconds": time.time() - start})
        print(f"sets {chunk[0]}-{chunk[-1]}: {[s['verdict'] for s in sets[-len(chunk):]]} "
              f"({time.time() - t:.1f} s)", file=sys.stderr, flush=True)
    data = {"part": "reference", "sets": sets, "seconds": time.time() - start}
    if args.verify:
        result = check_label_removal(layer, seed=args.first_set, config=_config())
        same = list(result.detail.leakage) == sets[0]["leakage"] and (
            sets[0]["control_leakage"] is None
            or list(result.detail.control_leakage or ()) == sets[0]["control_leakage"])
        data["verified"] = bool(same)
        print(f"verify: check_label_removal(seed={args.first_set}) gives the same per-seed "
              f"leakage as the batched run: {same}")
    return data


def run_broken(args: argparse.Namespace) -> dict:
    out: dict[str, list] = {}
    start = time.time()
    for name in args.layers.split(","):
        build, _ = _builder(load_layer(BROKEN[name]), _config())
        out[name] = []
        for chunk in _chunks(args.first_set, args.sets, args.chunk):
            out[name] += _run_sets(build, chunk, with_control=False)
            _save(args.out, {"part": "broken", "layers": out, "seconds": time.time() - start})
            print(f"{name} sets {chunk[0]}-{chunk[-1]}: "
                  f"{[s['verdict'] for s in out[name][-len(chunk):]]}", file=sys.stderr, flush=True)
    return {"part": "broken", "layers": out, "seconds": time.time() - start}


def _save(path: str | None, data: dict) -> None:
    """Write the part's JSON after every chunk, so an interrupted run keeps what it measured."""
    if path:
        with open(path, "w") as f:
            json.dump(data, f)


def _ci(k: int, n: int) -> str:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95)
    return f"{k}/{n} = {k / n:.4f}, 95% CI [{ci.low:.4f}, {ci.high:.4f}]"


def summarize(paths: list[str]) -> None:
    contract = Contract()
    ref_sets, broken = [], {}
    for path in paths:
        with open(path) as f:
            part = json.load(f)
        if part["part"] == "reference":
            ref_sets += part["sets"]
        else:
            for name, sets in part["layers"].items():
                broken.setdefault(name, []).extend(sets)
    print(f"contract: {contract.to_json()}")
    if ref_sets:
        leak = np.array([v for s in ref_sets for v in s["leakage"]], dtype=float)
        ctl = np.array([v for s in ref_sets for v in (s["control_leakage"] or ())], dtype=float)
        n = len(leak)
        print(f"(a) reference layer, {n} seeds ({len(ref_sets)} disjoint seed sets)")
        print(f"    leakage <= tau={contract.tau}: {_ci(int(np.sum(leak <= contract.tau)), n)}")
        print(f"    leakage quantiles 50/90/95/99/max: "
              f"{np.round(np.nanquantile(leak, [.5, .9, .95, .99, 1]), 3).tolist()}")
        if len(ctl):
            print(f"    control leakage >= 0.5: {_ci(int(np.sum(ctl >= 0.5)), len(ctl))}")
            print(f"    control leakage >= tau+delta={contract.tau + contract.delta}: "
                  f"{_ci(int(np.sum(ctl >= contract.tau + contract.delta)), len(ctl))}")
            print(f"    control leakage quantiles min/1/5/50: "
                  f"{np.round(np.nanquantile(ctl, [0, .01, .05, .5]), 3).tolist()}")
        verdicts = [s["verdict"] for s in ref_sets]
        m = len(verdicts)
        with_control = [s["verdict"] for s in ref_sets if s["control_leakage"] is not None]
        print(f"(b) false-fail rate: {_ci(verdicts.count('fail'), m)} seed sets "
              f"(stated false-fail rate {contract.false_fail_rate:g})")
        if with_control:
            print(f"    sets judged with the control arm: invalid in "
                  f"{_ci(with_control.count('invalid'), len(with_control))}, pass in "
                  f"{with_control.count('pass')}")
    for name, sets in broken.items():
        verdicts = [s["verdict"] for s in sets]
        leak = np.array([v for s in sets for v in s["leakage"]], dtype=float)
        print(f"(c) {name}: fail in {_ci(verdicts.count('fail'), len(verdicts))} seed sets; "
              f"per-seed leakage min {np.nanmin(leak):.3f}, median {np.nanmedian(leak):.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["reference", "broken", "summarize"])
    parser.add_argument("files", nargs="*", help="JSON files to summarise")
    parser.add_argument("--sets", type=int, default=200)
    parser.add_argument("--first-set", type=int, default=0)
    parser.add_argument("--layers", default=",".join(BROKEN))
    parser.add_argument("--chunk", type=int, default=10, help="seed sets trained as one batch")
    parser.add_argument("--control-sets", type=int, default=10**9,
                        help="train the control arm only for the first this-many sets (fail "
                             "never depends on it; it measures control leakage and 'invalid')")
    parser.add_argument("--verify", action="store_true",
                        help="re-run the first set through check_label_removal and compare")
    parser.add_argument("--out", default=None, help="write the part's JSON here")
    args = parser.parse_args(argv)
    print("command: python " + " ".join([sys.argv[0], *sys.argv[1:]]), flush=True)
    if args.part == "summarize":
        summarize(args.files)
        return
    data = run_reference(args) if args.part == "reference" else run_broken(args)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(data, f)
    print(f"{args.part}: {data['seconds']:.0f} s")
    if args.out:
        summarize([args.out])


if __name__ == "__main__":
    main()

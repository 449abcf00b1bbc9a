"""Measure the error rates of the label-removal verdict by varying seeds (TFP style).

Parts (run separately, in parallel processes if you like, then summarise):

* ``reference`` — seed sets ``first .. first + sets - 1`` with the reference layer, the same
  experiment and verdict as ``check_label_removal(layer, seed=k, adversary=...)`` (several sets
  trained as one batch, ``--chunk``; ``--verify`` re-runs the first set through
  ``check_label_removal`` and compares). Records per seed the judged leakage ``L(s)`` (usable
  information of the family's probe over the permutation null), the other probe's leakage, the
  macro-F1 leakage, the control's judged leakage ``C(s)``, and every verdict.
* ``broken`` — the same for broken layers (``tests/statistical/grl_stats_helpers.py``); only
  the reversal arm is trained, since ``fail`` never depends on the control arm.
* ``summarize`` — reads the JSON files of the parts and prints (a) the fraction of seeds with
  ``L(s) <= tau`` and with ``C(s) >= tau + delta``, (b) the false-fail rate over seed sets with
  a binomial 95 % CI (``scipy.stats.binomtest(k, n).proportion_ci()``), (c) fails per broken
  layer.

Seed set ``k`` holds seeds ``9k .. 9k + 8`` (``seed_set``): disjoint sets carved out of one long
run of independent seeds (every seed draws its own data, init, split, permutation and probe), so
verdicts of different sets are independent. Design on some sets, measure on sets no choice
looked at (the design used sets 0-26; the published figures use sets 1000-1199).

    python benchmarks/stats_error_rates.py reference --adversary mlp --sets 200 --out ref.json
    python benchmarks/stats_error_rates.py broken --adversary mlp --sets 50 --out broken.json
    python benchmarks/stats_error_rates.py summarize ref.json broken.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from grl_props.adapters import load_layer
from grl_props.experiment import ADVERSARY_FAMILIES, ExperimentConfig, run_experiment, seed_set
from grl_props.label_removal import check_label_removal, judged_for, seed_layers
from grl_props.sign_test import Contract, label_removal_verdict

# The broken layers are the ones tests/statistical fails; one definition for both.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "statistical"))
from grl_stats_helpers import BROKEN_LAYERS  # noqa: E402


def _chunks(first: int, count: int, size: int) -> list[list[int]]:
    sets = list(range(first, first + count))
    return [sets[i:i + size] for i in range(0, len(sets), size)]


def _run_sets(layer, config: ExperimentConfig, sets: list[int], with_control: bool) -> list[dict]:
    """Train the seeds of several seed sets as one batch and judge each set on its own.

    Batching changes nothing per seed (each seed has its own slice of the stacked model and its
    own instance of the layer; ``tests/statistical/test_training.py`` checks it); ``--verify``
    checks one set against ``check_label_removal`` itself.
    """
    contract = Contract()
    n = contract.seeds
    seeds = [s for k in sets for s in seed_set(k, n)]
    driver, _ = seed_layers(layer)
    run = run_experiment(driver, seeds, config, with_control=with_control)
    judged, other = (p.name for p in config.probes)
    out = []
    for j, k in enumerate(sets):
        scores = run.scores[j * n:(j + 1) * n]
        leakage = [s.leakage("reversal", judged) for s in scores]
        control = [s.leakage("control", judged) for s in scores] if with_control else None
        verdict = label_removal_verdict(leakage, control, contract, judged_for(config.judged_probe))
        out.append({
            "set": k, "verdict": verdict.outcome, "leakage": leakage, "control_leakage": control,
            "reported_leakage": [s.leakage("reversal", other) for s in scores],
            "macro_f1_leakage": [s.leakage("reversal", judged, "macro_f1") for s in scores],
            "auc": [s.probes[judged]["reversal"].auc_ovr for s in scores],
        })
    return out


def run_reference(args: argparse.Namespace, config: ExperimentConfig) -> dict:
    layer = load_layer("grl_props:GradientReversal")
    sets: list[dict] = []
    start = time.time()
    for chunk in _chunks(args.first_set, args.sets, args.chunk):
        t = time.time()
        sets += _run_sets(layer, config, chunk, with_control=True)
        _save(args.out, {"part": "reference", "adversary": args.adversary, "sets": sets,
                         "seconds": time.time() - start})
        print(f"sets {chunk[0]}-{chunk[-1]}: {[s['verdict'] for s in sets[-len(chunk):]]} "
              f"({time.time() - t:.1f} s)", file=sys.stderr, flush=True)
    data = {"part": "reference", "adversary": args.adversary, "sets": sets,
            "seconds": time.time() - start}
    if args.verify:
        result = check_label_removal(layer, seed=args.first_set, config=config)
        same = (list(result.detail.leakage) == sets[0]["leakage"]
                and list(result.detail.control_leakage or ()) == sets[0]["control_leakage"])
        data["verified"] = bool(same)
        print(f"verify: check_label_removal(seed={args.first_set}) gives the same per-seed "
              f"leakage as the batched run: {same}")
    return data


def run_broken(args: argparse.Namespace, config: ExperimentConfig) -> dict:
    out: dict[str, list] = {}
    start = time.time()
    for name in args.layers.split(","):
        layer = load_layer(BROKEN_LAYERS[name])
        out[name] = []
        for chunk in _chunks(args.first_set, args.sets, args.chunk):
            out[name] += _run_sets(layer, config, chunk, with_control=False)
            _save(args.out, {"part": "broken", "adversary": args.adversary, "layers": out,
                             "seconds": time.time() - start})
            print(f"{name} sets {chunk[0]}-{chunk[-1]}: "
                  f"{[s['verdict'] for s in out[name][-len(chunk):]]}", file=sys.stderr, flush=True)
    return {"part": "broken", "adversary": args.adversary, "layers": out,
            "seconds": time.time() - start}


def _save(path: str | None, data: dict) -> None:
    """Write the part's JSON after every chunk, so an interrupted run keeps what it measured."""
    if path:
        Path(path).write_text(json.dumps(data) + "\n")


def _ci(k: int, n: int) -> str:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95)
    return f"{k}/{n} = {k / n:.4f}, 95% CI [{ci.low:.4f}, {ci.high:.4f}]"


def _quantiles(values: np.ndarray, qs: list[float]) -> list[float]:
    return [round(float(v), 3) for v in np.nanquantile(values, qs)]


def summarize(paths: list[str]) -> None:
    contract = Contract()
    parts: dict[str, dict] = {}
    for path in paths:
        part = json.loads(Path(path).read_text())
        family = parts.setdefault(part.get("adversary", "linear"), {"ref": [], "broken": {}})
        if part["part"] == "reference":
            family["ref"] += part["sets"]
        else:
            for name, sets in part["layers"].items():
                family["broken"].setdefault(name, []).extend(sets)
    print(f"contract: {contract.to_json()}")
    for adversary, family in parts.items():
        print(f"== adversary family {adversary} "
              f"(judged: {ExperimentConfig(adversary=adversary).judged_probe.description})")
        ref_sets = family["ref"]
        if ref_sets:
            leak = np.array([v for s in ref_sets for v in s["leakage"]], dtype=float)
            ctl = np.array([v for s in ref_sets for v in (s["control_leakage"] or ())], dtype=float)
            other = np.array([v for s in ref_sets for v in s["reported_leakage"]], dtype=float)
            f1 = np.array([v for s in ref_sets for v in s["macro_f1_leakage"]], dtype=float)
            auc = np.array([v for s in ref_sets for v in s["auc"]], dtype=float)
            n = len(leak)
            print(f"(a) reference layer, {n} seeds ({len(ref_sets)} disjoint seed sets)")
            print(f"    judged leakage <= tau={contract.tau}: "
                  f"{_ci(int(np.sum(leak <= contract.tau)), n)}")
            print(f"    judged leakage quantiles 50/90/95/99/max (bits): "
                  f"{_quantiles(leak, [.5, .9, .95, .99, 1])}")
            print(f"    seeds counted as leaking (> {contract.threshold:g}): "
                  f"{_ci(int(np.sum(~(leak <= contract.threshold))), n)}")
            print(f"    judged probe AUC quantiles 50/90/99/max: "
                  f"{_quantiles(auc, [.5, .9, .99, 1])}")
            print(f"    reported (other) probe leakage quantiles 50/90/max (bits): "
                  f"{_quantiles(other, [.5, .9, 1])}; macro-F1 leakage 50/90/max: "
                  f"{_quantiles(f1, [.5, .9, 1])}")
            if len(ctl):
                good = contract.tau + contract.delta
                print(f"    control leakage >= tau+delta={good:g}: "
                      f"{_ci(int(np.sum(ctl >= good)), len(ctl))}; quantiles min/1/5/50: "
                      f"{_quantiles(ctl, [0, .01, .05, .5])}")
            verdicts = [s["verdict"] for s in ref_sets]
            m = len(verdicts)
            print(f"(b) false-fail rate: {_ci(verdicts.count('fail'), m)} seed sets "
                  f"(stated false-fail rate {contract.false_fail_rate:g}); "
                  f"invalid in {_ci(verdicts.count('invalid'), m)}")
        for name, sets in family["broken"].items():
            verdicts = [s["verdict"] for s in sets]
            leak = np.array([v for s in sets for v in s["leakage"]], dtype=float)
            print(f"(c) {name}: fail in {_ci(verdicts.count('fail'), len(verdicts))} seed sets; "
                  f"per-seed leakage min {np.nanmin(leak):.3f}, 10 % quantile "
                  f"{np.nanquantile(leak, 0.1):.3f}, median {np.nanmedian(leak):.3f} bits; "
                  f"nan in {int(np.isnan(leak).sum())} seeds")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["reference", "broken", "summarize"])
    parser.add_argument("files", nargs="*", help="JSON files to summarise")
    parser.add_argument("--adversary", choices=ADVERSARY_FAMILIES, default="linear")
    parser.add_argument("--sets", type=int, default=200)
    parser.add_argument("--first-set", type=int, default=1000)
    parser.add_argument("--layers", default=",".join(BROKEN_LAYERS))
    parser.add_argument("--chunk", type=int, default=5, help="seed sets trained as one batch")
    parser.add_argument("--verify", action="store_true",
                        help="re-run the first set through check_label_removal and compare")
    parser.add_argument("--out", default=None, help="write the part's JSON here")
    args = parser.parse_args(argv)
    print("command: python " + " ".join([sys.argv[0], *sys.argv[1:]]), flush=True)
    if args.part == "summarize":
        summarize(args.files)
        return
    config = ExperimentConfig(adversary=args.adversary)
    data = run_reference(args, config) if args.part == "reference" else run_broken(args, config)
    _save(args.out, data)
    print(f"{args.part}: {data['seconds']:.0f} s")
    if args.out:
        summarize([args.out])


if __name__ == "__main__":
    main()

"""Power of the label-removal verdict: P[pass] and P[fail] against the fraction of leaking seeds
and against the size of the leakage, for the default contract.

1. **Fraction of leaking seeds** (exact): each seed counts as leaking (``L(s) > tau + delta/2``)
   independently with probability ``q``; ``P[pass] = sign_test.pass_probability_of_sign_test``.
   Printed for the default 9 seeds and for larger seed counts, to show what more seeds buy.
2. **Leakage size** (measured): latents that carry a known amount of label, scored by the real
   probes and the real null. Gaussian latents (n = 1024 fresh cells, 4 dimensions, classes
   0.75 / 0.15 / 0.10, as in the reference experiment) whose two minority classes are shifted by
   ``shift`` along their own axis; the Bayes-optimal one-vs-rest AUC and usable information of
   each shift are printed beside. For each shift, ``--seeds`` independent seeds give the fraction
   ``q`` of seeds counted as leaking, and ``P[pass]`` follows exactly from ``q`` (seeds are
   independent).

    python benchmarks/verdict_power.py [--seeds 100] [--probes logistic,mlp]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from grl_props.probes import ProbeConfig, score_seed
from grl_props.sign_test import (
    Contract,
    fail_count_for_sign_test,
    min_leaking_fraction_detectable_by_sign_test,
    pass_probability_of_sign_test,
)

CLASS_PROBS = np.array([0.75, 0.15, 0.10])
SHIFTS = (0.0, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0)


def synthetic(seed: int, shift: float, n: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=CLASS_PROBS)
    z = rng.standard_normal((n, 4))
    z[y == 1, 0] += shift
    z[y == 2, 1] += shift
    return z, y


def bayes(shift: float, n: int = 200_000) -> tuple[float, float]:
    """Bayes-optimal one-vs-rest AUC and usable information (bits) of a shift, by simulation."""
    z, y = synthetic(12345, shift, n)
    means = np.zeros((3, 4))
    means[1, 0] = means[2, 1] = shift
    log_lik = np.stack([-0.5 * ((z - means[c]) ** 2).sum(1) for c in range(3)], 1)
    log_post = log_lik + np.log(CLASS_PROBS)
    post = np.exp(log_post - log_post.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    bits = float(-(CLASS_PROBS * np.log2(CLASS_PROBS)).sum()
                 + np.mean(np.log2(post[np.arange(n), y])))
    return float(roc_auc_score(y, post, multi_class="ovr")), bits


def fraction_table(contract: Contract) -> None:
    print("1. P[pass] against the fraction q of seeds counted as leaking (exact)")
    grid = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    print("   seeds  fail at  q=" + "  ".join(f"{q:4.1f}" for q in grid) + "   q for P[pass]<=1e-3")
    for n in (contract.seeds, 12, 15, 20, 30):
        k = fail_count_for_sign_test(n, robustness=contract.robustness,
                                     false_fail_rate=contract.false_fail_rate)
        row = [pass_probability_of_sign_test(q, n, robustness=contract.robustness,
                                             false_fail_rate=contract.false_fail_rate)
               for q in grid]
        q_min = min_leaking_fraction_detectable_by_sign_test(n, robustness=contract.robustness)
        print(f"   {n:5d}  {k:7d}    " + "  ".join(f"{p:4.2f}" for p in row)
              + f"   {q_min:.2f}")
    print("   (P[fail] = 1 - P[pass]; the contract promises P[fail] <= 1e-3 at q <= 0.1 and "
          "P[pass] <= 1e-3 when >= 90 % of seeds leak >= tau + delta)")


def size_table(contract: Contract, probes: list[str], n_seeds: int) -> None:
    print(f"\n2. P[pass] / P[fail] against leakage size ({n_seeds} seeds per shift; "
          f"count threshold {contract.threshold:g} bits, {contract.seeds} seeds per verdict)")
    print("   shift  Bayes AUC  Bayes bits | " + " | ".join(
        f"{p}: median L (bits), q, P[pass], P[fail]" for p in probes))
    for shift in SHIFTS:
        auc, bits = bayes(shift)
        cells = []
        for name in probes:
            probe = ProbeConfig(name=name)  # type: ignore[arg-type]
            leak = np.array([score_seed(s, {"reversal": synthetic(s, shift)[0]},
                                        synthetic(s, shift)[1], (probe,)).leakage("reversal", name)
                             for s in range(n_seeds)])
            q = float(np.mean(~(leak <= contract.threshold)))
            p_pass = pass_probability_of_sign_test(q, contract.seeds,
                                                   robustness=contract.robustness,
                                                   false_fail_rate=contract.false_fail_rate)
            cells.append(f"{np.median(leak):+.3f}, {q:.2f}, {p_pass:.3f}, {1 - p_pass:.3f}")
        print(f"   {shift:5.1f}  {auc:9.3f}  {bits:10.3f} | " + " | ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="seeds per shift")
    parser.add_argument("--probes", default="logistic,mlp")
    args = parser.parse_args()
    contract = Contract()
    start = time.perf_counter()
    print(f"contract: {contract.to_json()}")
    fraction_table(contract)
    size_table(contract, args.probes.split(","), args.seeds)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

"""Diagnose the CellCap-like model of docs/statistical.md with ``diagnose_model``.

Trains the recipe (``benchmarks/cellcap_recipes.py``; default ``docs``, the example as first
published) for 9 seeds with and without reversal, hands ``diagnose_model`` the final latents of
fresh cells, the adversary's BCE per element at every step (chance: ``one_hot_bce_chance``) and
the latents at 50 % and 75 % of training, and prints the findings and the conclusion. The
adversary is CellCap's MLP, so the judged probe is the MLP family's.

    python benchmarks/cellcap_diagnosis.py [--recipe docs] [--seeds 0-8] [--jobs 2]
                                           [--layer grl_props:GradientReversal]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cellcap_recipes import RECIPES, train  # noqa: E402

from grl_props.model_diagnosis import diagnose_model  # noqa: E402


def embed(seed: int, recipe: str, reverse: bool):
    z, labels, _, history = train(seed, RECIPES[recipe], reverse=reverse)
    return (z, labels, history) if reverse else (z, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="docs", choices=sorted(RECIPES))
    parser.add_argument("--seeds", default="0-8", help="first-last")
    parser.add_argument("--jobs", type=int, default=None, help="joblib workers (default: here)")
    parser.add_argument("--layer", default="grl_props:GradientReversal",
                        help="the GRL the model uses, for the core properties")
    args = parser.parse_args()
    first, last = (int(v) for v in args.seeds.split("-"))
    result = diagnose_model(partial(embed, recipe=args.recipe, reverse=True),
                            control=partial(embed, recipe=args.recipe, reverse=False),
                            seeds=range(first, last + 1), adversary="mlp", layer=args.layer,
                            n_jobs=args.jobs)
    print(f"recipe {args.recipe}, seeds {args.seeds}:")
    if result.verdict is not None:
        print(result.verdict.summary())
    print(result.text())


if __name__ == "__main__":
    main()

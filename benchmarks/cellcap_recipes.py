"""The CellCap-like worked example of docs/statistical.md, under several training recipes.

A user's model in plain PyTorch (one seed at a time, as a user trains it): encoder 32→32→4,
decoder fed ``z + shift[label]``, and CellCap's adversary shape (``Linear → [BatchNorm1d] → ReLU
→ [Dropout]``, twice, ``Linear``, sigmoid, binary cross-entropy against the one-hot label) behind
``grl_props.GradientReversal``, whose alpha follows the DANN ramp through ``set_alpha``. For
each recipe and seed the latents of fresh cells are scored like ``assert_label_removed`` does
(both probes, usable information over the permutation null), with and without reversal, and the
adversary's last binary cross-entropy is compared with its chance level.

Recipes (``--recipes``, comma-separated):

* ``docs`` — the example as first published: BatchNorm (training mode), dropout 0.1 (CellCap
  itself uses 0.25), BCE summed over cells, encoder lr 3e-3, adversary lr 3e-2, 1000 full-batch
  steps, alpha ramp to 1;
* ``docs-no-bn`` — the same without BatchNorm;
* ``mlp-family`` — the ``mlp`` family's measured recipe: no BatchNorm, no dropout, BCE averaged
  over cells, encoder lr 1e-3, adversary lr 3e-3 with 4 extra adversary steps per step, 2500
  full-batch steps, alpha ramp to 2;
* ``mlp-family-bn`` — that recipe with BatchNorm (training mode) and dropout 0.1, as in the
  docs' example;
* ``mlp-family-bn-detached`` — that recipe with BatchNorm whose batch statistics are detached
  (the encoder cannot move them through the gradient), dropout 0.1.

    python benchmarks/cellcap_recipes.py --recipes docs,mlp-family --seeds 0-8
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from grl_props import GradientReversal
from grl_props.experiment import SimulationConfig, simulate
from grl_props.model_diagnosis import TrainingHistory, one_hot_bce_chance
from grl_props.probes import ProbeConfig, score_seed
from grl_props.sign_test import Contract, label_removal_verdict


@dataclass(frozen=True)
class Recipe:
    batch_norm: str = "train"      # "train", "detached" or "none"
    dropout: float = 0.1
    bce: str = "sum"               # over cells: "sum" or "mean"
    lr: float = 3e-3
    adversary_lr: float = 3e-2
    adversary_steps: int = 0       # extra adversary-only updates per step
    steps: int = 1000
    alpha_max: float = 1.0


DOCS = Recipe()
MLP_FAMILY = Recipe(batch_norm="none", dropout=0.0, bce="mean", lr=1e-3, adversary_lr=3e-3,
                    adversary_steps=4, steps=2500, alpha_max=2.0)
RECIPES = {
    "docs": DOCS,
    "docs-no-bn": replace(DOCS, batch_norm="none"),
    "mlp-family": MLP_FAMILY,
    "mlp-family-bn": replace(MLP_FAMILY, batch_norm="train", dropout=0.1),
    "mlp-family-bn-detached": replace(MLP_FAMILY, batch_norm="detached", dropout=0.1),
}


class DetachedBatchNorm(nn.Module):
    """Batch normalisation whose batch mean and variance carry no gradient."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(0).detach()
        std = (x.var(0, unbiased=False) + 1e-5).sqrt().detach()
        return (x - mean) / std * self.weight + self.bias


class Adversary(nn.Module):
    """CellCap-style classifier: (Linear, [BatchNorm1d], ReLU, [Dropout]) x 2, Linear, sigmoid."""

    def __init__(self, n_latent: int, n_classes: int, recipe: Recipe, hidden: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_latent
        for _ in range(2):
            layers.append(nn.Linear(width, hidden))
            if recipe.batch_norm == "train":
                layers.append(nn.BatchNorm1d(hidden))
            elif recipe.batch_norm == "detached":
                layers.append(DetachedBatchNorm(hidden))
            layers.append(nn.ReLU())
            if recipe.dropout:
                layers.append(nn.Dropout(recipe.dropout))
            width = hidden
        self.body = nn.Sequential(*layers, nn.Linear(width, n_classes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(z))


def train(seed: int, recipe: Recipe, *, reverse: bool
          ) -> tuple[np.ndarray, np.ndarray, float, TrainingHistory]:
    """Latents of fresh cells, their labels, the adversary's last BCE per element, and the
    history ``diagnose_model`` reads (BCE per element at every step, with its chance level;
    latents of the same fresh cells at 50 % and 75 % of training)."""
    torch.set_num_threads(1)
    data = simulate(SimulationConfig(effect_size=6.0), seed)
    torch.manual_seed(seed)
    n_classes, latent = 3, 4
    encoder = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, latent))
    decoder = nn.Sequential(nn.Linear(latent, 32), nn.ReLU(), nn.Linear(32, 32))
    shift = nn.Parameter(torch.zeros(n_classes, latent))
    adversary = Adversary(latent, n_classes, recipe)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters(), shift], lr=recipe.lr)
    opt_adv = torch.optim.Adam(adversary.parameters(), lr=recipe.adversary_lr)
    grl = GradientReversal(alpha=0.0)
    x, y = data.x, data.y
    target = nn.functional.one_hot(y, n_classes).float()
    reduction = recipe.bce
    bce_per_element = float("nan")
    losses: list[float] = []
    checkpoints: dict[int, np.ndarray] = {}
    for step in range(recipe.steps):
        if step in (recipe.steps // 2, recipe.steps * 3 // 4):
            with torch.no_grad():
                checkpoints[step] = encoder(data.x_probe).numpy()
        grl.set_alpha(recipe.alpha_max * (2.0 / (1.0 + np.exp(-10.0 * step / recipe.steps)) - 1.0))
        z = encoder(x)
        for _ in range(recipe.adversary_steps):
            extra = nn.functional.binary_cross_entropy(adversary(z.detach()), target,
                                                       reduction=reduction)
            opt_adv.zero_grad()
            extra.backward()
            opt_adv.step()
        recon = ((decoder(z + shift[y]) - x) ** 2).mean()
        bce = nn.functional.binary_cross_entropy(adversary(grl(z) if reverse else z), target,
                                                 reduction=reduction)
        opt.zero_grad()
        opt_adv.zero_grad()
        (recon + bce).backward()
        opt.step()
        opt_adv.step()
        bce_per_element = bce.item() / (target.numel() if reduction == "sum" else 1)
        losses.append(bce_per_element)
    labels = data.y_probe.numpy()
    history = TrainingHistory(adversary_loss=losses, adversary_chance=one_hot_bce_chance(labels),
                              loss_name="BCE per element", checkpoints=checkpoints,
                              steps=recipe.steps)
    with torch.no_grad():
        return encoder(data.x_probe).numpy(), labels, bce_per_element, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--seeds", default="0-8", help="first-last")
    parser.add_argument("--out", default=None, help="append one JSON line per recipe here")
    args = parser.parse_args()
    first, last = (int(v) for v in args.seeds.split("-"))
    seeds = list(range(first, last + 1))
    contract = Contract()
    probes = (ProbeConfig(name="mlp"), ProbeConfig(name="logistic"))
    probs = np.array(SimulationConfig().class_probs)
    chance = float(np.mean(-(probs * np.log(probs) + (1 - probs) * np.log(1 - probs))))
    print(f"adversary BCE per element at chance: {chance:.3f} nats; contract {contract.to_json()}")
    for name in args.recipes.split(","):
        recipe = RECIPES[name]
        start = time.perf_counter()
        rows = []
        for seed in seeds:
            z, labels, bce, _ = train(seed, recipe, reverse=True)
            z_control, *_ = train(seed, recipe, reverse=False)
            scores = score_seed(seed, {"reversal": z, "control": z_control}, labels, probes,
                                reported_arms=("reversal", "control"))
            rows.append({"seed": seed, "adversary_bce": bce,
                         **{f"{p.name}_leakage": scores.leakage("reversal", p.name)
                            for p in probes},
                         **{f"{p.name}_control": scores.leakage("control", p.name)
                            for p in probes},
                         "mlp_auc": scores.probes["mlp"]["reversal"].auc_ovr,
                         "logistic_auc": scores.probes["logistic"]["reversal"].auc_ovr})
            print(f"  {name} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()
                                                      if k != "seed"), file=sys.stderr, flush=True)
        line = {"recipe": name, "settings": recipe.__dict__, "seeds": seeds, "rows": rows,
                "seconds": time.perf_counter() - start}
        for probe in ("mlp", "logistic"):
            leak = [r[f"{probe}_leakage"] for r in rows]
            control = [r[f"{probe}_control"] for r in rows]
            verdicts = [label_removal_verdict(leak[i:i + 9], control[i:i + 9], contract).outcome
                        for i in range(0, len(leak) - len(leak) % 9, 9)]
            line[f"{probe}_verdicts"] = verdicts
            print(f"{name}, {probe} probe: leakage median {np.median(leak):+.3f} bits, "
                  f"90 % {np.quantile(leak, 0.9):+.3f}, max {np.max(leak):+.3f}; "
                  f"≤ τ in {np.mean(np.array(leak) <= contract.tau):.0%} of {len(leak)} seeds; "
                  f"AUC median {np.median([r[f'{probe}_auc'] for r in rows]):.2f}; control min "
                  f"{np.min(control):+.3f}; verdicts per 9 seeds: {verdicts}")
        print(f"{name}: adversary BCE median {np.median([r['adversary_bce'] for r in rows]):.3f} "
              f"(chance {chance:.3f}); {line['seconds']:.0f} s", flush=True)
        if args.out:
            with Path(args.out).open("a") as stream:
                stream.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()

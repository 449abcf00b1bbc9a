"""Batched training (all seeds of an arm as one model) against a per-seed loop of the same math.

Both run in this one process, one after the other, on the same data, seeds and steps, with the
same ``torch.set_num_threads`` (default 1), after an untimed warm-up of each. The batched model
pays the per-operation overhead (Python, autograd, dispatch, Adam's per-parameter loop) once
per step for all seeds; the loop pays it once per seed. The layer under test is called once per
seed and step in both (each seed has its own instance), which the stack cannot share. With the
linear family's mini-batches (128 cells per step) per-operation overhead dominates a step, so
stacking pays most; with full batches (``--batch-size 512``, or ``--adversary mlp``) FLOPs
weigh more and the saving shrinks. Threads: one is the fastest setting for both versions; a
second, contended OpenMP thread slows the loop's tiny operations many-fold, which would inflate
the figure unfairly. The two versions give identical latents (printed).

    python benchmarks/stats_speed.py [--adversary linear|mlp] [--seeds 9] [--steps 2500]
                                     [--batch-size 128] [--threads 1]

The last line is ``speedup: X.XX`` (per-seed-loop time / batched time).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from grl_props.adapters import load_layer
from grl_props.experiment import ExperimentConfig, seed_set, simulate_batch, train_arm
from grl_props.experiment.training import train_arm_per_seed
from grl_props.label_removal import seed_layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=None,
                        help="default: the reference experiment's steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the reference experiment's batch size")
    parser.add_argument("--adversary", choices=("linear", "mlp"), default="linear")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = ExperimentConfig(adversary=args.adversary)
    args.steps = args.steps or config.training.steps
    train = replace(config.training, steps=args.steps,
                    batch_size=args.batch_size or config.training.batch_size)
    seeds = seed_set(0, args.seeds)
    data = simulate_batch(config.simulation, seeds)

    layer, _ = seed_layers(load_layer("grl_props:GradientReversal"))
    kwargs = dict(model_config=config.model, train_config=train, layer=layer,
                  adversary=config.adversary)
    print(f"{args.adversary} family, {args.seeds} seeds, {args.steps} steps of "
          f"{train.batch_size or 'all'} of "
          f"{config.simulation.n_cells} cells, "
          f"hidden={config.model.hidden_dim}, latent={config.model.latent_dim}, "
          f"threads={torch.get_num_threads()}")
    # Warm-up, untimed: the first training in a process pays a one-time start-up (about 1 s,
    # measured), which would otherwise be charged to whichever version runs first.
    warm = dict(kwargs, train_config=replace(train, steps=20))
    train_arm(data, seeds, **warm)
    train_arm_per_seed(data, seeds, **warm)
    t = time.perf_counter()
    batched = train_arm(data, seeds, **kwargs)
    t_batched = time.perf_counter() - t
    print(f"batched (one model, stacked weights): {t_batched:.2f} s "
          f"({1e3 * t_batched / args.steps:.2f} ms/step)")
    t = time.perf_counter()
    looped = train_arm_per_seed(data, seeds, **kwargs)
    t_loop = time.perf_counter() - t
    print(f"per-seed loop (same math):            {t_loop:.2f} s "
          f"({1e3 * t_loop / args.steps:.2f} ms/step)")
    diff = (batched.latents - looped.latents).abs().max().item()
    scale = batched.latents.abs().max().item()
    print(f"max |latent difference| batched vs loop: {diff:.2e} (latent scale {scale:.2f})")
    print(f"speedup: {t_loop / t_batched:.2f}")


if __name__ == "__main__":
    main()

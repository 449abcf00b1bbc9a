"""Batched training (all seeds of an arm as one model) against a per-seed loop of the same math.

Both run in this one process, one after the other, on the same data, seeds and steps, with the
same ``torch.set_num_threads`` (default 1). The batched model pays the per-operation overhead
(Python, autograd, dispatch, Adam's per-parameter loop) once per step for all seeds; the loop
pays it once per seed. At this size (512 cells, width 32, latent 4) FLOPs dominate a step, so
the saving is modest: measured 1.65x on one thread (2-core machine, other jobs running).
With 2 threads the figure grows to about 6x, but only because the loop's tiny operations
slow down badly with a second, contended OpenMP thread (149 ms/step against 7 ms/step on one
thread) — that is not a fair comparison, so the default is one thread, the fastest setting for
both versions. The two versions give bit-identical latents (checked).

    python benchmarks/stats_speed.py [--seeds 9] [--steps 2500] [--threads 1]

The last line is ``speedup: X.XX`` (per-seed-loop time / batched time).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from grl_props import gradient_reversal
from grl_props.experiment import ExperimentConfig, seed_set, simulate_batch, train_arm
from grl_props.experiment.training import train_arm_per_seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=None,
                        help="default: the reference experiment's steps")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = ExperimentConfig()
    args.steps = args.steps or config.train.steps
    train = replace(config.train, steps=args.steps)
    seeds = seed_set(0, args.seeds)
    data = simulate_batch(config.simulation, seeds)

    def build(alpha: float):
        return lambda z: gradient_reversal(z, alpha)

    kwargs = dict(model_config=config.model, train_config=train, build=build)
    print(f"{args.seeds} seeds, {args.steps} full-batch steps, n={config.simulation.n_cells}, "
          f"hidden={config.model.hidden_dim}, latent={config.model.latent_dim}, "
          f"threads={torch.get_num_threads()}")
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

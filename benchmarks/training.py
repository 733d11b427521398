"""Trainer overhead: a backup run against a plain JAX loop doing the same updates.

Both sides train the same model with the same optimizer on batches of N x batch-size
examples gathered on the device by a jitted step. The trainer additionally runs the SimPy
engine, looks up each gradient's worker batch and records everything. Times are
differential (runs of 3n updates minus runs of n, the best of three each), so compilation
and set-up cancel out; both run in this process on the device ``jax.devices()`` gives.

    python benchmarks/training.py [--model mlp] [--workers 8] [--backups 2] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from stragglersim.core.config import RunConfig
from stragglersim.models.datasets import load_dataset
from stragglersim.models.zoo import build_model
from stragglersim.training.evaluation import describe_device
from stragglersim.training.optim import make_optimizer
from stragglersim.training.trainer import train


def trainer_seconds(config: RunConfig) -> float:
    start = time.perf_counter()
    train(config)
    return time.perf_counter() - start


def bare_seconds(config: RunConfig, steps: int) -> float:
    """A plain loop: jitted value_and_grad + optax update on random N x b batches."""
    start = time.perf_counter()
    dataset = load_dataset(config.dataset)
    model = build_model(config.model, dataset)
    optimizer = make_optimizer(config, 1 if config.strategy == "async" else config.workers)
    params = model.init(jax.random.key(0))
    opt_state = optimizer.init(params)
    x, y = jax.device_put(dataset.x_train), jax.device_put(dataset.y_train)

    @jax.jit
    def step(params, opt_state, idx):
        loss, grads = jax.value_and_grad(model.loss)(params, jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(0)
    losses = []
    per_update = 1 if config.strategy == "async" else config.workers  # mini-batches per update
    for _ in range(steps):
        idx = jnp.asarray(rng.integers(0, len(dataset.x_train), size=per_update * config.batch_size, dtype=np.int32))
        params, opt_state, loss = step(params, opt_state, idx)
        losses.append(loss)
    jax.block_until_ready(losses)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--backups", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--strategy", default="backup", choices=["backup", "async"])
    args = parser.parse_args()

    def config(steps: int) -> RunConfig:
        common = dict(
            model=args.model, dataset=args.dataset, batch_size=args.batch_size, steps=steps, eval_every=str(2 * steps)
        )
        if args.strategy == "async":  # one mini-batch per update, P = N + B workers
            return RunConfig(strategy="async", workers=args.workers + args.backups, lr=0.05, **common)
        return RunConfig(strategy="backup", workers=args.workers, backups=args.backups, **common)

    n = args.steps
    trainer_seconds(config(20))  # load the dataset once (MNIST-1D generation, imports)
    t_short = min(trainer_seconds(config(n)) for _ in range(3))
    t_long = min(trainer_seconds(config(3 * n)) for _ in range(3))
    b_short = min(bare_seconds(config(n), n) for _ in range(3))
    b_long = min(bare_seconds(config(3 * n), 3 * n) for _ in range(3))
    trainer, bare = (t_long - t_short) / 2, (b_long - b_short) / 2
    usable = trainer > 0 and bare > 0  # under load a long run can come out faster than a short one
    ratio = bare / trainer if usable else None
    if not usable:
        print("  the steady-state difference came out negative (a loaded machine): no ratio", file=sys.stderr)
    print(
        f"device {describe_device()}: {args.model} on {args.dataset}, {args.strategy} "
        f"N={args.workers} B={args.backups}, "
        f"batch {args.batch_size}/worker"
    )
    print(f"  {n} updates, whole runs:   trainer {t_short:.2f} s   bare loop {b_short:.2f} s")
    print(
        f"  {n} updates (steady): trainer {trainer:.2f} s   bare loop {bare:.2f} s   "
        f"throughput ratio {f'{ratio:.2f}x' if usable else 'unusable'}"
    )
    print(
        json.dumps(
            {
                "device": describe_device(),
                "updates": n,
                "trainer_s": t_short,
                "bare_s": b_short,
                "steady_trainer_s": trainer,
                "steady_bare_s": bare,
                f"{'sync' if args.strategy == 'backup' else 'async'}_vs_bare": ratio,
            }
        )
    )


if __name__ == "__main__":
    main()

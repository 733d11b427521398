"""Training against its real limit: the trainer against a bare ``lax.scan`` of the same updates.

The bare scan is the trainer's gradient work with no simulation around it. The run's own
updates are recorded first (untimed); then one jitted ``lax.scan`` over all of them computes
the same gradients on the same mini-batches with the same model and optimizer:

- sync (backup N of N + B): each update is one gradient of the concatenation of its N
  workers' mini-batches (the mean of their N gradients);
- async: each update is one worker's gradient at the parameter version that worker read
  (stale), kept in a ring of past versions inside the scan, as the trainer does.

The trainer side is :func:`stragglersim.training.trainer.train` (engine, batch look-up, version
bookkeeping, evaluation at the start and the end). Both sides are timed in steady state:
compiled first, then runs of 3n updates minus runs of n, the best of five each, on the device
``jax.devices()`` gives. The simulation's cost per update is the difference of the two.

    python benchmarks/training_limit.py [--steps 500] [--large]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from stragglersim.core.assemble import assemble
from stragglersim.core.config import RunConfig
from stragglersim.core.data import WorkerBatches
from stragglersim.core.engine import Simulation
from stragglersim.training.evaluation import describe_device
from stragglersim.training.optim import make_optimizer
from stragglersim.training.trainer import train

REPEATS = 5


def sync_config(steps: int, workers: int = 8, backups: int = 2, batch_size: int = 32) -> RunConfig:
    return RunConfig(
        strategy="backup",
        workers=workers,
        backups=backups,
        model="mlp",
        dataset="digits",
        batch_size=batch_size,
        steps=steps,
        eval_every=str(2 * steps),
    )


def async_config(steps: int, workers: int = 10, batch_size: int = 32) -> RunConfig:
    return RunConfig(
        strategy="async",
        workers=workers,
        lr=0.05,
        model="mlp",
        dataset="digits",
        batch_size=batch_size,
        steps=steps,
        eval_every=str(2 * steps),
    )


def trainer_seconds(config: RunConfig) -> tuple[float, float]:
    """Wall seconds of a training run, and CPU seconds of this (the Python) thread: JAX runs
    the computations on threads of its own, so the second is the work around them."""
    start, cpu = time.perf_counter(), time.thread_time()
    train(config)
    return time.perf_counter() - start, time.thread_time() - cpu


class BareScan:
    """The run's updates as one jitted ``lax.scan``, nothing else.

    Args:
        config: the run; its simulation is replayed once here (untimed) for the updates'
            mini-batches and, for async, the versions their gradients read.
    """

    def __init__(self, config: RunConfig):
        inputs = assemble(config, training=True)
        sim = Simulation(inputs)
        batches = WorkerBatches(
            len(inputs.dataset.x_train), config.batch_size, config.total_workers, config.data_partition, config.seed
        )
        self.stale = sim.strategy.stale
        self.optimizer = make_optimizer(config, sim.strategy.per_update)
        self.model, self.params = inputs.model, inputs.params
        self.x, self.y = jax.device_put(inputs.dataset.x_train), jax.device_put(inputs.dataset.y_train)
        idxs, read, write = [], [], []
        for u in sim.updates():
            idxs.append(np.concatenate([batches.indices(g.worker, g.index) for g in u.gradients]))
            read.append(u.gradients[0].version)
            write.append(u.index)
        # A ring of C versions: version v in slot v % C, long enough that no read is overwritten.
        staleness = max(w - 1 - r for r, w in zip(read, write, strict=True))
        self.capacity = 1 << max(staleness, 1).bit_length()
        self.idxs = jax.device_put(np.stack(idxs))
        self.read = jax.device_put(np.asarray(read, np.int32) % self.capacity)
        self.write = jax.device_put(np.asarray(write, np.int32) % self.capacity)
        self._scan = jax.jit(self._stale_scan if self.stale else self._fresh_scan)
        self._compiled: set[int] = set()

    def _step(self, params, opt_state, at, idx):
        def loss(p):
            return self.model.loss(p, jnp.take(self.x, idx, axis=0), jnp.take(self.y, idx, axis=0))

        value, grads = jax.value_and_grad(loss)(at)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    def _fresh_scan(self, params, opt_state, idxs, read, write):
        def body(carry, idx):
            params, opt_state, loss = self._step(*carry, carry[0], idx)
            return (params, opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), idxs)
        return params, losses

    def _stale_scan(self, params, opt_state, idxs, read, write):
        ring = jax.tree_util.tree_map(lambda a: jnp.repeat(a[None], self.capacity, axis=0), params)

        def body(carry, item):
            ring, params, opt_state = carry
            idx, r, w = item
            at = jax.tree_util.tree_map(lambda b: b[r], ring)
            params, opt_state, loss = self._step(params, opt_state, at, idx)
            ring = jax.tree_util.tree_map(lambda b, p: b.at[w].set(p), ring, params)
            return (ring, params, opt_state), loss

        (_, params, opt_state), losses = jax.lax.scan(body, (ring, params, opt_state), (idxs, read, write))
        return params, losses

    def seconds(self, steps: int) -> float:
        """Seconds of one run of the first ``steps`` updates (compiled on first use)."""
        args = (self.idxs[:steps], self.read[:steps], self.write[:steps])
        opt_state = self.optimizer.init(self.params)
        if steps not in self._compiled:
            jax.block_until_ready(self._scan(self.params, opt_state, *args))
            self._compiled.add(steps)
        start = time.perf_counter()
        jax.block_until_ready(self._scan(self.params, opt_state, *args))
        return time.perf_counter() - start


def compare(make_config, n: int) -> dict:
    """Steady-state seconds per update of the trainer and of the bare scan for one run.

    The four timings (trainer and scan, n and 3n updates) are taken in turn, ``REPEATS``
    rounds, keeping the best of each: on a shared machine a burst of load then hits one
    round of all four rather than every repeat of one of them.
    """
    trainer_seconds(make_config(n))  # compile, load the data set
    trainer_seconds(make_config(3 * n))  # the last partial chunk's shape
    bare = BareScan(make_config(3 * n))
    best = [float("inf")] * 6
    for _ in range(REPEATS):
        times = (*trainer_seconds(make_config(n)), *trainer_seconds(make_config(3 * n)))
        times += (bare.seconds(n), bare.seconds(3 * n))
        best = [min(b, t) for b, t in zip(best, times, strict=True)]
    t_short, cpu_short, t_long, cpu_long, b_short, b_long = best
    trainer, limit = (t_long - t_short) / (2 * n), (b_long - b_short) / (2 * n)
    return {
        "trainer_s": trainer,
        "limit_s": limit,
        "ratio": limit / trainer,
        "overhead_us": 1e6 * (trainer - limit),
        "python_us": 1e6 * (cpu_long - cpu_short) / (2 * n),
    }


CASES = {  # name: (config builder, what it stands for)
    "sync": (sync_config, "sync backup N=8 B=2 (target 0.9)"),
    "async": (async_config, "async 10 workers (target 0.6)"),
}
LARGE = {
    "large_sync": (lambda s: sync_config(s, workers=100, backups=6), "sync backup N=100 B=6"),
    "large_async": (lambda s: async_config(s, workers=106), "async 106 workers"),
}


def measure(steps: int = 500, cases: dict = CASES, rows: dict | None = None) -> dict:
    """The trainer's throughput over the bare scan: sync (backup N=8, B=2) and async (10 workers).

    Per case NAME: ``NAME_vs_scan_limit`` (bare-scan seconds per update over the trainer's;
    higher is better), ``NAME_overhead_us_per_update`` (trainer minus scan, wall clock: what
    the simulation around the gradients costs), ``NAME_python_us_per_update`` (CPU of the
    Python thread per update: the simulation's own work, which overlaps the computations
    while a core is free), and both sides' microseconds per update. ``rows``, if given,
    receives each case's figures.
    """
    results = {}
    for name, (make_config, _) in cases.items():
        r = compare(make_config, steps)
        if rows is not None:
            rows[name] = r
        results[f"{name}_vs_scan_limit"] = r["ratio"]
        results[f"{name}_overhead_us_per_update"] = r["overhead_us"]
        results[f"{name}_python_us_per_update"] = r["python_us"]
        results[f"{name}_trainer_us_per_update"] = 1e6 * r["trainer_s"]
        results[f"{name}_scan_us_per_update"] = 1e6 * r["limit_s"]
    return results | {"device": describe_device(), "jax_version": jax.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="n: runs of 3n updates minus runs of n")
    parser.add_argument("--large", action="store_true", help="also N = 100 (+6 backups) and async with 106 workers")
    args = parser.parse_args()
    print(f"device {describe_device()}, JAX {jax.__version__}: MLP on digits, batch 32 per worker (us per update)")
    rows: dict = {}
    results = measure(args.steps, rows=rows)
    if args.large:
        results |= measure(max(args.steps // 5, 20), LARGE, rows=rows)
    print(f"  {'run':<34} {'trainer':>8} {'scan':>8} {'ratio':>6} {'overhead':>9} {'python':>8}")
    for name, r in rows.items():
        label = (CASES | LARGE)[name][1]
        print(
            f"  {label:<34} {1e6 * r['trainer_s']:8.1f} {1e6 * r['limit_s']:8.1f} {r['ratio']:6.2f} "
            f"{r['overhead_us']:9.1f} {r['python_us']:8.1f}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""Measure a real trace: K OS processes run real JAX gradient steps at the same time on this
machine and record every step's duration.

Each process loads the dataset, compiles its step and waits at a barrier, so all K start
together and compete for the machine's cores and memory bandwidth as real co-located workers
do. Durations are wall-clock seconds of a complete step (``block_until_ready``).
"""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np

from .traces import Trace


def _worker(rank: int, steps: int, model_name: str, dataset_name: str, batch_size: int, barrier, queue) -> None:
    import jax
    import jax.numpy as jnp
    import optax

    from .models.datasets import load_dataset
    from .models.zoo import build_model

    dataset = load_dataset(dataset_name)
    model = build_model(model_name, dataset)
    optimizer = optax.sgd(0.05)
    params = model.init(jax.random.key(rank))
    opt_state = optimizer.init(params)
    x, y = jax.device_put(dataset.x_train), jax.device_put(dataset.y_train)

    @jax.jit
    def step(params, opt_state, idx):
        grads = jax.grad(model.loss)(params, jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(rank)
    batches = [jnp.asarray(rng.integers(0, len(dataset.x_train), batch_size, dtype=np.int32)) for _ in range(steps)]
    params, opt_state = jax.block_until_ready(step(params, opt_state, batches[0]))  # compile outside the timing
    barrier.wait()
    origin = time.perf_counter()
    rows = []
    for i in range(steps):
        t0 = time.perf_counter()
        params, opt_state = jax.block_until_ready(step(params, opt_state, batches[i]))
        rows.append((rank, i, time.perf_counter() - t0, t0 - origin))
    queue.put(rows)


def measure(workers: int, steps: int, *, model: str = "mlp", dataset: str = "digits", batch_size: int = 32) -> Trace:
    """Run ``workers`` processes of ``steps`` real gradient steps each; return the trace."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(r, steps, model, dataset, batch_size, barrier, queue)) for r in range(workers)
    ]
    for p in procs:
        p.start()
    rows = []
    try:
        for _ in procs:
            rows.extend(queue.get(timeout=600))
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    rows.sort()
    worker, step, duration, start = (np.array(c) for c in zip(*rows, strict=True))
    return Trace(worker.astype(np.int64), step.astype(np.int64), duration, start, f"measured: {workers} x {model}")

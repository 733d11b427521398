"""Measure a real trace: K OS processes run real JAX gradient steps at the same time on this
machine and record every step's duration.

Each process loads the dataset, compiles its step and waits at a barrier, so all K start
together and compete for the machine's cores and memory bandwidth as real co-located workers
do. Durations are wall-clock seconds of a complete step (``block_until_ready``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time

import numpy as np

from ..core.limits import BASE, INPUTS, JAX, _gb, machine_memory
from ..io.errors import InputError, named
from ..latency.traces import Trace
from ..models.datasets import load_dataset

PER_CPU = 4  # processes per CPU at most: more share the cores so much that they measure only contention
MOST = 256  # processes at most, whatever the machine
STEP = 1_000  # bytes per step and process: its batch of indices (an array object) and its recorded row


def check_measure(
    workers: int, steps: int, dataset: str, batch_size: int, *, cpus: int | None = None, memory: int | None = None
) -> None:
    """Refuse, before a process starts, more processes than the CPUs can run or than memory holds.

    The memory estimate per process: JAX (``limits.JAX``), the dataset as float64, every step's
    indices (int32) and record, and a batch's activations forward and back through the MLP's
    default width (the other models' scale).

    Raises:
        InputError: naming the options, with the bound or the estimate and the machine's memory.
    """
    cpus = cpus or os.cpu_count() or 1
    most = min(PER_CPU * cpus, MOST)
    if workers > most:
        raise InputError(
            f"{named('workers')} {workers}: more than {most} processes "
            f"({PER_CPU} per CPU of this machine's {cpus}, at most "
            f"{MOST}) share the CPUs so much that they measure only contention; give at most {most}"
        )
    features, outputs, examples = INPUTS[dataset]
    per = JAX + 8.0 * examples * (features + 1) + steps * (STEP + 4.0 * batch_size)
    per += 8.0 * batch_size * (features + 128 + outputs)
    memory = machine_memory() if memory is None else memory
    if BASE + workers * per > memory:
        raise InputError(
            f"{named('workers')} {workers} {named('steps')} {steps} {named('batch_size')} {batch_size}: needs about "
            f"{_gb(BASE + workers * per)} of memory, {_gb(per)} per process (this machine has {_gb(memory)}); "
            "make the measurement smaller"
        )


def _worker(rank: int, steps: int, model_name: str, dataset_name: str, batch_size: int, barrier, queue) -> None:
    # here, not at import: only the measuring processes load JAX, not the parent that starts them
    import jax
    import jax.numpy as jnp  # here, not at import: JAX loads in the measuring processes only
    import optax  # here, not at import: it imports JAX, which loads in the measuring processes only

    from ..models.zoo import build_model  # here, not at import: it imports JAX

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
    rows, done = [], False
    try:
        for i in range(workers):  # by index: no name in this frame keeps a Process beyond _shut_down
            procs[i].start()
        for _ in range(workers):
            rows.extend(queue.get(timeout=600))
        done = True
    finally:
        _shut_down(procs, wait=60 if done else 0)
    rows.sort()
    worker, step, duration, start = (np.array(c) for c in zip(*rows, strict=True))
    return Trace(worker.astype(np.int64), step.astype(np.int64), duration, start, f"measured: {workers} x {model}")


def _shut_down(procs: list, wait: float) -> None:
    """Join the children (``wait`` seconds each, then end them) with SIGTERM ignored, and drop them.

    A second SIGTERM (``timeout`` signals the process and then its group) must neither stop this
    half-way, leaving children behind, nor land in the weak-reference callback that forgets a
    dropped ``Process`` (Python prints an exception raised there as "Exception ignored in WeakSet").
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN) if main else None
    try:
        for proc in procs:
            if proc.pid is None:  # never started
                continue
            proc.join(timeout=wait)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        proc = None
        procs.clear()  # the Process objects go here, while SIGTERM is ignored
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)

"""The event engine against its real limits; the last line is one JSON object.

    python benchmarks/engine.py [--repeats 3]

- ``engine_vs_minimal_simpy``: seconds of ``Simulation(config).run()`` (the event engine,
  never the fast path) over ``minimal_simpy`` below on the same run
  (backup with cancellation, 100 + 6 exponential workers, 2,000 updates, timing only, full
  records), each the best of ``--repeats``; lower is better (target <= 1.3).
- ``engine_tf_events_per_s``: gradient computations per second of the engine under ``tf``
  semantics, 100 + 6 workers, ``--log-gradients none``.
- ``engine_scale``: seconds per update of the engine at 1k, 3k, 10k and 30k workers
  (``simulate --timing-only --log-gradients none`` with the default strategy, one gradient
  per worker per update), the workers' set-up left out; constant when the cost per update is
  linear in the workers. ``bare_simpy_scale``: the same for bare SimPy (one process per
  worker, one exponential timeout per update), the floor any SimPy model pays: its cost per
  event grows too with the size of the event heap and the memory touched.
  ``engine_30k_x_100_s``: the 30k row's whole run, set-up included (target < 60 s).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import simpy
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import Simulation
from stragglersim.core.streams import Stream, stream
from stragglersim.latency import parse_latency

CANCEL = RunConfig(  # the engine_vs_minimal_simpy run
    strategy="backup",
    semantics="cancel",
    workers=100,
    backups=6,
    steps=2000,
    latency="exponential:rate=1",
    timing_only=True,
)
SCALE = {1_000: 100, 3_000: 100, 10_000: 100, 30_000: 100}  # workers: updates


def minimal_simpy(config: RunConfig) -> tuple[float, float]:
    """A bare SimPy model of backup-with-cancel: P worker processes, the PS counts arrivals and
    interrupts the rest at the N-th. Same draws as the engine. Returns (seconds, sim time)."""
    p, n, steps = config.total_workers, config.workers, config.steps
    model = parse_latency(config.latency)
    draws = [model.sample(stream(config.seed, Stream.LATENCY, w), steps + 1).tolist() for w in range(p)]
    env = simpy.Environment()
    state = {"count": 0, "updates": 0, "event": env.event(), "last": 0.0}
    procs = []

    def worker(w):
        d = 0
        while state["updates"] < steps:
            try:
                yield env.timeout(draws[w][d])
            except simpy.Interrupt:
                d += 1
                continue
            d += 1
            state["count"] += 1
            if state["count"] == n:
                state["count"] = 0
                state["updates"] += 1
                state["last"] = env.now
                done, state["event"] = state["event"], env.event()
                for other in procs:
                    if other is not env.active_process and other.target is not done:
                        other.interrupt()
                done.succeed()
            else:
                yield state["event"]

    procs.extend(env.process(worker(w)) for w in range(p))
    start = time.perf_counter()
    env.run()
    return time.perf_counter() - start, state["last"]  # (env.now has run on through dead timeouts)


def _engine_seconds(config: RunConfig) -> float:
    start = time.perf_counter()
    Simulation(config).run()
    return time.perf_counter() - start


def _tf_events_per_s(repeats: int) -> float:
    config = RunConfig(**{**CANCEL.to_dict(), "semantics": "tf", "log_gradients": "none"})
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        log = Simulation(config).run()
        elapsed = time.perf_counter() - start
        best = max(best, log.created / elapsed)
    return best


def _scale_row(workers: int, steps: int) -> tuple[float, float]:
    """(seconds per update without the set-up, whole run in seconds)."""
    config = RunConfig(workers=workers, steps=steps, timing_only=True, log_gradients="none")
    start = time.perf_counter()
    sim = Simulation(config)
    built = time.perf_counter()
    sim.run()
    end = time.perf_counter()
    return (end - built) / steps, end - start


def _bare_simpy_per_update(workers: int, steps: int) -> float:
    """Seconds per update of ``workers`` processes each yielding ``steps`` exponential timeouts."""
    env = simpy.Environment()
    draws = np.random.default_rng(0).exponential(size=(workers, steps)).tolist()

    def worker(delays):
        for delay in delays:
            yield env.timeout(delay)

    for delays in draws:
        env.process(worker(delays))
    start = time.perf_counter()
    env.run()
    return (time.perf_counter() - start) / steps


def measure(repeats: int = 3) -> dict:
    """The figures of the module docstring (seconds; each the best of ``repeats``, but the 30k row)."""
    config = CANCEL
    minimal = min(minimal_simpy(config)[0] for _ in range(repeats))
    engine = min(_engine_seconds(config) for _ in range(repeats))
    results = {
        "engine_vs_minimal_simpy": engine / minimal,
        "engine_s": engine,
        "minimal_simpy_s": minimal,
        "engine_tf_events_per_s": _tf_events_per_s(repeats),
        "engine_scale": {},
        "bare_simpy_scale": {},
    }
    for workers, steps in SCALE.items():
        tries = 1 if workers >= 30_000 else repeats  # the 30k row alone takes about 40 s
        rows = [_scale_row(workers, steps) for _ in range(tries)]
        per_update, whole = min(rows)
        results["engine_scale"][str(workers)] = per_update
        results["bare_simpy_scale"][str(workers)] = min(_bare_simpy_per_update(workers, steps) for _ in range(tries))
        if workers == 30_000:
            results["engine_30k_x_100_s"] = whole
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    results = measure(parser.parse_args().repeats)
    print(
        f"engine {results['engine_s']:.3f} s vs minimal SimPy {results['minimal_simpy_s']:.3f} s: "
        f"{results['engine_vs_minimal_simpy']:.2f}x (target <= 1.3)"
    )
    print(f"tf, 100 + 6 workers, no logs: {results['engine_tf_events_per_s']:,.0f} gradient events/s")
    print(f"{'workers':>8}{'updates':>9}{'ms/update':>11}{'us/update/worker':>18}{'bare SimPy us':>15}{'ratio':>7}")
    for workers, steps in SCALE.items():
        per_update, bare = results["engine_scale"][str(workers)], results["bare_simpy_scale"][str(workers)]
        print(
            f"{workers:>8,}{steps:>9,}{per_update * 1e3:>11.2f}{per_update / workers * 1e6:>18.2f}"
            f"{bare / workers * 1e6:>15.2f}{per_update / bare:>7.2f}"
        )
    print(f"30,000 workers x 100 updates: {results['engine_30k_x_100_s']:.1f} s with set-up (target < 60 s)")
    print(json.dumps(results))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

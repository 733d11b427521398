"""Timing-only speed: 100 + 6 workers for 10,000 updates, against a bare SimPy loop.

The baseline, run in the same process, is the cheapest SimPy program with the same number
of computations: one process per worker, each yielding one timeout per computation. The
ratio says what the engine's bookkeeping (records, PS decisions, barriers) costs on top.

    python benchmarks/timing_only.py [--steps 10000] [--workers 100] [--backups 6]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import simpy
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import Simulation
from stragglersim.io.results import write_run


def bare_simpy(workers: int, computations: int) -> float:
    """Seconds for ``workers`` processes to yield ``computations`` timeouts in total."""
    env = simpy.Environment()
    per_worker = computations // workers

    def worker(env):
        for _ in range(per_worker):
            yield env.timeout(1.0)

    for _ in range(workers):
        env.process(worker(env))
    start = time.perf_counter()
    env.run()
    return time.perf_counter() - start


RUNS = {
    "backup tf": ("backup", "tf"),
    "backup drop": ("backup", "drop"),
    "backup cancel": ("backup", "cancel"),
    "sync": ("sync", None),
    "async": ("async", None),
}


def measure(label: str, args: argparse.Namespace) -> str:
    """One row: the simulation, writing its results, and the bare baseline, in this process."""
    strategy, semantics = RUNS[label]
    total = args.workers + args.backups
    config = RunConfig(
        strategy=strategy,
        workers=total if strategy == "async" else args.workers,
        backups=args.backups if strategy == "backup" else 0,
        semantics=semantics,
        latency=args.latency,
        steps=args.steps * (args.workers if strategy == "async" else 1),  # same number of gradients
    )
    start = time.perf_counter()
    log = Simulation(config).run()
    simulated = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_run(Path(tmp) / "run", config, log, log.summary(config))
        written = time.perf_counter() - start
    n = len(log.gradients)
    bare = bare_simpy(config.total_workers, n)
    return (
        f"{label:<16}{simulated:>12.2f}{written:>10.2f}{simulated + written:>10.2f}{n:>11}"
        f"{n / simulated:>11.0f}{simulated / bare:>8.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--backups", type=int, default=6)
    parser.add_argument("--latency", default="exponential:rate=1")
    parser.add_argument("--only", choices=RUNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(measure(args.only, args), flush=True)
        return
    print(f"{args.workers}+{args.backups} workers, {args.steps} updates (async: as many gradients), {args.latency}")
    print(f"{'run':<16}{'simulate s':>12}{'write s':>10}{'total s':>10}{'gradients':>11}{'grad/s':>11}{'vs bare':>9}")
    common = ["--steps", str(args.steps), "--workers", str(args.workers), "--backups", str(args.backups)]
    for label in RUNS:  # each in a fresh process, so one run's heap does not slow the next
        cmd = [sys.executable, __file__, *common, "--latency", args.latency, "--only", label]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()

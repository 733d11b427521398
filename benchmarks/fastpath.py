"""The vectorised fast path against the NumPy limit, and at 100,000 workers.

    python benchmarks/fastpath.py [--steps 10000] [--repeats 5]

- ``fast_path_vs_numpy_limit``: updates/s of the fast path (backup with cancel, 100 + 6
  Exp(1) workers, no per-gradient records) over updates/s of the plainest NumPy program with the
  same work: draw a (steps, 106) array of exponentials from one PCG64 generator, take the 100th
  order statistic of each row (``np.partition``) and a cumulative sum. Both in this process,
  best of ``repeats``; higher is better (target >= 0.5).
- ``scale_100k_workers_s``: 99,000 + 1,000 lognormal workers (cancel), 1,000 updates, in this
  process, best of 2; ``scale_100k_peak_rss_mb``: the peak RSS of a fresh subprocess running
  only that run.
- ``fast_path_strategies``: the strategy/semantics the fast path serves.

Figures taken on a shared machine vary from run to run: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from stragglersim.core.assemble import assemble
from stragglersim.core.config import RunConfig
from stragglersim.core.fastpath import fast_simulate

SMALL = dict(strategy="backup", semantics="cancel", workers=100, backups=6, latency="exponential:rate=1")
BIG = RunConfig(
    strategy="backup",
    semantics="cancel",
    workers=99_000,
    backups=1_000,
    steps=1_000,
    latency="lognormal:mu=0,sigma=0.5",
    timing_only=True,
    log_gradients="none",
)


def numpy_limit(steps: int, workers: int = 106, n: int = 100, seed: int = 0) -> np.ndarray:
    """The update times of the cheapest NumPy program: one generator, one (steps, workers) draw."""
    draws = np.random.default_rng(seed).exponential(size=(steps, workers))
    return np.cumsum(np.partition(draws, n - 1, axis=1)[:, n - 1])


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _served() -> list[str]:
    """The strategies (and semantics) the fast path serves: a recursion times them."""
    try:
        from stragglersim.core.config import RunConfig
        from stragglersim.core.recursions import recursion
    except ImportError:  # before the fast path listed what it serves
        return ["sync", "backup/cancel", "k-sync"]
    runs = {
        "sync": {},
        "backup/cancel": {"semantics": "cancel", "backups": 1},
        "backup/drop": {"semantics": "drop", "backups": 1},
    }
    runs |= {"k-sync": {"k": 2}, "k-batch-sync": {"k": 2}, "async": {}}
    return [
        name
        for name, options in runs.items()
        if recursion(RunConfig(strategy=name.split("/")[0], workers=4, **options))
    ]


def _peak_rss_mb() -> float:
    """Peak RSS (MB) of a fresh interpreter that runs only the 100k-worker run."""
    code = (
        "import sys\nsys.path.insert(0, sys.argv[1])\nfrom fastpath import BIG\n"
        "from stragglersim.core.fastpath import fast_simulate\nfrom stragglersim.core.assemble import assemble\n"
        "fast_simulate(assemble(BIG), records=False)\n"
        "import resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )  # its own peak: RUSAGE_CHILDREN would also count the caller's other children (run.py's training runs)
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], check=True, capture_output=True)
    return int(out.stdout.split()[-1]) / 1024


def measure(steps: int = 10_000, repeats: int = 5) -> dict:
    """The figures named in the module docstring, as a dict."""
    inputs = assemble(RunConfig(**SMALL, steps=steps, timing_only=True, log_gradients="none"))
    fast = _best(lambda: fast_simulate(inputs, records=False), repeats)
    limit = _best(lambda: numpy_limit(steps), repeats)
    big = assemble(BIG)
    scale = _best(lambda: fast_simulate(big, records=False), 2)
    return {
        "fast_path_vs_numpy_limit": limit / fast,
        "fast_path_updates_per_s": steps / fast,
        "numpy_limit_updates_per_s": steps / limit,
        "scale_100k_workers_s": scale,
        "scale_100k_peak_rss_mb": _peak_rss_mb(),
        "fast_path_strategies": _served(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    r = measure(args.steps, args.repeats)
    print(f"{'fast path (100 + 6 Exp, cancel)':<40}{r['fast_path_updates_per_s']:>14,.0f} updates/s")
    print(f"{'NumPy limit (partition + cumsum)':<40}{r['numpy_limit_updates_per_s']:>14,.0f} updates/s")
    print(f"{'ratio (target >= 0.5)':<40}{r['fast_path_vs_numpy_limit']:>14.2f}")
    print(f"{'100k workers x 1,000 updates':<40}{r['scale_100k_workers_s']:>14.2f} s")
    print(f"{'  peak RSS (fresh process)':<40}{r['scale_100k_peak_rss_mb']:>14,.0f} MB")
    print(f"{'served':<40}{', '.join(r['fast_path_strategies']):>14}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()

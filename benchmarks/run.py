"""All performance targets in one run; the last line is one JSON object.

    python benchmarks/run.py

- ``sync_vs_bare`` / ``async_vs_bare``: steady-state training throughput of the trainer over a
  plain jitted JAX loop doing the same updates (``benchmarks/training.py``); higher is better.
- ``engine_vs_minimal_simpy``: seconds of the event engine over a minimal hand-written SimPy
  model of the same run (backup with cancellation, 100 + 6 workers; ``engine.py``, best of 3);
  lower is better.
- ``fast_path_speedup``: event engine over the vectorised fast path on the same run.
- ``scale_10k_workers_s`` and ``scale_peak_rss_mb``: 10,000 workers for 1,000 updates, timing
  only, without per-gradient logs.

Against the real limits (issue 19; each from its own script, which prints the details):
- ``fast_path_vs_numpy_limit``: fast-path updates/s over plain NumPy drawing the same 106
  exponentials per update and taking the 100th order statistic (``fastpath.py``; target >= 0.5);
  ``scale_100k_workers_s``: 100,000 workers x 1,000 updates on the fast path (target < 10 s, < 2 GB).
- from ``engine.py``: ``engine_vs_minimal_simpy`` (target <= 1.3), the engine's cost per update at
  1k-30k workers beside bare SimPy's, and 30,000 workers x 100 updates (target < 60 s).
- ``sync_vs_scan_limit`` / ``async_vs_scan_limit``: the trainer against one bare ``lax.scan``
  computing the same gradients on the same batches (``training_limit.py``; targets >= 0.9, >= 0.6).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import Simulation
from stragglersim.core.fastpath import fast_simulate
from stragglersim.training.evaluation import describe_device

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling benchmark scripts
import engine as engine_bench  # noqa: E402
import fastpath as fastpath_bench  # noqa: E402
import training_limit  # noqa: E402


def training_ratio(strategy: str) -> float:
    out = subprocess.run(
        [sys.executable, str(HERE / "training.py"), "--strategy", strategy], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])[f"{'sync' if strategy == 'backup' else 'async'}_vs_bare"]


def main() -> None:
    results = {"device": describe_device()}
    results["sync_vs_bare"] = training_ratio("backup")
    results["async_vs_bare"] = training_ratio("async")
    long = RunConfig(**{**engine_bench.CANCEL.to_dict(), "steps": 10_000})
    start = time.perf_counter()
    Simulation(long).run()
    engine_long = time.perf_counter() - start
    start = time.perf_counter()
    fast_simulate(long, records=False)
    fast = time.perf_counter() - start
    results["fast_path_speedup"] = engine_long / fast
    big = RunConfig(
        strategy="backup",
        semantics="cancel",
        workers=9_900,
        backups=100,
        steps=1_000,
        latency="lognormal:mu=0,sigma=0.5",
        timing_only=True,
        log_gradients="none",
    )
    start = time.perf_counter()
    fast_simulate(big, records=False)
    results["scale_10k_workers_s"] = time.perf_counter() - start
    results["scale_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    limits = {**fastpath_bench.measure(), **engine_bench.measure(), **training_limit.measure()}
    results.update(limits)
    shown = {k: "n/a" if results[k] is None else f"{results[k]:.2f}" for k in ("sync_vs_bare", "async_vs_bare")}
    print(
        f"sync training {shown['sync_vs_bare']}x and async {shown['async_vs_bare']}x a bare JAX loop; "
        f"engine {results['engine_vs_minimal_simpy']:.2f}x a minimal SimPy model (best of 3: "
        f"{results['engine_s']:.2f} s vs {results['minimal_simpy_s']:.2f} s); "
        f"fast path {results['fast_path_speedup']:.0f}x the engine ({engine_long:.2f} s vs {fast:.3f} s); "
        f"10,000 workers x 1,000 updates in {results['scale_10k_workers_s']:.2f} s"
    )
    print(
        f"against the limits: fast path {results['fast_path_vs_numpy_limit']:.2f}x NumPy's order statistic "
        f"(target 0.5); engine {results['engine_vs_minimal_simpy']:.2f}x minimal SimPy (target 1.3); training "
        f"{results['sync_vs_scan_limit']:.2f}x (sync, target 0.9) and {results['async_vs_scan_limit']:.2f}x (async, "
        f"target 0.6) a bare lax.scan; 100,000 workers x 1,000 updates in {results['scale_100k_workers_s']:.2f} s; "
        f"30,000 workers x 100 updates on the engine in {results['engine_30k_x_100_s']:.1f} s"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

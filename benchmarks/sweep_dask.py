"""The cost of running a sweep on Dask instead of local processes, on the same machine.

    python benchmarks/sweep_dask.py [--runs 16] [--workers 2]

Runs the same sweep twice in this process: through a local process pool of K jobs, then through
``--scheduler local:K`` (a Dask LocalCluster of K one-thread worker processes; its start-up is
timed apart). Prints both wall times, their ratio (Dask over local, lower is better) and whether
the two results.csv are byte-identical; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from stragglersim.core.config import RunConfig
from stragglersim.studies.grids import Grid
from stragglersim.studies.sweeps import run_sweep


def configs(runs: int, timing_only: bool) -> list[RunConfig]:
    axes = {"strategy": ["backup"], "workers": [8], "backups": [0, 1, 2, 3], "seed": list(range(runs // 4))}
    axes |= {"steps": [4000 if timing_only else 200], "timing_only": [timing_only], "eval_every": ["100"]}
    return Grid(axes).configs()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16, help="runs per sweep (a multiple of 4)")
    parser.add_argument("--workers", type=int, default=2, help="local jobs and Dask workers")
    parser.add_argument("--training", action="store_true", help="JAX training runs instead of timing-only runs")
    args = parser.parse_args()
    todo = configs(args.runs, not args.training)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        start = time.perf_counter()
        run_sweep(todo, out / "local", jobs=args.workers)
        local_s = time.perf_counter() - start
        connected = []  # the sweep logs the scheduler's address once the cluster is up and checked
        start = time.perf_counter()
        run_sweep(
            todo, out / "dask", scheduler=f"local:{args.workers}", log=lambda m: connected.append(time.perf_counter())
        )
        end = time.perf_counter()
        startup_s, dask_s = connected[0] - start, end - connected[0]
        same = (out / "dask" / "results.csv").read_bytes() == (out / "local" / "results.csv").read_bytes()
    result = {
        "runs": len(todo),
        "kind": "training" if args.training else "timing-only",
        "workers": args.workers,
        "local_pool_s": round(local_s, 2),
        "dask_s": round(dask_s, 2),
        "dask_startup_s": round(startup_s, 2),
        "dask_over_local": round(dask_s / local_s, 2),
        "identical_results": same,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""What measuring gradient quality costs: a run with ``--quality-every K`` against the same run
without quality, in this process, on the device ``jax.devices()`` gives.

Times are differential (runs of 3n updates minus runs of n, the best of three each), so
compilation and set-up cancel out. The issue's bounds: K = 10 at most 1.3x, K = 1 at most 3x.

    python benchmarks/quality_cost.py [--steps 400] [--reference-batch 2048] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

from stragglersim.core.config import RunConfig
from stragglersim.training.evaluation import describe_device
from stragglersim.training.trainer import train

CASES = {  # the worked example's runs: a 3-hidden-layer MLP on mnist1d
    "async P=16": dict(strategy="async", workers=16),
    "async P=64": dict(strategy="async", workers=64),
    "sync N=16": dict(strategy="sync", workers=16),
    "backup N=16 B=2": dict(strategy="backup", workers=16, backups=2),
    "softsync P=16 c=4": dict(strategy="softsync", workers=16, softsync_n=4),
}


def seconds(config: RunConfig) -> float:
    start = time.perf_counter()
    train(config)
    return time.perf_counter() - start


def differential(make, steps: int) -> float:
    """Seconds per update in the steady state: (best of 3 at 3n) - (best of 3 at n), over 2n."""
    seconds(make(steps))  # compile
    short = min(seconds(make(steps)) for _ in range(3))
    long = min(seconds(make(3 * steps)) for _ in range(3))
    return (long - short) / (2 * steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--reference-batch", type=int, default=RunConfig.reference_batch)
    parser.add_argument("--cases", default=",".join(CASES), help="which of: " + ", ".join(CASES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in args.cases.split(","):

        def make(steps, quality=None, name=name):
            return RunConfig(
                **CASES[name],
                dataset="mnist1d",
                hidden="128,128,128",
                lr=0.05,
                steps=steps,
                eval_every=str(3 * steps),
                quality_every=quality,
                reference_batch=args.reference_batch,
            )

        base = differential(lambda steps, make=make: make(steps), args.steps)
        row = {"case": name, "ms_per_update": 1e3 * base}
        for k in (10, 1):
            row[f"K={k}"] = differential(lambda steps, make=make, k=k: make(steps, k), args.steps) / base
        rows.append(row)
        if not args.json:
            print(f"{name:>20}: {row['ms_per_update']:.3f} ms/update; K=10 {row['K=10']:.2f}x, K=1 {row['K=1']:.2f}x")
    if args.json:
        print(json.dumps({"device": describe_device(), "reference_batch": args.reference_batch, "rows": rows}))
    else:
        print(f"device: {describe_device()}, reference batch {args.reference_batch}")


if __name__ == "__main__":
    main()

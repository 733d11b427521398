"""A user's own model costs what the built-in costs: the MLP of ``tests/own_components.py`` (plain JAX,
named by import path, with a user sgd factory) against the built-in ``mlp`` and ``sgd``, same data
(MNIST-1D), same seeds, under backup workers (the fused sync step) and async (the stale path).

Each pair is compiled once (a warm-up run each), then timed over alternating repetitions in this
process, on the device ``jax.devices()`` gives; the ratio is user / built-in of the best wall time
(as timeit: the cost without interference from the machine's other work; the ratio of the medians
too), and the two runs' training losses must be identical (same updates, same numbers).

    python benchmarks/own_model.py [--steps 2000] [--repeats 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # own_components: the user's module

from stragglersim.core.config import RunConfig  # noqa: E402 (after the path to the user's module)
from stragglersim.training.evaluation import describe_device  # noqa: E402
from stragglersim.training.trainer import train  # noqa: E402

USER = {"model": "own_components:mlp", "optimizer": "own_components:sgd"}
CASES = {  # name: (run, its updates per --steps: each run about a second here, so timer noise stays small)
    "backup N=16 B=2": (RunConfig(strategy="backup", workers=16, backups=2, dataset="mnist1d", eval_every="100"), 1),
    "async P=16": (RunConfig(strategy="async", workers=16, dataset="mnist1d", eval_every="500"), 5),
}


def timed(config: RunConfig) -> tuple[float, list[float]]:
    start = time.perf_counter()
    _, _, result = train(config)
    return time.perf_counter() - start, [row[3] for row in result.steps]


def measure(base: RunConfig, steps: int, repeats: int) -> dict:
    builtin, user = replace(base, steps=steps), replace(base, steps=steps, **USER)
    _, losses_builtin = timed(builtin)  # warm-up: each compiles here, once
    _, losses_user = timed(user)
    times = {"builtin": [], "user": []}
    for i in range(repeats):
        for name in ("builtin", "user") if i % 2 == 0 else ("user", "builtin"):
            times[name].append(timed(builtin if name == "builtin" else user)[0])
    b, u = min(times["builtin"]), min(times["user"])  # best of R (as timeit): the cost without interference
    median = statistics.median(times["user"]) / statistics.median(times["builtin"])
    same = losses_builtin == losses_user
    return {"builtin_s": b, "user_s": u, "ratio": u / b, "median_ratio": median, "same_losses": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = {name: measure(base, args.steps * factor, args.repeats) for name, (base, factor) in CASES.items()}
    if args.json:
        print(json.dumps({"device": describe_device(), "steps": args.steps, "cases": rows}, indent=2))
        return
    print(f"device: {describe_device()}; best of {args.repeats}")
    for (name, row), (_, factor) in zip(rows.items(), CASES.values(), strict=True):
        print(
            f"{name:18} {args.steps * factor} updates: built-in {row['builtin_s']:.3f} s  user {row['user_s']:.3f} s  "
            f"ratio {row['ratio']:.3f} (of medians {row['median_ratio']:.3f})  same losses: {row['same_losses']}"
        )


if __name__ == "__main__":
    main()

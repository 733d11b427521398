"""What a learning-rate grid costs: the same runs with the rate as optimizer state (one compilation
shared by every rate, the default for sgd/momentum/adam) against the rate baked into the code (one
compilation per rate, as before and as rmsprop still does), in this process, on the device
``jax.devices()`` gives. Also a sweep's two worker processes with and without the persistent
compilation cache.

    python benchmarks/tuning_compile.py [--rates 6] [--steps 300] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

from stragglersim.core.config import RunConfig
from stragglersim.studies.sweeps import run_sweep
from stragglersim.training import optim, steps, trainer
from stragglersim.training.evaluation import describe_device
from stragglersim.training.trainer import train

BASE = RunConfig(strategy="async", workers=16, dataset="mnist1d", hidden="128,128,128", eval_every="100")


def grid(rates: int, steps_: int) -> list[RunConfig]:
    return [replace(BASE, steps=steps_, lr=0.001 * 3**i) for i in range(rates)]


def in_process(configs: list[RunConfig], *, shared: bool) -> float:
    """Seconds to train ``configs`` one after another in this process, from an empty compilation cache."""
    steps._COMPILED.clear()
    with contextlib.ExitStack() as stack:
        if not shared:  # the rate baked into the code, and into the compilation's key
            for module in (optim, trainer):
                stack.enter_context(mock.patch.object(module, "lr_in_state", lambda config, counted: False))
        start = time.perf_counter()
        for config in configs:
            train(config)
        return time.perf_counter() - start


def pooled(configs: list[RunConfig], *, cache: bool) -> float:
    """Seconds of a 2-process sweep of ``configs`` into a new folder, with or without a (new) persistent cache."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        env.update(
            {"JAX_COMPILATION_CACHE_DIR": str(Path(tmp) / "jax")} if cache else {"STRAGGLERSIM_COMPILE_CACHE": "off"}
        )
        with mock.patch.dict(os.environ, env, clear=True):
            start = time.perf_counter()
            run_sweep(configs, Path(tmp) / "sweep", jobs=2)
            return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, default=6)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configs = grid(args.rates, args.steps)
    train(replace(configs[0], steps=5))  # imports and the dataset, outside the timings
    baked, shared = in_process(configs, shared=False), in_process(configs, shared=True)
    without, with_cache = pooled(configs, cache=False), pooled(configs, cache=True)
    result = {
        "device": describe_device(),
        "runs": f"{args.rates} learning rates x {args.steps} updates, async P=16, MLP 3x128 on mnist1d",
        "in_process_rate_baked_s": baked,
        "in_process_rate_in_state_s": shared,
        "in_process_speedup": baked / shared,
        "sweep_2_workers_no_cache_s": without,
        "sweep_2_workers_cache_s": with_cache,
        "sweep_speedup": without / with_cache,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for key, value in result.items():
        print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")


if __name__ == "__main__":
    main()

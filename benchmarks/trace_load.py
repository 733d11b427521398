"""Loading a 1,000,000-row canonical trace (vectorised parsing), against reading the same
file's bytes, in the same process.

    python benchmarks/trace_load.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from stragglersim.latency.traces import Trace, read_trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    workers = 100
    steps = args.rows // workers
    rng = np.random.default_rng(0)
    trace = Trace(
        np.repeat(np.arange(workers), steps),
        np.tile(np.arange(steps), workers),
        rng.lognormal(size=workers * steps),
        None,
        "synthetic",
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.csv"
        trace.write_csv(path)
        start = time.perf_counter()
        raw = path.read_bytes()
        read_bytes = time.perf_counter() - start
        start = time.perf_counter()
        loaded = read_trace(path)
        load = time.perf_counter() - start
    assert len(loaded.duration) == workers * steps
    print(
        f"{workers * steps} rows ({len(raw) / 1e6:.1f} MB): read_trace {load:.2f} s; "
        f"reading the bytes alone {read_bytes:.3f} s; ratio {load / read_bytes:.0f}x"
    )


if __name__ == "__main__":
    main()

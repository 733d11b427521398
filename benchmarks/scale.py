"""``scale`` at 4,096 workers (issue 32): a synthetic DP 512 x PP 8 job, 20 steps of 8 micro-batches,
drawn from the model fitted to the shipped AR trace.

Reports: the wall time of one draw with every replay ``scale`` makes of it (no-delay, ideal, M_S, M_W,
B = 1..4, the slowest 1% replaced), the process's peak memory, and the replay's rate in ops per second
against a bare NumPy pass over the same dependency arrays (each slot in topological order: the latest
end of what it waits for, plus its duration; no groups, no backups). Targets: under 60 s, under 8 GB,
and at least 0.3x the bare pass.

    python benchmarks/scale.py [--dp 512] [--pp 8] [--microbatches 8] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
from stragglersim.llm import trace as llm_trace
from stragglersim.llm.replay import replay
from stragglersim.llm.scale import fit, study, synth

ROOT = Path(__file__).resolve().parent.parent


def bare_pass(order: list[int], deps, duration: np.ndarray) -> np.ndarray:
    """The longest-path sweep with nothing but NumPy: start = latest end of the dependencies."""
    end = np.zeros_like(duration)
    for m in order:
        d = deps[m]
        start = end[d].max(axis=0) if len(d) > 1 else (end[d[0]] if len(d) else 0.0)
        end[m] = start + duration[m]
    return end


def best(func, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dp", type=int, default=512)
    parser.add_argument("--pp", type=int, default=8)
    parser.add_argument("--microbatches", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    meta = llm_trace.read_meta(ROOT / "traces/llm-whatif/meta-AR.yaml")
    trace = llm_trace.load(ROOT / "traces/llm-whatif/trace-AR.parquet", meta)
    t0 = time.perf_counter()
    job = fit.fit(trace, study.own_times(trace))
    fitted = time.perf_counter() - t0
    lay = synth.layout(job, args.pp, args.microbatches)
    config = study.ScaleConfig(dp=(args.dp,), pp=args.pp, microbatches=args.microbatches, steps=args.steps, draws=1)
    t0 = time.perf_counter()
    row = study._draw(job, lay, args.dp, 0, config)
    one_draw = time.perf_counter() - t0
    drawn = synth.draw(job, lay, args.dp, args.steps, np.random.default_rng(0))
    n_ops = drawn.durations.duration.size
    order = [m for g in lay.model.groups for m in g.members]
    t_replay = best(lambda: replay(drawn.trace, lay.model, drawn.durations))
    t_bare = best(lambda: bare_pass(order, lay.model.deps, drawn.durations.duration))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    workers = args.dp * args.pp
    rows = [
        ("workers (DP x PP), GPUs with TP 4", f"{workers:,}, {workers * meta.tp_size:,}"),
        ("ops per replay (slots x steps x DP)", f"{n_ops:,}"),
        ("fit the AR trace, s", f"{fitted:.2f}"),
        ("one draw and its 9 replays, s", f"{one_draw:.2f} (target < 60)"),
        ("peak memory of the process, GB", f"{peak / 1e9:.2f} (target < 8)"),
        ("one replay, s", f"{t_replay:.3f} ({n_ops / t_replay / 1e6:.1f} M ops/s)"),
        ("bare NumPy pass, s", f"{t_bare:.3f} ({n_ops / t_bare / 1e6:.1f} M ops/s)"),
        ("replay / bare rate", f"{t_bare / t_replay:.2f} (target >= 0.3)"),
        ("S of the draw", f"{row['slowdown']:.3f}"),
    ]
    for name, value in rows:
        print(f"{name:40} {value}")
    keys = {"scale_workers": workers, "scale_ops": n_ops, "scale_draw_s": one_draw, "scale_peak_gb": peak / 1e9}
    keys |= {"scale_replay_s": t_replay, "scale_bare_s": t_bare, "scale_rate_ratio": t_bare / t_replay}
    print(json.dumps(keys))


if __name__ == "__main__":
    main()

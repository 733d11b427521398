"""The what-if analysis of the shipped AR trace (117,216 ops, DP 4 x PP 4 x TP 4): reading and
validating it against reading the bare parquet file, one replay, the whole analysis, and the whole
`whatif` command (figures and Perfetto timelines included), in one process. Target: the full
analysis under 60 s on a 2-core CPU.

    python benchmarks/whatif.py [--trace traces/llm-whatif/trace-AR.parquet]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
from stragglersim.cli import main as cli
from stragglersim.llm import model as llm_model
from stragglersim.llm import replay as llm_replay
from stragglersim.llm import trace as llm_trace
from stragglersim.llm import whatif

ROOT = Path(__file__).resolve().parent.parent


def timed(func, repeat: int = 3) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = func()
        best = min(best, time.perf_counter() - t0)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=ROOT / "traces/llm-whatif/trace-AR.parquet")
    args = parser.parse_args()
    meta_path = args.trace.with_name(args.trace.stem.replace("trace-", "meta-") + ".yaml")
    meta = llm_trace.read_meta(meta_path)
    bare, _ = timed(lambda: pd.read_parquet(args.trace))
    load, trace = timed(lambda: llm_trace.load(args.trace, meta))
    build, model = timed(lambda: llm_model.build(trace))
    durations = llm_replay.no_delay(llm_replay.measured(trace, model)[0])
    one, _ = timed(lambda: llm_replay.replay(trace, model, durations), repeat=10)
    analysis, (result, _) = timed(lambda: whatif.analyse(trace), repeat=1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        status = cli.main(["whatif", str(args.trace), "--meta", str(meta_path), "--out", f"{tmp}/w", "--quiet"])
        command = time.perf_counter() - t0
    assert status == 0
    rows = [
        ("ops", f"{trace.n_ops:,}"),
        ("read the parquet file (pandas), s", f"{bare:.3f}"),
        ("read and validate (llm_trace.load), s", f"{load:.3f} ({load / bare:.1f}x the bare read)"),
        ("build the dependency model, s", f"{build:.3f}"),
        ("one replay of every step, s", f"{one:.4f} ({trace.n_ops / one / 1e6:.1f} M ops/s)"),
        (f"the whole analysis ({result['replays']} replays), s", f"{analysis:.2f}"),
        ("the whole whatif command (figures, timelines), s", f"{command:.2f} (target: analysis < 60)"),
    ]
    for name, value in rows:
        print(f"{name:52} {value}")
    print(json.dumps({"whatif_ops": trace.n_ops, "whatif_load_s": load, "whatif_replay_s": one,
                      "whatif_analysis_s": analysis, "whatif_command_s": command}))  # fmt: skip


if __name__ == "__main__":
    main()

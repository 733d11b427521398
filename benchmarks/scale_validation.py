"""How well ``scale`` predicts a job from part of it: the README's validation table.

Three checks (issue 32):
  - synthetic ground truth: jobs of DP 32 x PP 4 (8 micro-batches, 20 steps) drawn from the model
    fitted to the AR trace with a known share of slow workers; fit DP ranks 0-7 of each, predict
    DP 32, compare with the truth's own S;
  - leave ranks out on the shipped traces: fit some DP ranks, predict the full job's S;
  - the bracket: fit all ranks, predict the traced size, is the measured S inside the interval?

    python benchmarks/scale_validation.py [--truths 20] [--draws 20]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from stragglersim.cli import main as cli
from stragglersim.llm import trace as llm_trace
from stragglersim.llm.scale import fit, study, synth, validation

ROOT = Path(__file__).resolve().parent.parent
PYTORCH = {"ddp": (4, 1), "allreduce": (4, 1), "fsdp": (4, 1), "dp2pp2": (2, 2)}  # slow rank 1 in each
SUBSETS = {
    "AR": [None, (0, 1), (0, 2, 3), (1, 2, 3), (2, 3)],
    "ST": [None, (0,), (1,)],
    "ddp": [None, (0, 1), (1, 2), (2, 3)],
    "allreduce": [None, (0, 1), (2, 3)],
    "fsdp": [None, (0, 1), (2, 3)],
    "dp2pp2": [None, (0,), (1,)],
}


def load_traces(tmp: Path) -> dict:
    traces = {}
    for name in ("AR", "ST"):
        meta = llm_trace.read_meta(ROOT / f"traces/llm-whatif/meta-{name}.yaml")
        traces[name] = llm_trace.load(ROOT / f"traces/llm-whatif/trace-{name}.parquet", meta)
    for name, (dp, pp) in PYTORCH.items():
        out = tmp / f"trace-{name}.parquet"
        source = ROOT / f"traces/pytorch/{name}-slow1"
        assert cli.main(["import-ops", str(source), "--dp", str(dp), "--pp", str(pp), "--out", str(out)]) == 0
        traces[name] = llm_trace.load(out, llm_trace.read_meta(tmp / f"meta-{name}.yaml"))
    return traces


def row(label: str, subset: str, check: dict) -> str:
    lo, hi = check["interval"]
    inside = "yes" if check["inside"] else "**no**"
    return (
        f"| {label} | {subset} | {check['measured_slowdown']:.2f} | {check['predicted_slowdown']:.2f} "
        f"({lo:.2f}-{hi:.2f}) | {check['error']:+.0%} | {inside} |"
    )


def ground_truth(truths: int, draws: int) -> list[str]:
    trace = load_traces.cache["AR"]
    job = fit.fit(trace, study.own_times(trace))
    lay = synth.layout(job, 4, 8)
    rows = []
    for share in (0.0, 0.05):
        seen, blind = [], []
        for k in range(truths):
            truth = validation.ground_truth(job, lay, 32, 20, share, np.random.default_rng([32, k]))
            result = study.run(truth, study.ScaleConfig(dp=(32,), draws=draws, fit_ranks=tuple(range(8))))
            (seen if result["fit"]["slow_workers"] or share == 0 else blind).append(result["check"])
        for group, what in ((seen, "holds a slow worker" if share else ""), (blind, "holds none")):
            if not group:
                continue
            errors = np.array([c["error"] for c in group])
            inside = sum(c["inside"] for c in group)
            measured = np.mean([c["measured_slowdown"] for c in group])
            predicted = np.mean([c["predicted_slowdown"] for c in group])
            fit_holds = f", the fit {what}" if what else ""
            rows.append(
                f"| synthetic, slow share {share:.2f}: {len(group)} of {truths} truths{fit_holds}"
                f" | 0-7 of 32 | {measured:.2f} (mean) | {predicted:.2f} (mean) | {np.mean(np.abs(errors)):.0%} "
                f"(mean abs) | {inside} of {len(group)} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truths", type=int, default=20)
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()
    print("| job | DP ranks fitted | measured S | predicted S (95% of draws) | error | inside |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        load_traces.cache = load_traces(Path(tmp))
        for name, subsets in SUBSETS.items():
            trace = load_traces.cache[name]
            meta = trace.meta
            label = f"{name} (DP {meta.dp_size} x PP {meta.pp_size})"
            for subset in subsets:
                config = study.ScaleConfig(dp=(meta.dp_size,), draws=args.draws, fit_ranks=subset)
                result = study.run(trace, config)
                shown = "all" if subset is None else ",".join(map(str, subset))
                print(row(label, shown, result["check"]), flush=True)
        for line in ground_truth(args.truths, args.draws):
            print(line, flush=True)


if __name__ == "__main__":
    main()

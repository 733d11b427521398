"""``stragglersim whatif``: analyse an op-level trace and write its folder of results.

The folder holds ``whatif.json`` (every number), ``replicas.csv`` (each DP replica's time to its
gradients per step, a canonical ``worker,step,duration`` trace for ``fit``, ``validate`` and
``simulate --latency trace:``), the figures and Perfetto timelines of the original and ideal
replays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.boundary import check_input_file
from ..io.errors import InputError, named
from ..io.progress import progress_bar
from ..io.results import check_out_dir, staged_dir, write_json
from ..io.shipped import shipped_if_missing
from ..io.version import __version__
from ..latency.traces import Trace
from . import figures as whatif_plots
from . import trace as llm_trace
from . import whatif


def run_whatif(
    trace_path: Path, meta_path: Path | None, out: Path, *, overwrite: bool = False, quiet: bool = False
) -> str:
    """Analyse ``trace_path`` (parquet or CSV) with the sizes in ``meta_path`` (default: the
    ``meta-NAME.yaml`` beside ``trace-NAME.parquet``), write ``out``; returns the summary to print."""
    trace, trace_path, meta_path = load_inputs(trace_path, meta_path, out, overwrite=overwrite, command="whatif")
    bar = progress_bar(len(FIGURES), desc="what-if replays and figures", quiet=quiet, unit="step")  # + the replays
    try:
        result, replays = whatif.analyse(trace, progress=bar)
        with staged_dir(out, overwrite=overwrite, inputs=[trace_path, meta_path]) as tmp:
            write_json(tmp / "whatif.json", {**result, "trace_path": str(trace_path), "version": __version__})
            _replicas(whatif.replica_times(replays["original"], trace), trace_path).write_csv(tmp / "replicas.csv")
            _figures(result, trace, replays, tmp, bar)
    finally:
        bar.close()
    return "\n".join([*summary_lines(result), f"wrote {out}/whatif.json, replicas.csv, figures and timelines"])


def load_inputs(
    trace_path: Path, meta_path: Path | None, out: Path, *, overwrite: bool, command: str
) -> tuple[llm_trace.OpTrace, Path, Path]:
    """The checked trace of ``trace_path`` (a shipped one by its repository path too) with the sizes in
    ``meta_path`` (default: the meta beside it), once ``out`` is known to be writable; and both paths."""
    trace_path = shipped_if_missing(trace_path)
    if not trace_path.exists():
        raise InputError(f"{trace_path}: no such file")
    if trace_path.is_dir():
        raise InputError(
            f"{trace_path}: a folder; {command} reads an op-level table (.parquet or .csv): convert profiler "
            "traces with import-ops first"
        )
    meta_path = shipped_if_missing(meta_path) if meta_path is not None else _meta_beside(trace_path)
    check_out_dir(out, overwrite=overwrite, inputs=[trace_path, meta_path])
    check_input_file(meta_path, "--meta ")
    check_input_file(trace_path)
    return llm_trace.load(trace_path, llm_trace.read_meta(meta_path)), trace_path, meta_path


def _meta_beside(trace_path: Path) -> Path:
    """``meta-NAME.yaml`` beside ``trace-NAME.parquet`` (the artifact's naming)."""
    name = trace_path.stem.removeprefix("trace-")
    meta = trace_path.with_name(f"meta-{name}.yaml")
    if not meta.is_file():
        raise InputError(f"{trace_path}: give {named('meta')} META.yaml (no {meta.name} beside the trace)")
    return meta


def summary_lines(r: dict) -> list[str]:
    """The findings in a few lines."""
    meta, times, err = r["meta"], r["step_time"], r["replay_error"]
    layout = f"DP {meta['dp_size']} x PP {meta['pp_size']} x TP {meta['tp_size']}"
    top = ", ".join(f"DP {w['dp_rank']} stage {w['stage']}" for w in r["top_workers"])
    op, op_s = max(r["by_optype"].items(), key=lambda kv: kv[1])
    backups = "; ".join(
        f"B={b['backups']}: {b['mean_step_time']:.4g} s, drops {b['samples_dropped']:.0%}" for b in r["backups"]
    )
    lines = [
        f"{r['trace']}: {r['ops']:,} ops, {len(r['steps'])} steps, {layout}",
        f"replay with its own durations: mean step time {_mean(times['replayed']):.4g} s vs measured "
        f"{_mean(times['measured']):.4g} s (largest error of a step {err['max']:.3%})",
        f"slowdown S = {r['slowdown']:.3f} (no delay {r['t_ori']:.4g} s / ideal {r['t_ideal']:.4g} s); "
        f"launch delays {r['launch_slowdown']:.3f}",
        f"S by DP rank: {_ranked(r['by_dp_rank'])}; by stage: {_ranked(r['by_stage'])}; "
        f"worst op type: {op} ({op_s:.3f})",
        f"M_S = {_fixed(r['M_S'])} (the share of the gap the last stage explains), M_W = {_fixed(r['M_W'])} "
        f"(the top 3% of workers: {top})",
        f"backup replicas (measured durations): {backups}",
    ]
    if "span" in times:
        lines.append(
            f"measured: each rank's step {_mean(times['measured']):.4g} s (the iteration time); the span from "
            f"the first rank's start to the last rank's end {_mean(times['span']):.4g} s (ranks start a step at "
            "different times)"
        )
    if not r["backups_apply"]:
        lines.append("note: the trace has no data-parallel gradient collective: backup replicas do not apply")
    skew = err["launch_delays_set_to_0"] + err["transfer_times_set_to_0"]
    if skew:
        lines.append(
            f"note: {err['launch_delays_set_to_0']:,} launch delays and {err['transfer_times_set_to_0']:,} transfer "
            "times were below -10 ms and were set to 0: do the ranks' clocks agree?"
        )
    return lines


def _ranked(scores: dict, most: int = 8) -> str:
    """``0 1.976, 2 1.011, ...``: the largest first, at most ``most`` of them."""
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{k} {v:.3f}" for k, v in ranked[:most])
    return shown + (f", ... ({len(ranked)} in all)" if len(ranked) > most else "")


def _fixed(value) -> str:
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _mean(values) -> float:
    return sum(values) / len(values)


def _replicas(times: np.ndarray, source: Path) -> Trace:
    """``times[step, dp_rank]`` as a canonical trace: worker = DP rank, step = index in recorded order."""
    n_steps, dp = times.shape
    worker, step = np.repeat(np.arange(dp), n_steps), np.tile(np.arange(n_steps), dp)
    return Trace(worker, step, times.T.ravel(), None, str(source))


FIGURES = ("figures", "timeline-original", "timeline-ideal")


def _figures(result: dict, trace, replays: dict, tmp: Path, bar) -> None:
    whatif_plots.plot_whatif(result, tmp)
    bar.update(1)
    for name, replay in replays.items():
        table = whatif.op_table(trace, replay)
        whatif_plots.write_timeline(table, tmp / f"timeline-{name}.json.gz", title=f"{result['trace']}: {name} replay")
        bar.update(1)

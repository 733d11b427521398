"""``stragglersim whatif``: analyse an op-level trace and write its folder of results.

The folder holds ``whatif.json`` (every number), ``replicas.csv`` (each DP replica's time to its
gradients per step, a canonical ``worker,step,duration`` trace for ``fit``, ``validate`` and
``simulate --latency trace:``), the figures and Perfetto timelines of the original and ideal
replays.
"""

from __future__ import annotations

from pathlib import Path

from . import llm_trace, whatif
from ._version import __version__
from .boundary import check_input_file
from .errors import InputError
from .progress import progress_bar
from .results import staged_dir, write_json, write_text
from .shipped import shipped_if_missing


def run_whatif(
    trace_path: Path, meta_path: Path | None, out: Path, *, overwrite: bool = False, quiet: bool = False
) -> str:
    """Analyse ``trace_path`` (parquet or CSV) with the sizes in ``meta_path`` (default: the
    ``meta-NAME.yaml`` beside ``trace-NAME.parquet``), write ``out``; returns the summary to print."""
    from .results import check_out_dir

    trace_path = shipped_if_missing(trace_path)
    meta_path = shipped_if_missing(meta_path) if meta_path is not None else _meta_beside(trace_path)
    check_out_dir(out, overwrite=overwrite, inputs=[trace_path, meta_path])
    check_input_file(meta_path, "--meta ")
    check_input_file(trace_path)
    meta = llm_trace.read_meta(meta_path)
    trace = llm_trace.load(trace_path, meta)
    bar = progress_bar(whatif.expected_replays(trace), desc="what-if replays", quiet=quiet, unit="replay")
    try:
        result, replays = whatif.analyse(trace, progress=bar)
    finally:
        bar.close()
    with staged_dir(out, overwrite=overwrite, inputs=[trace_path, meta_path]) as tmp:
        write_json(tmp / "whatif.json", {**result, "trace_path": str(trace_path), "version": __version__})
        write_text(tmp / "replicas.csv", _replicas_csv(whatif.replica_times(replays["original"], trace)))
        _figures(result, trace, replays, tmp)
    return "\n".join([*summary_lines(result), f"wrote {out}/whatif.json, replicas.csv, figures and timelines"])


def _meta_beside(trace_path: Path) -> Path:
    """``meta-NAME.yaml`` beside ``trace-NAME.parquet`` (the artifact's naming)."""
    name = trace_path.stem.removeprefix("trace-")
    meta = trace_path.with_name(f"meta-{name}.yaml")
    if not meta.is_file():
        raise InputError(f"{trace_path}: give --meta META.yaml (no {meta.name} beside the trace)")
    return meta


def summary_lines(r: dict) -> list[str]:
    """The findings in a few lines."""
    meta, times = r["meta"], r["step_time"]
    layout = f"DP {meta['dp_size']} x PP {meta['pp_size']} x TP {meta['tp_size']}"
    top = ", ".join(f"DP {w['dp_rank']} stage {w['stage']}" for w in r["top_workers"])
    worst = lambda m: max(m.items(), key=lambda kv: kv[1])  # noqa: E731
    dp, st, op = worst(r["by_dp_rank"]), worst(r["by_stage"]), worst(r["by_optype"])
    err = r["replay_error"]
    backups = "; ".join(
        f"B={b['backups']}: {b['mean_step_time']:.4g} s, drops {b['samples_dropped']:.0%}" for b in r["backups"]
    )
    return [
        f"{r['trace']}: {r['ops']:,} ops, {len(r['steps'])} steps, {layout}",
        f"replay with its own durations: mean step time {_mean(times['replayed']):.4g} s vs measured "
        f"{_mean(times['measured']):.4g} s (largest error of a step {err['max']:.3%})",
        f"slowdown S = {r['slowdown']:.3f} (no delay {r['t_ori']:.4g} s / ideal {r['t_ideal']:.4g} s); "
        f"launch delays {r['launch_slowdown']:.3f}",
        f"attributed to: DP rank {dp[0]} (S {dp[1]:.3f}), stage {st[0]} (S {st[1]:.3f}), {op[0]} (S {op[1]:.3f})",
        f"M_S = {r['M_S']:.2f} (the last stage explains that share of the gap), M_W = {r['M_W']:.2f} "
        f"(the top 3% of workers: {top})",
        f"backup replicas (measured durations): {backups}",
    ]


def _mean(values) -> float:
    return sum(values) / len(values)


def _replicas_csv(times) -> str:
    lines = ["worker,step,duration"]
    for step, row in enumerate(times):
        lines += [f"{worker},{step},{value!r}" for worker, value in enumerate(row.tolist())]
    return "\n".join(lines) + "\n"


def _figures(result: dict, trace, replays: dict, tmp: Path) -> None:
    from . import whatif_plots

    whatif_plots.plot_whatif(result, tmp)
    for name, replay in replays.items():
        table = whatif.op_table(trace, replay)
        whatif_plots.write_timeline(table, tmp / f"timeline-{name}.json.gz", title=f"{result['trace']}: {name} replay")

"""Figures and Perfetto timelines of ``stragglersim whatif``, drawn from its result (``whatif.json``)
and from replayed op tables; nothing here replays a trace.

- ``plot_whatif``: the worker heatmap (DP rank x stage, coloured by attributed slowdown), the step
  times of the measured, replayed, no-delay and ideal runs, and what backup replicas buy.
- ``write_timeline``: a Chrome trace JSON (Perfetto opens it) of one replay: one process per
  worker, one thread per stream (compute, pipeline send/recv, data-parallel collectives).
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.ticker import MaxNLocator, PercentFormatter

from ..io import storage
from ..plots.figures import _pyplot, save_figure

if TYPE_CHECKING:
    import pandas as pd

STREAMS = ("compute", "pipeline send/recv", "data-parallel")  # thread names, in this order (tid 0, 1, 2)
PIPELINE_OPS = frozenset({"forward-send", "forward-recv", "backward-send", "backward-recv"})
DATA_PARALLEL_OPS = frozenset(
    {
        "params-all-gather",
        "grads-reduce-scatter",
        "separate-grads-all-reduce",
        "embedding-grads-all-reduce",
        "optimizer-clip-main-grad",
    }
)
STEP_GAP = 0.02  # the gap between replayed steps laid end to end, as a fraction of the longest step
FEW_STEPS = 12  # up to this many steps, the step-time figure's ticks name the recorded step numbers


def plot_whatif(result: dict, out: Path) -> list[Path]:
    """Save the three figures of a what-if result in folder ``out``, each as PNG and PDF:
    ``whatif-heatmap``, ``whatif-step-times`` and ``whatif-backups``.

    Args:
        result: the analysis as written to ``whatif.json`` (keys ``dp_size``, ``pp_size``,
            ``trace``, ``steps``, ``step_time``, ``slowdown``, ``M_S``, ``M_W``, ``worker_score``,
            ``backups``).
        out: an existing folder.

    Returns:
        The files written, PNG then PDF for each figure.
    """
    out = Path(out)
    written = []
    for stem, draw in (
        ("whatif-heatmap", heatmap_figure),
        ("whatif-step-times", step_times_figure),
        ("whatif-backups", backups_figure),
    ):
        path = out / stem
        save_figure(draw(result), path, bbox_inches="tight", pad_inches=0.1)  # the text box beside the axes
        written += [path.with_suffix(".png"), path.with_suffix(".pdf")]
    return written


def heatmap_figure(result: dict):
    """DP rank (rows) x pipeline stage (columns), coloured by each worker's attributed slowdown (the
    smaller of its DP rank's and its stage's S), each cell annotated. The colour scale runs from 1
    (no slowdown) to the largest score, at least 1.05, so a map of 1.0s is one colour, not noise."""
    plt = _pyplot()
    score = np.array(result["worker_score"], dtype=float).reshape(result["dp_size"], result["pp_size"])
    dp, pp = score.shape
    top = max(1.05, float(np.nanmax(score)) if np.isfinite(score).any() else 1.0)
    fig, ax = plt.subplots(figsize=(min(2.0 + 1.1 * pp, 16), min(1.8 + 0.75 * dp, 12)), layout="constrained")
    image = ax.imshow(score, cmap="Reds", vmin=1.0, vmax=top, aspect="auto", interpolation="nearest")
    if dp * pp <= 400:  # beyond that the numbers would not fit their cells
        size = 10 if dp * pp <= 64 else 7
        for (d, s), value in np.ndenumerate(score):
            dark = np.isfinite(value) and image.norm(value) > 0.6  # white text on the dark end of the scale
            text = f"{value:.2f}" if np.isfinite(value) else "n/a"
            ax.text(s, d, text, ha="center", va="center", fontsize=size, color="white" if dark else "black")
    ax.set_xticks(range(pp), [f"stage {s}" for s in range(pp)], fontsize=9 if pp <= 16 else 6)
    ax.set_yticks(range(dp), [f"DP {d}" for d in range(dp)], fontsize=9 if dp <= 16 else 6)
    ax.set_xlabel("pipeline stage")
    ax.set_ylabel("data-parallel rank")
    fig.colorbar(image, ax=ax, label="worker score = min(DP rank S, stage S)")
    ax.set_title(
        f"{result['trace']}: where the slowdown sits (overall S = {_fmt(result['slowdown'])}, "
        f"M_W = {_fmt(result.get('M_W'))})\n"
        "a cell is the smaller of its DP rank's and its stage's attributed S",
        fontsize=10,
    )
    return fig


def step_times_figure(result: dict):
    """Step time per recorded step: measured, replayed with the trace's own durations and launch
    delays, replayed without launch delays, and the ideal replay (no op straggles)."""
    plt = _pyplot()
    steps = list(result["steps"])
    times = result["step_time"]
    x = np.arange(len(steps))
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    lines = (  # measured and replayed agree within 1%: a line and open markers keep both visible
        ("measured", dict(color="black", lw=1.8, marker="o", ms=4)),
        ("replayed", dict(color="C0", lw=0, marker="o", ms=8, mfc="none", mew=1.2, label="replayed (own durations)")),
        ("no_delay", dict(color="C1", lw=1.2, ls="--", marker="s", ms=3, label="no launch delay")),
        ("ideal", dict(color="C2", lw=1.5, ls="-.", marker="^", ms=4, label="ideal (no straggling op)")),
    )
    top = 0.0
    for key, style in lines:
        if key in times:
            y = np.array([np.nan if v is None else v for v in times[key]], dtype=float)
            ax.plot(x, y, **{"label": key, **style})
            top = max(top, float(np.nanmax(y)) if np.isfinite(y).any() else 0.0)
    ax.set_ylim(0, 1.08 * top if top > 0 else 1.0)
    ax.set_xlim(-0.5, max(len(steps) - 0.5, 0.5))
    if len(steps) <= FEW_STEPS:
        ax.set_xticks(x, [str(s) for s in steps])
        ax.set_xlabel("recorded step")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"step index, in recorded order ({len(steps)} steps, numbered {steps[0]} to {steps[-1]})")
    ax.set_ylabel("step time (s)")
    ax.set_title(f"{result['trace']}: step times, measured and replayed", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    summary = "\n".join(
        (
            f"S = {_fmt(result['slowdown'])}",
            f"M_S = {_fmt(result.get('M_S'))}",
            f"M_W = {_fmt(result.get('M_W'))}",
            "",
            "S: mean step time, no delay / ideal",
            "M_S: share due to the last stage",
            "M_W: share due to the top 3% of workers",
        )
    )
    ax.text(
        1.01,
        0.0,
        summary,
        transform=ax.transAxes,
        va="bottom",
        ha="left",
        fontsize=8,
        bbox=dict(boxstyle="round", facecolor="white", edgecolor="0.7"),
    )
    return fig


def backups_figure(result: dict):
    """Mean step time (left) and the fraction of samples dropped (right) against the number of
    backup replicas B, on the measured durations and on the ideal ones."""
    plt = _pyplot()
    rows = sorted(result["backups"], key=lambda r: r["backups"])
    b = np.array([r["backups"] for r in rows], dtype=int)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    series = (  # ideal markers open: where both lines meet (B = 0 drops nothing) both stay visible
        ("", "measured durations", dict(color="C3", marker="o", ls="-")),
        ("ideal_", "ideal durations", dict(color="C2", marker="s", ls="--", ms=9, mfc="none", mew=1.5)),
    )
    top = 0.0
    for prefix, label, style in series:
        mean = np.array([_num(r.get(prefix + "mean_step_time")) for r in rows])
        dropped = np.array([_num(r.get(prefix + "samples_dropped")) for r in rows])
        if np.isfinite(mean).any():
            left.plot(b, mean, label=label, **style)
            top = max(top, float(np.nanmax(mean)))
        if np.isfinite(dropped).any():
            right.plot(b, dropped, label=label, **style)
    left.set_ylim(0, 1.1 * top if top > 0 else 1.0)
    left.set_ylabel("mean step time (s)")
    left.set_title("time between optimizer updates", fontsize=10)
    right.set_ylim(-0.02, 1.02)
    right.yaxis.set_major_formatter(PercentFormatter(1.0))
    right.set_ylabel("samples dropped")
    right.set_title("samples whose gradients were dropped", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("backup replicas B (the first dp_size - B replicas make each update)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(b):
            ax.set_xlim(b.min() - 0.3, b.max() + 0.3)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"{result['trace']}: backup replicas on the data-parallel dimension (dp_size = {result['dp_size']})")
    return fig


def stream_of(optype: str) -> int:
    """The thread an op type is drawn on: 0 compute, 1 pipeline send/recv, 2 data-parallel."""
    return 1 if optype in PIPELINE_OPS else 2 if optype in DATA_PARALLEL_OPS else 0


def timeline_events(ops: pd.DataFrame) -> list[dict]:
    """The Chrome trace events of a replayed op table (see ``write_timeline``)."""
    need = ["dp_rank", "stage", "step", "optype", "seq_id", "start", "end"]
    missing = [c for c in need if c not in ops.columns]
    if missing:
        raise ValueError(f"op table lacks columns {missing}")
    steps = sorted(int(s) for s in ops["step"].unique())
    span = ops.groupby("step")["end"].max()
    longest = float(span.max()) if len(span) else 0.0
    gap = STEP_GAP * longest if longest > 0 else 1e-6
    offset, at = {}, 0.0
    for s in steps:  # steps were replayed each from 0: lay them end to end
        offset[s] = at
        at += max(float(span[s]), 0.0) + gap
    workers = sorted({(int(d), int(s)) for d, s in zip(ops["dp_rank"], ops["stage"], strict=True)})
    pid = {w: i for i, w in enumerate(workers)}
    events = []
    for w, p in pid.items():
        name = f"DP {w[0]} stage {w[1]}"
        events.append({"ph": "M", "name": "process_name", "pid": p, "args": {"name": name}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": p, "args": {"sort_index": p}})
        for tid, stream in enumerate(STREAMS):
            events.append({"ph": "M", "name": "thread_name", "pid": p, "tid": tid, "args": {"name": stream}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": p, "tid": tid, "args": {"sort_index": tid}})
    shift = ops["step"].astype(int).map(offset).to_numpy(dtype=float)
    start = ops["start"].to_numpy(dtype=float)
    ts = np.round((start + shift) * 1e6, 3)
    end = np.round((np.maximum(ops["end"].to_numpy(dtype=float), start) + shift) * 1e6, 3)
    ts = _snap(ops, ts, end)
    dur = np.round(end - ts, 3)  # from the rounded ends, so back-to-back ops stay back to back
    columns = zip(
        ops["dp_rank"].astype(int),
        ops["stage"].astype(int),
        ops["optype"].astype(str),
        ops["step"].astype(int),
        ops["seq_id"].astype(int),
        ts.tolist(),
        dur.tolist(),
        strict=True,
    )
    stream = {}
    for d, s, optype, step, seq, t, length in columns:
        tid = stream.get(optype)
        if tid is None:
            tid = stream[optype] = stream_of(optype)
        args = {"step": step, "seq_id": seq}
        events.append({"ph": "X", "pid": pid[d, s], "tid": tid, "name": optype, "ts": t, "dur": length, "args": args})
    return events


def _snap(ops: pd.DataFrame, ts: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Start an op at the previous op's end on its thread when they overlap by a rounding error
    (at most 2 ns, float noise of the replay), so that Perfetto nests nothing wrongly."""
    thread = ops["dp_rank"].astype(int).to_numpy() * 1_000_000 + ops["stage"].astype(int).to_numpy() * 10
    thread = thread + ops["optype"].astype(str).map(stream_of).to_numpy()
    order = np.lexsort((ts, thread))
    t, e, th = ts[order], end[order], thread[order]
    first = np.flatnonzero(np.r_[True, th[1:] != th[:-1]]) if len(th) else np.array([], int)
    segments = np.split(e, first[1:])  # one per thread; the latest end before each op of it
    previous = np.concatenate([np.maximum.accumulate(np.r_[-np.inf, seg[:-1]]) for seg in segments]) if len(e) else e
    nudge = (previous > t) & (previous - t <= 0.002)
    out = ts.copy()
    out[order[nudge]] = previous[nudge]
    return np.minimum(out, end)


def write_timeline(ops: pd.DataFrame, path: Path, *, title: str) -> int:
    """Write a replay as a Chrome trace JSON (Perfetto opens it), gzipped if ``path`` ends in ``.gz``.

    One process per worker (``DP d stage s``, sorted by DP rank then stage), one thread per stream
    (compute; pipeline send/recv; data-parallel collectives), one complete event per op named by
    its op type, with ``args`` ``{step, seq_id}``. Steps, replayed each from 0, are laid end to end
    in step order with a gap of 2% of the longest step between them. Written atomically.

    Args:
        ops: the replayed op table, one row per op: ``dp_rank, stage, step, optype, seq_id, start,
            end`` (start and end in seconds from the start of the op's step).
        path: the file to write (``.json`` or ``.json.gz``).
        title: shown in Perfetto's trace info (``metadata.title``).

    Returns:
        The number of events written (metadata included).
    """
    events = timeline_events(ops)
    document = {"traceEvents": events, "displayTimeUnit": "ms", "metadata": {"title": title}}
    text = json.dumps(document, allow_nan=False, separators=(",", ":"))  # finite by construction
    path = Path(path)
    if path.name.endswith(".gz"):
        storage.write_bytes(path, gzip.compress(text.encode(), compresslevel=6, mtime=0))  # mtime 0: same bytes
    else:
        storage.write_text(path, text)
    return len(events)


def _num(value) -> float:
    return float("nan") if value is None else float(value)


def _fmt(value) -> str:
    """A number with 2 decimals; "n/a" for a missing or non-finite one (M_S without a slowdown)."""
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    return f"{float(value):.2f}"

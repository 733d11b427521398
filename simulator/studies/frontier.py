"""The trade-off frontier: gradient quality against time per update, one point per configuration.

The study the simulator exists for: a strategy buys faster updates (less waiting for stragglers)
with worse gradients (stale, or fewer averaged). Each configuration is one point, the mean over its
seeds of the time per update (``sim_time / updates``) and of the gradient quality (the run's mean
cosine between the applied update and a reference: ``stale_cosine_mean``, staleness alone, and
``batch_cosine_mean``, sampling noise and staleness; older runs: ``mean_cosine``), with the 95%
Student-t interval across seeds on both axes (``aggregation.interval``). A diverged run's quality
is left out (its timing stands) and its point marked; a sweep without quality has no frontier.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..plots.figures import _pyplot, line_colours, numeric_order, save_figure
from ..plots.style import FigureSize, diverged_handle, mark_diverged, spans_octaves
from .aggregation import RunRecord, diverged, interval, order, points, value_of, varying
from .sweep_layout import axes_of, constants, layout, line_label, roles, short_name

QUALITY = ("stale_cosine_mean", "batch_cosine_mean")
FALLBACK = "mean_cosine"  # runs from before the two causes were measured apart: the batch cosine
QUALITY_LABEL = {
    "stale_cosine_mean": "stale cosine (staleness alone)",
    "batch_cosine_mean": "batch cosine (sampling and staleness)",
    "mean_cosine": "cosine with a large-batch gradient",
}
TIME_LABEL = "simulated seconds per update"
MARKERS = "osD^vPX*<>"


def quality_metrics(records: list[RunRecord]) -> list[str]:
    """The quality measures some run holds a number for: ``QUALITY``'s, else ``mean_cosine``, else none."""
    has = [q for q in QUALITY if any(value_of(r, q) is not None for r in records)]
    if has:
        return has
    return [FALLBACK] if any(value_of(r, FALLBACK) is not None for r in records) else []


def time_per_update(record: RunRecord) -> float | None:
    """``sim_time / updates`` (seconds); None for a run without updates."""
    sim_time, updates = value_of(record, "sim_time"), value_of(record, "updates")
    if sim_time is None or not updates:
        return value_of(record, "time_per_update")
    return sim_time / updates


def _stats(values: list[float], prefix: str) -> dict:
    mean, _, low, high = interval(values)
    cells = zip(("mean", "ci_low", "ci_high"), (mean, low, high), strict=True)
    return {f"{prefix}_{k}": None if math.isnan(v) else v for k, v in cells} | {f"{prefix}_n": len(values)}


def frontier_table(records: list[RunRecord]) -> tuple[list[str], list[dict]]:
    """One row per configuration (sorted by what varies): the varying fields, ``n_seeds``,
    ``diverged``, ``time_mean``, ``time_ci_low``, ``time_ci_high``, ``time_n`` (seconds per update
    over all seeds) and, for each quality measure Q, ``Q_mean``, ``Q_ci_low``, ``Q_ci_high``, ``Q_n``
    (over the seeds that did not diverge); None where undefined. Returns (quality measures, rows)."""
    labels = varying(records)
    quality = quality_metrics(records)
    rows = []
    for runs in points(records).values():
        row = {k: runs[0].config.get(k) for k in labels}
        row |= {"n_seeds": len(runs), "diverged": sum(diverged(r) for r in runs), "_runs": runs}
        row |= _stats([t for t in map(time_per_update, runs) if t is not None], "time")
        for q in quality:
            row |= _stats([v for v in (value_of(r, q) for r in runs) if v is not None], q)
        rows.append(row)
    return quality, sorted(rows, key=order(labels))


def plot_frontier(records: list[RunRecord], path: Path, *, figsize: str | None = None) -> list[dict]:
    """Draw the frontier (PNG and PDF), one panel per quality measure: each configuration's mean
    over seeds with its 95% t-intervals across seeds as bars on both axes, the configurations of one
    series (what varies but the sweep's x axis: the strategy, ...) joined in order of that axis and
    labelled with its value (``P=16``); a configuration with diverged seeds marked with an ×.
    Returns ``frontier_table``'s rows (without their runs)."""
    size = FigureSize.of(figsize)
    quality, rows = frontier_table(records)
    with size.rc():
        _draw(records, quality, rows, path, size)
    return [{k: v for k, v in row.items() if k != "_runs"} for row in rows]


def _draw(records: list[RunRecord], quality: list[str], rows: list[dict], path: Path, size: FigureSize) -> None:
    plt = _pyplot()
    lay = layout(records, [axes_of(r, "") for r in records])
    role = roles(records)
    semantics = {r.config.get("semantics") for r in records} - {None}
    series: dict[tuple, list[dict]] = {}
    for row in rows:
        a = axes_of(row["_runs"][0], "")
        key = tuple((n, a.get(n)) for n in (lay.panel, *lay.lines) if n)
        series.setdefault(key, []).append(row | {"_x": a.get(lay.x) if lay.x else None})
    keys = sorted(series, key=lambda k: tuple(numeric_order(v) for _, v in k))
    colours = line_colours(len(keys))
    stacked = size.name == "column" and len(quality) > 1  # a column has no room for two side by side
    grid = (len(quality), 1) if stacked else (1, len(quality))
    width, height = 5.2 * grid[1], 4.2 * grid[0] + (0.8 if size.paper else 0.0)
    fig, axes = plt.subplots(
        *grid, figsize=size.size(width, height), squeeze=False, **({"layout": "constrained"} if size.paper else {})
    )
    axes = axes.reshape(1, -1)
    handles, marked = [], False
    slowest = max((r["time_mean"] for r in rows if r["time_mean"] is not None), default=0.0)
    for ax, q in zip(axes[0], quality, strict=True):
        for i, key in enumerate(keys):
            pts = sorted(series[key], key=lambda r: numeric_order(r["_x"]))
            for row in pts:
                if row["diverged"] and row["time_mean"] is not None:
                    mark_diverged(ax, row["time_mean"], row["diverged"], row["n_seeds"], colours[i], size)
                    marked = True
            drawn = [r for r in pts if r["time_mean"] is not None and r[f"{q}_mean"] is not None]
            style = {"color": colours[i], "marker": MARKERS[i % len(MARKERS)], "ms": 5}
            (line,) = ax.plot([r["time_mean"] for r in drawn], [r[f"{q}_mean"] for r in drawn], "-", lw=1.2, **style)
            line.set_label(line_label(key, semantics, role) if key else "mean over seeds")
            if ax is axes[0][0]:
                handles.append(line)
            for r in drawn:
                ax.errorbar(
                    r["time_mean"],
                    r[f"{q}_mean"],
                    xerr=_bar(r, "time"),
                    yerr=_bar(r, q),
                    fmt="none",
                    ecolor=colours[i],
                    capsize=2.5,
                    lw=1,
                )
                if lay.x and r["_x"] is not None:
                    text = f"{short_name(lay.x, r.get('strategy'), role)}={r['_x']}"
                    right = r["time_mean"] >= slowest  # the rightmost label reads leftwards, inside the panel
                    ax.annotate(
                        text,
                        (r["time_mean"], r[f"{q}_mean"]),
                        xytext=(-4 if right else 4, 4),
                        textcoords="offset points",
                        ha="right" if right else "left",
                        fontsize=size.font(7),
                        color=colours[i],
                    )
        if spans_octaves([r["time_mean"] for r in rows if r["time_mean"] is not None]):
            ax.set_xscale("log")
        ax.set_xlabel(TIME_LABEL)
        ax.set_ylabel(QUALITY_LABEL.get(q, q.replace("_", " ")))
        ax.grid(alpha=0.3, which="both")
    seeds = sorted({r["n_seeds"] for r in rows})
    count = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    title = f"one point per configuration, mean over {count} seeds; bars: 95% t-intervals across seeds"
    if seeds[-1] == 1:
        title = "one point per configuration, one seed each (no interval)"
    shared = constants(records, lay)
    fig.suptitle(size.wrap(title + (f"\n{shared}" if shared else ""), fig.get_figwidth()), fontsize=size.font(10))
    if not size.paper:
        fig.tight_layout()
    if marked:
        handles.append(diverged_handle())
    if len(handles) > 1 or marked:
        where = {"loc": "outside lower center", "ncol": 1 if size.name == "column" else min(3, len(handles))}
        if not size.paper:
            where = {"loc": "center left", "bbox_to_anchor": (1.0, 0.5)}
        fig.legend(handles, [h.get_label() for h in handles], fontsize=size.font(8), **where)
    save_figure(fig, path, **({} if size.paper else {"bbox_inches": "tight"}))


def _bar(row: dict, prefix: str) -> np.ndarray | None:
    """The (2, 1) distances from the mean to the interval's ends, or None without an interval."""
    mean, low, high = row[f"{prefix}_mean"], row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"]
    return None if low is None else np.array([[mean - low], [high - mean]])

"""Sweep figures: each point the mean over seeds with a Student-t interval across seeds.

The figure is laid out from the grid itself (``sweep_layout``): one panel per semantics (or per
strategy), the x axis, one line per combination of the remaining varying axes. The spread shown is
between seeds (``aggregate.interval``), never the within-run spread of iteration times, which says
nothing about how a second seed would come out. Worker counts spanning more than a factor of 8 get
a log axis; a point whose seeds diverged is marked with an × (a training metric leaves them out).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..plots.figures import _pyplot, line_colours, numeric_order, save_figure
from ..plots.style import FigureSize, diverged_handle, log2_axis, mark_diverged, spans_octaves
from .aggregation import RunRecord, is_timing
from .sweep_layout import axis_label, constants, is_number, roles, short_name, sweep_table, takes_semantics

METRIC_LABEL = {
    "time_per_update": "simulated seconds per update",
    "time_per_gradient": "simulated seconds per applied gradient",
    "time_to_target": "simulated seconds to the target",
    "final_test_accuracy": "final test accuracy",
}
MARKERS = "osD^vPX*<>"
COUNTS = ("workers", "total_workers")  # worker counts: a log axis when they span a wide range


def plot_sweep(
    folders: dict[str, list[RunRecord]], path: Path, *, metric: str | None = None, figsize: str | None = None
) -> list[dict]:
    """Draw ``sweep_table`` (PNG and PDF): mean over seeds, bars the 95% t-interval across seeds.
    A line with a single point in a panel whose x axis has several values (sync at B = 0 beside
    backup at B = 0..4) is drawn as a dashed reference across the panel. ``figsize`` "column" or
    "page" draws it 3.4 or 7 inches wide (``plots.style``). Returns the table drawn."""
    size = FigureSize.of(figsize)
    with size.rc():
        return _draw(folders, path, metric, size)


def _draw(folders: dict[str, list[RunRecord]], path: Path, metric: str | None, size: FigureSize) -> list[dict]:
    plt = _pyplot()
    lay, metric, rows = sweep_table(folders, metric)
    records = [r for recs in folders.values() for r in recs]
    role = roles(records)
    semantics = {r.config.get("semantics") for r in records} - {None}
    panels = sorted({r["panel"] for r in rows} - {""} if lay.panel else {""}, key=numeric_order) or [""]
    lines = sorted({r["line_key"] for r in rows}, key=lambda k: tuple(numeric_order(v) for _, v in k))
    labels = {r["line_key"]: r["line"] for r in rows}
    colours = line_colours(len(lines))
    xs = sorted({r["x"] for r in rows}, key=numeric_order)
    categorical = not all(is_number(x) for x in xs)
    log = not categorical and lay.x in COUNTS and spans_octaves(xs)
    position = {x: (i if categorical else math.log2(x) if log else x) for i, x in enumerate(xs)}
    cols = min(2 if size.name == "column" else 3, len(panels))
    height = math.ceil(len(panels) / cols)
    fig, grid = plt.subplots(
        height,
        cols,
        figsize=size.size(4.6 * cols, 3.6 * height + (1.2 if size.paper else 0.0)),
        sharey=True,
        squeeze=False,
        **({"layout": "constrained"} if size.paper else {}),
    )
    spacing = min(np.diff([position[x] for x in xs]), default=1.0)
    handles = {}
    marked = False
    for ax, panel in zip(grid.flat, panels, strict=False):
        here = [r for r in rows if r["panel"] in (panel, "")]
        for i, key in enumerate(lines):
            pts = sorted((r for r in here if r["line_key"] == key), key=lambda r: numeric_order(r["x"]))
            if not pts:
                continue
            shift = (i - (len(lines) - 1) / 2) * 0.25 * spacing / len(lines)  # dodge overlapping bars
            x = np.array([position[r["x"]] for r in pts], dtype=float) + shift
            x = 2.0**x if log else x
            if not is_timing(metric):  # a training metric leaves diverged seeds out: say where
                for xi, r in zip(x, pts, strict=True):
                    if r["diverged"]:
                        mark_diverged(ax, xi, r["diverged"], r["n_seeds"], colours[i], size)
                        marked = True
            drawn = [(xi, r) for xi, r in zip(x, pts, strict=True) if r["mean"] is not None]
            if not drawn:
                continue
            x = np.array([d[0] for d in drawn])
            y = np.array([d[1]["mean"] for d in drawn])
            style = {"color": colours[i], "marker": MARKERS[i % len(MARKERS)], "ms": 4}
            if len(drawn) == 1 and len(xs) > 1:
                ax.axhline(y[0], color=colours[i], ls="--", lw=1)
            (handles[key],) = ax.plot(x, y, "-", lw=1.4, **style)
            bars = [(xi, r) for xi, r in drawn if r["ci_low"] is not None]
            if bars:
                bx = [b[0] for b in bars]
                by = np.array([b[1]["mean"] for b in bars])
                err = [by - [b[1]["ci_low"] for b in bars], [b[1]["ci_high"] for b in bars] - by]
                ax.errorbar(bx, by, yerr=err, fmt="none", ecolor=colours[i], capsize=3, lw=1)
        if lay.panel:
            name = f"{panel} ({next(iter(semantics))})" if takes_semantics(panel) and len(semantics) == 1 else panel
            ax.set_title(f"{lay.panel} = {panel}" if lay.panel != "strategy" else name, fontsize=size.font(10))
        ax.set_xlabel(axis_label(lay.x, role))
        if categorical:
            ax.set_xticks(range(len(xs)), [str(x) for x in xs], fontsize=size.font(8))
        elif log:
            log2_axis(ax, xs)
        elif len(xs) <= 12:
            ax.set_xticks(xs)  # a tick at each value of the grid (counts stay integers)
        elif all(float(x).is_integer() for x in xs):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in grid.flat[len(panels) :]:
        ax.set_visible(False)
    ylabel = METRIC_LABEL.get(metric, metric.replace("_", " "))
    if metric == "time_per_gradient":
        ylabel += "\n(update sizes differ between strategies)"
    for ax in grid[:, 0]:
        ax.set_ylabel(ylabel)
    fig.suptitle(size.wrap(_title(rows, constants(records, lay)), fig.get_figwidth()), fontsize=size.font(10))
    if not size.paper:
        fig.tight_layout()
    shown = [k for k in lines if k in handles]
    entries = [handles[k] for k in shown] if lines != [()] else []
    names = [labels[k] for k in shown] if lines != [()] else []
    if marked:
        entries.append(diverged_handle())
        names.append(entries[-1].get_label())
    if entries:
        where = {"loc": "outside lower center", "ncol": 1 if size.name == "column" else min(3, len(entries))}
        if not size.paper:
            where = {"loc": "center left", "bbox_to_anchor": (1.0, 0.5)}
        title = ", ".join(short_name(n, None, role) for n in lay.lines) if shown and lines != [()] else None
        fig.legend(entries, names, fontsize=size.font(8), title=title, **where)
    _save_outside(fig, path, tight=not size.paper)
    return rows


def _title(rows: list[dict], shared: str) -> str:
    """How the points were made (seeds, interval) and what every run shares."""
    seeds = sorted({r["n_seeds"] for r in rows})
    count = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    title = f"mean over {count} seeds, bars: 95% t-interval across seeds"
    if seeds[-1] == 1:
        title = "one seed per point (no interval)"
    return title + (f"\n{shared}" if shared else "")


def _save_outside(fig, path: Path, *, tight: bool = True) -> None:
    """Save with the legend outside the axes kept in the image (PNG and PDF); a paper figure
    (``tight`` off) keeps its exact width, its legend already inside the figure."""
    save_figure(fig, path, **({"bbox_inches": "tight"} if tight else {}))

"""Sweep figures: each point the mean over seeds with a Student-t interval across seeds.

The figure is laid out from the grid itself (``aggregation.varying``): one panel per semantics (or
per strategy), backups B on the x axis when B varies (else N, else P, else another numeric axis),
one line per combination of the remaining varying axes. When a sweep holds N = P - B for a few
totals P (``--total-workers``), P, not N, names the lines. The spread shown is between seeds
(``aggregate.interval``), never the within-run spread of iteration times, which says nothing
about how a second seed would come out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..io.errors import InputError
from ..plots.figures import _pyplot, line_colours, numeric_order, save_figure, short_spec
from ..strategies import find
from .aggregation import RunRecord, aggregate, varying

SHORT = {"workers": "N", "backups": "B", "total_workers": "P"}
AXIS_LABEL = {
    "backups": "backup workers B",
    "workers": "N, gradients averaged per update",
    "total_workers": "P = N + B workers",
}
METRIC_LABEL = {
    "time_per_update": "simulated seconds per update",
    "time_per_gradient": "simulated seconds per applied gradient",
    "time_to_target": "simulated seconds to the target",
    "final_test_accuracy": "final test accuracy",
}
MARKERS = "osD^vPX*<>"


@dataclass(frozen=True)
class Layout:
    """Which axis of the grid becomes the panels, the x axis and the lines."""

    panel: str | None
    x: str | None
    lines: tuple[str, ...]


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _axes_of(record: RunRecord, folder: str) -> dict:
    """The values a record can be laid out by: its configuration, P, and the folder it came from."""
    total = record.summary.get("total_workers")
    if total is None:
        total = record.config.get("workers", 0) + record.config.get("backups", 0)
    return {**record.config, "total_workers": total, "folder": folder}


def layout(records: list[RunRecord], axes: list[dict]) -> Layout:
    """Panels, x axis and lines for ``records`` (``axes``: ``_axes_of`` of each, same order)."""
    names = [n for n in varying(records) if n != "strategy" or len({a["strategy"] for a in axes}) > 1]
    if len({a["folder"] for a in axes}) > 1:
        names.append("folder")
    if "workers" in names and "backups" in names:
        totals = {a["total_workers"] for a in axes}
        if len(totals) < len({a["workers"] for a in axes}):
            names[names.index("workers")] = "total_workers"  # N = P - B: P names the line
    semantics = {a.get("semantics") for a in axes} - {None}
    panel = "semantics" if len(semantics) > 1 else None
    x = next((n for n in ("backups", "workers", "total_workers") if n in names), None)
    if x is None:
        x = next((n for n in names if n != "semantics" and _numeric(axes, n)), None)
    rest = [n for n in names if n not in (panel, x, "semantics")]
    if x is None and rest:
        x, rest = rest[0], rest[1:]  # nothing numeric varies: a categorical x axis
    if panel is None and "strategy" in rest and len(rest) > 1:
        spans = {}
        for a in axes:
            spans.setdefault(a["strategy"], set()).add(str(a.get(x)))
        if all(len(v) > 1 for v in spans.values()):
            panel = "strategy"  # every strategy has a curve of its own
        else:  # some are references at one x (sync at B = 0): they share a panel with the curves
            candidates = [n for n in rest if n not in ("strategy", "folder") and not _numeric(axes, n)]
            panel = next((n for n in candidates if all(a.get(n) is not None for a in axes)), None)
        rest = [n for n in rest if n != panel]
    return Layout(panel, x, tuple(rest))


def _numeric(axes: list[dict], name: str) -> bool:
    return all(_is_number(a.get(name)) for a in axes)


def _takes_semantics(name: str) -> bool:
    """The strategy has a ``semantics`` option (its label shows the one a sweep used)."""
    strategy = find(name)
    return strategy is not None and any(o.field == "semantics" for o in strategy.options)


def _line_label(key: tuple, semantics: set) -> str:
    parts = []
    for name, value in key:
        if name == "strategy" and _takes_semantics(value) and len(semantics) == 1:
            parts.append(f"backup ({next(iter(semantics))})")
        elif name in ("strategy", "folder", "latency"):
            parts.append(short_spec(value) if name == "latency" else str(value))
        elif value is None:
            continue  # an option this run does not have (softsync_n of a sync run)
        else:
            parts.append(f"{SHORT.get(name, name)}={value}")
    return ", ".join(parts) or "mean"


def _update_sizes_differ(records: list[RunRecord]) -> bool:
    """Do the strategies apply different numbers of gradients per update at the same N (async's one
    gradient against sync's N)? Then seconds per update compare unlike things."""
    ratios = set()
    for r in records:
        updates, applied, n = r.summary.get("updates"), r.summary.get("gradients_applied"), r.config.get("workers")
        if updates and applied and n:
            ratios.add(round(applied / updates / n, 2))
    return len(ratios) > 1


def sweep_table(folders: dict[str, list[RunRecord]], metric: str | None = None) -> tuple[Layout, str, list[dict]]:
    """The points a sweep figure draws: one row per (panel, line, x) with the mean over seeds and
    the 95% Student-t interval across seeds (None with one seed).

    Args:
        folders: ``{label: records}``; several labels are overlaid, each a line of its own.
        metric: a summary key; default seconds per update, or per applied gradient when update sizes differ.

    Returns:
        The layout, the metric drawn and rows ``panel, line, line_key, x, mean, ci_low, ci_high, n_seeds``
        (``panel`` "": a run without semantics, drawn in every semantics panel).

    Raises:
        InputError: no run's summary holds the metric.
    """
    records = [r for recs in folders.values() for r in recs]
    axes = [_axes_of(r, label) for label, recs in folders.items() for r in recs]
    if metric is None:
        metric = "time_per_gradient" if _update_sizes_differ(records) else "time_per_update"
    key = metric
    if not any(key in r.summary for r in records):
        key = {"time_per_update": "mean_iteration_time"}.get(metric, metric)  # the same number, older name
        if not any(key in r.summary for r in records):
            raise InputError(f"{records[0].path}: summary.json has no {metric} (written by an older stragglersim?)")
    lay = layout(records, axes)
    semantics = set() if lay.panel == "semantics" else {a.get("semantics") for a in axes} - {None}
    rows = []
    for label, recs in folders.items():
        groups: dict[tuple, list[RunRecord]] = {}
        for r in recs:
            groups.setdefault(r.point, []).append(r)
        for runs in groups.values():
            a = _axes_of(runs[0], label)
            agg = aggregate(runs, labels=[])[0]
            line = tuple((n, a.get(n)) for n in lay.lines)
            rows.append(
                {
                    "panel": "" if not lay.panel or a.get(lay.panel) is None else a.get(lay.panel),
                    "line": _line_label(line, semantics),
                    "line_key": line,
                    "x": a.get(lay.x) if lay.x else "",
                    "mean": agg.get(f"{key}_mean"),
                    "ci_low": agg.get(f"{key}_ci_low"),
                    "ci_high": agg.get(f"{key}_ci_high"),
                    "n_seeds": agg["n_seeds"],
                }
            )
    return lay, metric, [r for r in rows if r["mean"] is not None]


def _constants(records: list[RunRecord], lay: Layout) -> str:
    """What every run shares, for the title: strategy, semantics, N, B, latency, steps."""
    shown = []
    for name in ("strategy", "semantics", "workers", "backups", "latency", "steps"):
        values = {str(r.config.get(name)) for r in records}
        if len(values) == 1 and name not in (lay.panel, lay.x, *lay.lines) and values != {"None"}:
            value = short_spec(values.pop())
            shown.append(f"{SHORT.get(name, name)}={value}" if name in SHORT else value)
            if name == "steps":
                shown[-1] = f"{value} updates"
    return ", ".join(shown)


def plot_sweep(folders: dict[str, list[RunRecord]], path: Path, *, metric: str | None = None) -> list[dict]:
    """Draw ``sweep_table`` (PNG and PDF): mean over seeds, bars the 95% t-interval across seeds.
    A line with a single point in a panel whose x axis has several values (sync at B = 0 beside
    backup at B = 0..4) is drawn as a dashed reference across the panel. Returns the table drawn."""
    plt = _pyplot()
    lay, metric, rows = sweep_table(folders, metric)
    records = [r for recs in folders.values() for r in recs]
    semantics = {r.config.get("semantics") for r in records} - {None}
    panels = sorted({r["panel"] for r in rows} - {""} if lay.panel else {""}, key=numeric_order) or [""]
    lines = sorted({r["line_key"] for r in rows}, key=lambda k: tuple(numeric_order(v) for _, v in k))
    labels = {r["line_key"]: r["line"] for r in rows}
    colours = line_colours(len(lines))
    xs = sorted({r["x"] for r in rows}, key=numeric_order)
    categorical = not all(_is_number(x) for x in xs)
    position = {x: (i if categorical else x) for i, x in enumerate(xs)}
    cols = min(3, len(panels))
    fig, grid = plt.subplots(
        math.ceil(len(panels) / cols),
        cols,
        figsize=(4.6 * cols, 3.6 * math.ceil(len(panels) / cols)),
        sharey=True,
        squeeze=False,
    )
    spacing = min(np.diff([position[x] for x in xs]), default=1.0)
    handles = {}
    for ax, panel in zip(grid.flat, panels, strict=False):
        here = [r for r in rows if r["panel"] in (panel, "")]
        for i, key in enumerate(lines):
            pts = sorted((r for r in here if r["line_key"] == key), key=lambda r: numeric_order(r["x"]))
            if not pts:
                continue
            shift = (i - (len(lines) - 1) / 2) * 0.25 * spacing / len(lines)  # dodge overlapping bars
            x = np.array([position[r["x"]] for r in pts], dtype=float) + shift
            y = np.array([r["mean"] for r in pts])
            style = {"color": colours[i], "marker": MARKERS[i % len(MARKERS)], "ms": 4}
            if len(pts) == 1 and len(xs) > 1:
                ax.axhline(y[0], color=colours[i], ls="--", lw=1)
            (handles[key],) = ax.plot(x, y, "-", lw=1.4, **style)
            bars = [(xi, r) for xi, r in zip(x, pts, strict=True) if r["ci_low"] is not None]
            if bars:
                bx = [b[0] for b in bars]
                by = np.array([b[1]["mean"] for b in bars])
                err = [by - [b[1]["ci_low"] for b in bars], [b[1]["ci_high"] for b in bars] - by]
                ax.errorbar(bx, by, yerr=err, fmt="none", ecolor=colours[i], capsize=3, lw=1)
        if lay.panel:
            name = f"{panel} ({next(iter(semantics))})" if _takes_semantics(panel) and len(semantics) == 1 else panel
            ax.set_title(f"{lay.panel} = {panel}" if lay.panel != "strategy" else name, fontsize=10)
        ax.set_xlabel(AXIS_LABEL.get(lay.x, lay.x or ""))
        if categorical:
            ax.set_xticks(range(len(xs)), [str(x) for x in xs], fontsize=8)
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
    seeds = sorted({r["n_seeds"] for r in rows})
    count = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    title = f"mean over {count} seeds, bars: 95% t-interval across seeds"
    if seeds[-1] == 1:
        title = "one seed per point (no interval)"
    constants = _constants(records, lay)
    fig.suptitle(title + (f"\n{constants}" if constants else ""), fontsize=10)
    fig.tight_layout()
    if lines != [()]:
        fig.legend(
            [handles[k] for k in lines],
            [labels[k] for k in lines],
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            fontsize=8,
            title=", ".join(SHORT.get(n, n) for n in lay.lines),
        )
    _save_outside(fig, path)
    return rows


def _save_outside(fig, path: Path) -> None:
    """Save with the legend outside the axes kept in the image (PNG and PDF)."""
    save_figure(fig, path, bbox_inches="tight")

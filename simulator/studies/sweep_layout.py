"""What a sweep figure draws, and how its axes and legend are named, from the grid itself.

``layout`` picks the panels (one per semantics, or per strategy), the x axis (backups B when B
varies, else N or P, else another numeric axis) and the lines (the remaining varying axes). When a
sweep holds N = P - B for a few totals P (``--total-workers``), P, not N, names the lines. Only what
varies is in the legend: a field with one value across the plotted runs, or one that follows from
the others (``param_bytes`` from the model), goes to the caption instead.

``workers`` means two things: for a strategy that runs ``workers + backups`` processes (sync and
backup) it is N, the gradients averaged per update; for every other strategy (async, softsync,
K-sync, ...) it is P, the worker processes. The strategy's own ``processes`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from ..io.errors import InputError
from ..plots.figures import short_spec
from ..strategies import find
from .aggregation import RunRecord, aggregate, diverged, varying

SHORT = {"workers": "N", "backups": "B", "total_workers": "P"}
AXIS_LABEL = {
    "backups": "backup workers B",
    "workers": "N, gradients averaged per update",
    "total_workers": "P = N + B workers",
}
WORKERS_AS_P = "P, workers"
DERIVED = ("param_bytes",)  # follows from the model: in the legend only when nothing else explains it
CAPTION = ("strategy", "semantics", "workers", "backups", "total_workers", "latency", "steps")


@dataclass(frozen=True)
class Layout:
    """Which axis of the grid becomes the panels, the x axis and the lines."""

    panel: str | None
    x: str | None
    lines: tuple[str, ...]


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def workers_role(strategy: str) -> str:
    """ "N" where ``workers`` counts the gradients averaged per update (the strategy runs N + B
    processes), "P" where it counts the worker processes."""
    found = find(strategy)
    if found is None:
        return "N"  # an unknown (older or external) strategy: the configuration's own word
    probe = SimpleNamespace(workers=2, backups=1)  # does a backup add a process beyond ``workers``?
    try:
        return "N" if found.processes(probe) > probe.workers else "P"
    except AttributeError:  # a plug-in whose process count reads more of the configuration
        return "P"


def roles(records: list[RunRecord]) -> dict[str, str]:
    """Each strategy of ``records``: "N" or "P" (``workers_role``)."""
    return {s: workers_role(s) for s in sorted({str(r.config.get("strategy")) for r in records})}


def axis_label(name: str | None, role: dict[str, str]) -> str:
    """The x axis label of ``name``; for ``workers``, what it counts for the strategies drawn."""
    if name != "workers":
        return AXIS_LABEL.get(name, name or "")
    kinds = set(role.values())
    if kinds == {"P"}:
        return WORKERS_AS_P
    if kinds == {"N"}:
        return AXIS_LABEL["workers"]
    each = {k: ", ".join(s for s, v in role.items() if v == k) for k in ("N", "P")}
    return f"N, gradients averaged ({each['N']}); P, workers ({each['P']})"


def axes_of(record: RunRecord, folder: str) -> dict:
    """The values a record can be laid out by: its configuration, P, and the folder it came from."""
    total = record.summary.get("total_workers")
    if total is None:
        total = record.config.get("workers", 0) + record.config.get("backups", 0)
    return {**record.config, "total_workers": total, "folder": folder}


def _numeric(axes: list[dict], name: str) -> bool:
    return all(is_number(a.get(name)) for a in axes)


def _distinct(axes: list[dict], names) -> int:
    return len({tuple(str(a.get(n)) for n in names) for a in axes})


def layout(records: list[RunRecord], axes: list[dict]) -> Layout:
    """Panels, x axis and lines for ``records`` (``axes``: ``axes_of`` of each, same order)."""
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
    rest = [n for n in names if n not in (panel, x, "semantics") and _distinct(axes, [n]) > 1]
    for n in DERIVED:  # dropped where the other axes already tell its value
        others = [m for m in (panel, x, *rest) if m and m != n]
        if n in rest and others and _distinct(axes, others) == _distinct(axes, [*others, n]):
            rest.remove(n)
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


def takes_semantics(name: str) -> bool:
    """The strategy has a ``semantics`` option (its label shows the one a sweep used)."""
    strategy = find(name)
    return strategy is not None and any(o.field == "semantics" for o in strategy.options)


def short_name(name: str, strategy, role: dict[str, str]) -> str:
    """``name`` as the legend and caption write it: N or P for ``workers`` (by ``strategy``'s role;
    with none given, the one role all strategies share, else N/P), B, P, or the field's name."""
    if name != "workers":
        return SHORT.get(name, name)
    kinds = {role[strategy]} if strategy in role else set(role.values())
    return kinds.pop() if len(kinds) == 1 else "N/P"


def line_label(key: tuple, semantics: set, role: dict[str, str], strategy=None) -> str:
    """A line's legend entry: ``key`` (``(name, value)`` pairs) as ``name=value``, a strategy by name."""
    strategy = dict(key).get("strategy", strategy)
    parts = []
    for name, value in key:
        if name == "strategy" and takes_semantics(value) and len(semantics) == 1:
            parts.append(f"{value} ({next(iter(semantics))})")
        elif name in ("strategy", "folder", "latency"):
            parts.append(short_spec(value) if name == "latency" else str(value))
        elif value is None:
            continue  # an option this run does not have (softsync_n of a sync run)
        else:
            parts.append(f"{short_name(name, strategy, role)}={value}")
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
        The layout, the metric drawn and rows ``panel, line, line_key, x, mean, ci_low, ci_high, n_seeds,
        diverged`` (``panel`` "": a run without semantics, drawn in every semantics panel; ``diverged``:
        seeds that diverged, left out of a training metric's mean, which is None when all did).

    Raises:
        InputError: no run's summary holds the metric.
    """
    records = [r for recs in folders.values() for r in recs]
    axes = [axes_of(r, label) for label, recs in folders.items() for r in recs]
    if metric is None:
        metric = "time_per_gradient" if _update_sizes_differ(records) else "time_per_update"
    key = metric
    if not any(key in r.summary for r in records):
        key = {"time_per_update": "mean_iteration_time"}.get(metric, metric)  # the same number, older name
        if not any(key in r.summary for r in records):
            raise InputError(f"{records[0].path}: summary.json has no {metric} (written by an older stragglersim?)")
    lay = layout(records, axes)
    semantics = set() if lay.panel == "semantics" else {a.get("semantics") for a in axes} - {None}
    role = roles(records)
    rows = []
    for label, recs in folders.items():
        groups: dict[tuple, list[RunRecord]] = {}
        for r in recs:
            groups.setdefault(r.point, []).append(r)
        for runs in groups.values():
            a = axes_of(runs[0], label)
            agg = aggregate(runs, labels=[])[0]
            line = tuple((n, a.get(n)) for n in lay.lines)
            rows.append(
                {
                    "panel": "" if not lay.panel or a.get(lay.panel) is None else a.get(lay.panel),
                    "line": line_label(line, semantics, role, a.get("strategy")),
                    "line_key": line,
                    "x": a.get(lay.x) if lay.x else "",
                    "mean": agg.get(f"{key}_mean"),
                    "ci_low": agg.get(f"{key}_ci_low"),
                    "ci_high": agg.get(f"{key}_ci_high"),
                    "n_seeds": agg["n_seeds"],
                    "diverged": sum(diverged(r) for r in runs),
                }
            )
    return lay, metric, [r for r in rows if r["mean"] is not None or (r["diverged"] and r["x"] != "")]


def constants(records: list[RunRecord], lay: Layout) -> str:
    """What every run shares, for the caption: strategy, semantics, N (or P), B, P, latency, steps."""
    role = roles(records)
    axes = [axes_of(r, "") for r in records]
    shown = []
    for name in CAPTION:
        values = {str(a.get(name)) for a in axes}
        if len(values) > 1 or name in (lay.panel, lay.x, *lay.lines) or values == {"None"}:
            continue
        if name == "total_workers" and len({str(a.get("workers")) for a in axes}) == 1:
            continue  # P = N + B, both shown
        if name == "backups" and set(role.values()) == {"P"}:
            continue  # no backups: strategies without them
        value = short_spec(values.pop())
        if name == "steps":
            shown.append(f"{value} updates")
        elif name in SHORT:
            shown.append(f"{short_name(name, None, role)}={value}")
        else:
            shown.append(value)
    return ", ".join(shown)

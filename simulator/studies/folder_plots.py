"""``stragglersim plot``: the figures of run and sweep folders, each alone and overlaid.

A sweep gets its iteration time (``sweep_plots``: seeds averaged, t-intervals across seeds) and,
when it trained, its time to target and final accuracy, and when it measured gradient quality, the
trade-off frontier (``frontier``); several sweeps are overlaid as well, one line per folder. A run
gets its iteration times over the run (and their histogram), its timeline when it logged gradients,
its accuracy curve when it trained; several runs are overlaid as well.
File names are unique even when two folders share a name (``a/run`` and ``b/run``). ``figsize``
"column" or "page" draws every figure 3.4 or 7 inches wide, for a paper (``plots.style``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.errors import InputError
from ..io.results import read_csv
from ..plots.figures import _num, _pyplot, _save, line_colours, plot_gantt
from ..plots.style import FigureSize
from .aggregation import collect, read_run
from .frontier import plot_frontier, quality_metrics
from .sweep_layout import workers_role
from .sweep_plots import plot_sweep


def unique_names(dirs: list[Path]) -> list[str]:
    """A file-name stem per folder: its name, or, where names collide, as many trailing path parts as
    tell the folders apart (``a/run`` and ``b/run`` become ``a-run`` and ``b-run``)."""
    parts = [Path(os.path.abspath(d)).parts[1:] or ("root",) for d in dirs]  # as given: links not followed
    depth = [1] * len(parts)
    while True:
        names = ["-".join(p[-k:]) for p, k in zip(parts, depth, strict=True)]
        clashes = [i for i, n in enumerate(names) if names.count(n) > 1 and depth[i] < len(parts[i])]
        if not clashes:
            break
        for i in clashes:
            depth[i] += 1
    seen: dict[str, int] = {}
    for i, n in enumerate(names):  # the same path given twice, or a/b-c beside a-b/c
        seen[n] = seen.get(n, 0) + 1
        names[i] = n if seen[n] == 1 else f"{n}-{seen[n]}"
    return names


def _per_gradient(runs: list[tuple[str, Path]]) -> bool:
    """Do the runs apply different numbers of gradients per update at the same N?"""
    ratios = set()
    for _, d in runs:
        s = read_run(d).summary
        if s.get("updates") and s.get("workers"):
            ratios.add(round(s["gradients_applied"] / s["updates"] / s["workers"], 2))
    return len(ratios) > 1


def _iteration_series(run: Path, per_gradient: bool, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(simulated time, seconds per update or per gradient, its rolling mean over ``window`` updates)."""
    rows = read_csv(run / "updates.csv")
    try:
        t = np.array([_num(r["time"]) for r in rows])
        dt = np.array([_num(r["iteration_time"]) for r in rows])
        g = np.array([_num(r["gradients"]) for r in rows]) if per_gradient else np.ones_like(dt)
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"{run / 'updates.csv'}: not a run's updates table (columns time, iteration_time, ...)"
        ) from None
    if not rows:
        raise InputError(f"{run / 'updates.csv'}: holds no update; nothing to plot")
    y = dt / np.maximum(g, 1)
    kernel = np.ones(max(1, min(window, len(dt))))
    rolling = np.convolve(dt, kernel, "valid") / np.maximum(np.convolve(g, kernel, "valid"), 1)
    return t, y, np.concatenate([np.full(len(dt) - len(rolling), np.nan), rolling])


def _describe(run: Path) -> str:
    s = read_run(run).summary
    semantics = f" ({s['semantics']})" if s.get("semantics") else ""
    if workers_role(s["strategy"]) == "P":
        return f"{s['strategy']}{semantics} P={s['workers']}, seed {s.get('seed', 0)}"
    return f"{s['strategy']}{semantics} N={s['workers']} B={s['backups']}, seed {s.get('seed', 0)}"


def plot_iteration_times(runs: list[tuple[str, Path]], path: Path, *, figsize: str | None = None) -> None:
    """Left: iteration time against simulated time (rolling mean; the raw series too for one run);
    right: its histogram. Per applied gradient when the runs' update sizes differ."""
    size = FigureSize.of(figsize)
    with size.rc():
        _iteration_times(runs, path, size)


def _iteration_times(runs: list[tuple[str, Path]], path: Path, size: FigureSize) -> None:
    plt = _pyplot()
    per_gradient = _per_gradient(runs)
    unit = "seconds per applied gradient" if per_gradient else "iteration time (s)"
    fig, (left, right) = plt.subplots(1, 2, figsize=size.size(12, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    colours = line_colours(len(runs))
    n_max = max(len(read_csv(d / "updates.csv")) for _, d in runs)
    window = max(1, n_max // 50)
    for colour, (label, d) in zip(colours, runs, strict=True):
        t, y, rolling = _iteration_series(d, per_gradient, window)
        name = f"{label}: {_describe(d)}"
        if len(runs) == 1:
            left.plot(t, y, lw=0.5, alpha=0.4, color=colour, label="each update")
        left.plot(t, rolling, lw=1.5, color=colour, label=name if len(runs) > 1 else f"mean over {window} updates")
        right.hist(y, bins=40, histtype="step", lw=1.4, density=True, color=colour, label=name)
    left.set_xlabel("simulated time (s)")
    left.set_ylabel(unit + (f"\nrolling mean over {window} updates" if len(runs) > 1 else ""))
    right.set_xlabel(unit + (", each update" if len(runs) > 1 or per_gradient else ""))
    right.set_ylabel("density")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    if per_gradient:
        left.set_title("update sizes differ: time per applied gradient", fontsize=9)
    if len(runs) > 1:
        left.legend(fontsize=size.font(8), loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=min(2, len(runs)))
    else:
        left.legend(fontsize=size.font(8), loc="upper right")
        fig.suptitle(f"{runs[0][1]}: {_describe(runs[0][1])}", fontsize=size.font(10))
    _save(fig, path)


def plot_accuracy(runs: list[tuple[str, Path]], path: Path, *, figsize: str | None = None) -> None:
    """Test accuracy (or loss, where accuracy is undefined) of training runs against simulated time."""
    size = FigureSize.of(figsize)
    with size.rc():
        _accuracy(runs, path, size)


def _accuracy(runs: list[tuple[str, Path]], path: Path, size: FigureSize) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=size.size(8, 4.4))
    tables = [(label, read_csv(d / "metrics.csv")) for label, d in runs]
    loss = all(np.isnan(_num(r["test_accuracy"])) for _, rows in tables for r in rows)
    key = "test_loss" if loss else "test_accuracy"
    for colour, (label, rows) in zip(line_colours(len(tables)), tables, strict=True):
        ax.plot(
            [_num(r["sim_time"]) for r in rows], [_num(r[key]) for r in rows], "o-", ms=3, color=colour, label=label
        )
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel(key.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=size.font(8), loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def _is_run(d: Path) -> bool:
    return (d / "summary.json").exists() and (d / "updates.csv").exists()


def plot_folders(dirs: list[Path], out: Path, *, figsize: str | None = None) -> list[Path]:
    """The figures of run and sweep folders, each alone and, when several, overlaid; ``figsize``
    "column" or "page" for a paper's widths (default: the screen sizes).

    Returns:
        The PNG files written (each also as PDF).

    Raises:
        InputError: a folder that is neither a run nor a sweep (nor a folder of runs).
    """
    FigureSize.of(figsize)  # a bad size refused before anything is read or drawn
    dirs = list(dict.fromkeys(Path(d) for d in dirs))
    names = unique_names(dirs)
    runs = [(n, d) for n, d in zip(names, dirs, strict=True) if _is_run(d)]
    sweeps = {n: collect([d]) for n, d in zip(names, dirs, strict=True) if not _is_run(d)}  # raises for neither
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        _draw_all(out, sweeps, runs, written, figsize)
    except BaseException:  # a full disk: no figure of this call is left half done
        for png in written:
            png.unlink(missing_ok=True)
            png.with_suffix(".pdf").unlink(missing_ok=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    if not written:
        raise InputError("plot: nothing to draw")
    return written


def _draw_all(out: Path, sweeps: dict, runs: list[tuple[str, Path]], written: list[Path], figsize) -> None:
    """Every figure of ``plot_folders``, each PNG appended to ``written`` once drawn."""

    def draw(func, stem: str, *args, **kwargs) -> None:
        func(*args, out / stem, figsize=figsize, **kwargs)
        written.append(out / f"{stem}.png")

    for name, records in sweeps.items():
        draw(plot_sweep, f"{name}-iteration-time", {name: records})
        for metric in ("time_to_target", "final_test_accuracy"):
            if any(r.summary.get(metric) is not None for r in records):
                draw(plot_sweep, f"{name}-{metric.replace('_', '-')}", {name: records}, metric=metric)
        if quality_metrics(records):
            draw(plot_frontier, f"{name}-frontier", records)
    if len(sweeps) > 1:
        draw(plot_sweep, "overlay-sweeps-iteration-time", sweeps)
    for name, d in runs:
        draw(plot_iteration_times, f"{name}-iteration-time", [(name, d)])
        if (d / "gradients.csv").exists():
            draw(plot_gantt, f"{name}-timeline", d)
        if (d / "metrics.csv").exists():
            draw(plot_accuracy, f"{name}-accuracy", [(_describe(d), d)])
    if len(runs) > 1:
        draw(plot_iteration_times, "overlay-runs-iteration-time", runs)
        trained = [(n, d) for n, d in runs if (d / "metrics.csv").exists()]
        if len(trained) > 1:
            draw(plot_accuracy, "overlay-runs-accuracy", [(f"{n}: {_describe(d)}", d) for n, d in trained])

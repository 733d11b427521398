"""Figures, drawn from results (never by re-running a simulation). Matplotlib, Agg backend."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..io.timeline import default_window, read_run, select
from ..latency import parse_latency
from .style import FigureSize


def _pyplot():
    # here, not at import: commands that draw nothing (simulate, predict, through studies.reports)
    # import this module without Matplotlib (1 s)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # here, not at import: as matplotlib, and after the Agg backend is chosen

    return plt


def plot_fit(durations: np.ndarray, report: dict, path: Path, *, title: str = "") -> None:
    """Empirical CDF with the fitted CDFs (left) and a QQ plot of the chosen fit (right)."""
    plt = _pyplot()
    x = np.sort(np.asarray(durations, dtype=float))
    n = len(x)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.step(x, np.arange(1, n + 1) / n, where="post", color="black", lw=2, label=f"measured (n={n})")
    grid = np.geomspace(x[0], x[-1], 400)
    shown = report["candidates"][:4]
    if report["mixture"] and report["mixture"] not in shown:
        shown.append(report["mixture"])
    for fit in shown:
        model = parse_latency(fit["spec"])
        left.plot(grid, model.cdf(grid), lw=1.3, label=f"{fit['family']} (AIC {fit['aic']:.1f}, KS {fit['ks']:.3f})")
    left.set_xscale("log")  # stragglers live in the tail: a log axis shows body and tail together
    left.set_xlabel("computation time (s, log scale)")
    left.set_ylabel("P(time ≤ x)")
    left.set_title("empirical CDF and maximum-likelihood fits")
    left.legend(fontsize=8, loc="lower right")
    left.grid(alpha=0.3)

    best = report["best"]
    q = (np.arange(1, n + 1) - 0.5) / n
    theoretical = parse_latency(best["spec"]).ppf(q)
    right.plot(theoretical, x, ".", ms=3, color="C0", label="quantiles")
    lo, hi = min(theoretical[0], x[0]), max(theoretical[-1], x[-1])
    right.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="y = x")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel(f"{best['family']} quantile (s, log scale)")
    right.set_ylabel("measured quantile (s, log scale)")
    right.set_title("QQ plot of the chosen fit")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.suptitle(title or f"chosen: {best['spec']}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_adaptive(report: dict, path: Path) -> None:
    """Time per unit of progress against fixed B, with adaptive-backup beside (left), and the
    backups adaptive-backup chose as the run went on (right)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    backups = np.array([int(b) for b in report["fixed"]])
    cost = np.array(list(report["fixed"].values()))
    left.plot(backups, cost, "o-", color="C0", label="fixed B (K-sync, K = P - B)")
    best = report["best_fixed_backups"]
    left.plot([best], [report["best_fixed"]], "*", ms=15, color="C3", label=f"best fixed B = {best}")
    left.axhline(
        report["adaptive"],
        color="C2",
        lw=2,
        ls="--",
        label=f"adaptive-backup ({report['adaptive_vs_best']:.3f}x the best)",
    )
    left.set_xlabel("backup workers B")
    left.set_ylabel("simulated seconds per unit of progress")
    left.set_title(f"P = {report['workers']} workers, latency {report['latency']}", fontsize=9)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    steps = [c["from_update"] for c in report["adaptive_choices"]] + [report["updates"]]
    values = [c["backups"] for c in report["adaptive_choices"]]
    right.step(steps, values + values[-1:], where="post", color="C2")
    right.axhline(best, color="C3", ls=":", label="best fixed B")
    right.set_xlabel("update")
    right.set_ylabel("backups B chosen")
    from matplotlib.ticker import MaxNLocator  # here, not at import: Matplotlib loads only to draw (see _pyplot)

    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_title("adaptive-backup's choices (Kaplan-Meier estimate, re-evaluated)", fontsize=9)
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


FATE_COLOURS = {
    "applied": "#2b8cbe",
    "dropped_late": "#fdae61",
    "dropped_stale": "#f46d43",
    "cancelled": "#bdbdbd",
    "failed": "#d73027",
    "unfinished": "#e0e0e0",
}


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    save_figure(fig, path)


PDF_METADATA = {"CreationDate": None, "ModDate": None}  # no timestamps: the same figure, the same bytes


def save_figure(fig, path: Path, **kwargs) -> None:
    """Write ``path.png`` (120 dpi) and ``path.pdf`` side by side and close ``fig``. The PDF carries
    no creation date, so that the same run gives byte-identical figures; a failed write (a full
    disk) leaves neither file. ``kwargs`` go to ``savefig`` (``bbox_inches``)."""
    path = Path(path)
    files = (path.with_suffix(".png"), path.with_suffix(".pdf"))
    try:
        fig.savefig(files[0], dpi=120, **kwargs)
        fig.savefig(files[1], metadata=PDF_METADATA, **kwargs)
    except BaseException:
        for file in files:
            file.unlink(missing_ok=True)
        raise
    finally:
        _pyplot().close(fig)


def numeric_order(value) -> tuple:
    """A sort key putting numbers in numeric order (N=80 before N=100), then text, then None;
    tuples of such values (line keys) element by element."""
    if isinstance(value, tuple):
        return tuple(numeric_order(v) for v in value)
    if value is None or value == "":
        return (2, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, SEMANTICS_ORDER.get(str(value), str(value)))


SEMANTICS_ORDER = {"tf": "0", "drop": "1", "cancel": "2"}  # the README's order, not the alphabet's


def short_spec(spec: str) -> str:
    """A SPEC for a title: decimals to 4 significant digits, a space after each comma (so it wraps)."""
    return re.sub(r"\d+\.\d+", lambda m: f"{float(m.group()):.4g}", spec).replace(",", ", ")


def line_colours(n: int) -> list:
    """``n`` distinct colours: the default cycle up to 10, a colormap beyond (never a silent repeat)."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    from matplotlib import colormaps  # here, not at import: Matplotlib loads only to draw (see _pyplot)

    return [colormaps["viridis"](v) for v in np.linspace(0.0, 0.92, n)]


def plot_gantt(
    run: Path,
    path: Path,
    *,
    updates: int | tuple[int, int] | None = None,
    title: str = "",
    figsize: str | None = None,
) -> None:
    """Who computed when in a window of updates, coloured by each gradient's fate.

    Args:
        updates: the first K updates, or (A, B) for updates A to B inclusive (numbered from 1, as in
            ``updates.csv``); default ``timeline.default_window``: a few computation times.
        figsize: "column" or "page" for a paper's widths (``style.FigureSize``); default the screen size.
    """
    size = FigureSize.of(figsize)
    with size.rc():
        _gantt(run, path, updates, title, size)


def _gantt(run: Path, path: Path, updates, title: str, size: FigureSize) -> None:
    from matplotlib.patches import Patch  # here, not at import: Matplotlib loads only to draw (see _pyplot)

    plt = _pyplot()
    gradients, ups = read_run(run)
    chosen = updates is None
    if chosen:
        updates = default_window(gradients, ups)
    first, last = (1, updates) if isinstance(updates, int) else updates
    shown, window, (start, horizon) = select(gradients, ups, first, last)
    shown = [g for g in shown if g["start"] < horizon]  # not the computations the last update starts
    workers = sorted({g["worker"] for g in gradients})
    fig, ax = plt.subplots(figsize=size.size(11, 0.45 * len(workers) + 1.8))
    right = horizon + 0.02 * (horizon - start)
    for g in shown:
        left, end = max(g["start"], start), min(g["end"], right)
        ax.barh(g["worker"], end - left, left=left, height=0.7, color=FATE_COLOURS[g["fate"]], edgecolor="white")
        if g["fate"] == "applied" and end - left > 0.035 * (right - start):  # which update it went into
            ax.text((left + end) / 2, g["worker"], f"→{g['update']}", fontsize=size.font(7), ha="center", va="center")
    placed = -np.inf
    for u in window:
        ax.axvline(u["time"], color="black", lw=0.8 if len(window) <= 40 else 0.4, ls="--", zorder=0.5)
        if u["time"] - placed > 0.025 * (right - start):  # numbers that would overlap are left out
            ax.text(u["time"], len(workers) - 0.3, f" {u['update']}", fontsize=size.font(8), va="bottom")
            placed = u["time"]
    ax.set_yticks(workers, [f"worker {w}" for w in workers])
    ax.invert_yaxis()
    ax.set_xlim(start, right)
    ax.set_xlabel("simulated time (s); dashed lines: parameter updates (numbered); →u: applied in update u")
    span = f"updates {window[0]['update']}-{window[-1]['update']}"
    if chosen:
        span += " (about two computation times; --updates A:B for another window)"
    ax.set_title(title or f"timeline of {run}: {span}", fontsize=size.font(10))
    fates = sorted({g["fate"] for g in shown}, key=list(FATE_COLOURS).index)
    ax.legend(
        handles=[Patch(color=FATE_COLOURS[f], label=f.replace("_", " ")) for f in fates],
        fontsize=size.font(8),
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        title="fate",
    )
    _save(fig, path)


def _num(value) -> float:
    return float(value) if value not in ("", None) else float("nan")

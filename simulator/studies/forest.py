"""The forest plot of ``stragglersim compare``: paired differences against a baseline, with intervals."""

from __future__ import annotations

from pathlib import Path

from ..plots.figures import _pyplot, save_figure
from ..plots.style import FigureSize

UNITS = {
    "time_per_update": "s",
    "time_per_gradient": "s",
    "samples_per_second": "examples/s",
    "time_to_target": "s",
    "sim_time": "s",
    "mean_iteration_time": "s",
    "std_iteration_time": "s",
}


def plot_forest(rows: list[dict], info: dict, path: Path, *, figsize: str | None = None) -> None:
    """One panel per metric: each point's paired difference from the baseline (dot) with its 95% t
    interval (bar), a zero line, the baseline marked; writes ``path``.png and ``path``.pdf.

    Args:
        rows, info: what ``comparison.paired`` returns.
        figsize: "column" or "page": a paper's width (``plots.style``), the height still one line per point.
    """
    size = FigureSize.of(figsize)
    with size.rc():
        _draw(rows, info, path, size)


def _draw(rows: list[dict], info: dict, path: Path, size: FigureSize) -> None:
    plt = _pyplot()
    metrics, names = info["metrics"], info["points"]
    label = 0.07 * max(len(n) for n in names) + 0.9  # inches for the tick labels at 8 pt
    width, height = max(label + 3.4 * len(metrics), 6.5), 1.8 + 0.38 * len(names)
    fig, axes = plt.subplots(1, len(metrics), figsize=(size.size(width, height)[0], height), sharey=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        mine = [r for r in rows if r["metric"] == metric]
        for y, r in enumerate(mine):
            if r["note"] == "baseline":
                ax.plot(0, y, "D", color="grey", ms=5)
            elif r["diff"] is None:
                where = ax.get_yaxis_transform()  # x in axes fraction: inside the panel whatever the data
                text = "no pair: diverged" if r.get("diverged_pairs") else "no common seed"
                ax.text(0.5, y, text, transform=where, va="center", ha="center", fontsize=size.font(8), color="grey")
            else:
                low, high = r["diff_ci_low"], r["diff_ci_high"]
                xerr = None if low is None else [[r["diff"] - low], [high - r["diff"]]]
                ax.errorbar(r["diff"], y, xerr=xerr, fmt="o", color="C0", ms=5, capsize=3, lw=1.5)
        ax.axvline(0, color="black", lw=0.8, ls="--")
        unit = f" ({UNITS[metric]})" if metric in UNITS else ""
        ax.set_title(metric, fontsize=size.font(10))
        ax.set_xlabel(f"config − baseline{unit}", fontsize=size.font(9))
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=size.font(8))
    ax = axes[0][0]
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([n + ("  (baseline)" if n == info["baseline"] else "") for n in names], fontsize=size.font(8))
    ax.set_ylim(len(names) - 0.5, -0.5)  # the first point on top, as in the table
    title = "paired differences from the baseline (same seeds)\nwith 95% Student-t intervals"
    fig.suptitle(title, fontsize=size.font(10))
    fig.tight_layout()
    save_figure(fig, path)

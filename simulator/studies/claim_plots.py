"""The figures of the claim studies (``reproduce --only ...``), drawn from their ``facts.json``.

Every number drawn is a mean over the winners' test runs with its 95% Student-t interval across
seeds (:func:`claims._stat`); nothing here runs or tunes anything.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ..plots.figures import _pyplot, _save, line_colours

STRATEGY_COLOURS = {"sync + backups": "C0", "async": "C3", "softsync": "C2"}  # a cutoff: C1
NOT_REACHED = "a seed missed it"


def _colour(strategy: str) -> str:
    return STRATEGY_COLOURS.get(strategy, "C1")


def _bar(row: dict, name: str) -> tuple[float, float, float]:
    """(mean, lower error, upper error) of ``name``; NaN where absent, zero errors without an interval."""
    mean = row.get(name)
    if mean is None:
        return np.nan, 0.0, 0.0
    low, high = row.get(f"{name}_low"), row.get(f"{name}_high")
    return mean, (mean - low) if low is not None else 0.0, (high - mean) if high is not None else 0.0


def plot_staleness_depth(facts: dict, path: Path) -> None:
    """C1: test accuracy (mean of the last evaluations) against mean staleness, one line per depth; the
    stale cosine beside it where measured."""
    plt = _pyplot()
    rows = facts["rows"]
    depths = sorted({r["depth"] for r in rows})
    quality = any(r.get("stale_cosine") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if quality else 1, figsize=(11 if quality else 6.5, 4.5), squeeze=False)
    for depth, colour in zip(depths, line_colours(len(depths)), strict=True):
        mine = [r for r in rows if r["depth"] == depth]
        x = np.array([1 + (r["staleness"] or 0.0) for r in mine])
        for ax, name in zip(axes[0], ("accuracy", "stale_cosine"), strict=False):
            bars = np.array([_bar(r, name) for r in mine])
            ax.errorbar(x, bars[:, 0], yerr=bars[:, 1:].T, fmt="o-", color=colour, capsize=3, label=f"depth {depth}")
            for r, xi, yi in zip(mine, x, bars[:, 0], strict=True):
                ax.annotate(f"P={r['workers']}", (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
                if r["diverged"]:
                    ax.plot(xi, yi, "x", color=colour, ms=9)
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xlabel("1 + mean staleness (updates)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, title="hidden layers")
    axes[0][0].set_ylabel("test accuracy, mean of the last 3 evaluations")
    how = "lr tuned per cell" if facts.get("tuned") else "one lr (nothing tuned)"
    axes[0][0].set_title(f"C1: async SGD at {facts['gradients']:,} applied gradients, {how}", fontsize=9)
    if quality:
        axes[0][1].set_ylabel("stale cosine (applied vs fresh gradient)")
        axes[0][1].set_title("what staleness does to each update", fontsize=9)
    _save(fig, path)


def plot_sync_vs_async(facts: dict, path: Path) -> None:
    """C2: accuracy at the simulated-time budget, time to the target, and the frontier (stale cosine
    against time per update), per (P, depth) cell, every strategy tuned; no mechanism switched on."""
    plt = _pyplot()
    rows = [r for r in facts["rows"] if r["mechanism"] == "none"]
    cells = sorted({(r["workers"], r["depth"]) for r in rows})
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    width = 0.8 / len(strategies)
    for j, strategy in enumerate(strategies):
        mine = {(r["workers"], r["depth"]): r for r in rows if r["strategy"] == strategy}
        x = np.arange(len(cells)) + (j - (len(strategies) - 1) / 2) * width
        for ax, name in zip(axes[:2], ("accuracy", "time_to_target"), strict=True):
            bars = np.array([_bar(mine[c], name) if c in mine else (np.nan, 0, 0) for c in cells])
            if name == "time_to_target":  # a strategy whose seeds did not all reach the target has no bar
                missed = [c not in mine or mine[c]["reached"] < mine[c]["seeds"] for c in cells]
                bars[missed] = (np.nan, 0, 0)
                for xi, m in zip(x, missed, strict=True):
                    if m:
                        ax.plot(xi, 0, "x", color=_colour(strategy), ms=8)
            ax.bar(x, bars[:, 0], width, yerr=bars[:, 1:].T, capsize=2, color=_colour(strategy), label=strategy)
        for c, r in mine.items():
            t, q = _bar(r, "time_per_update"), _bar(r, "stale_cosine")
            marker = "osD^v"[cells.index(c) % 5]
            axes[2].errorbar(
                t[0] * 1e3,
                q[0],
                xerr=[[t[1] * 1e3], [t[2] * 1e3]],
                yerr=[[q[1]], [q[2]]],
                fmt=marker,
                color=_colour(strategy),
            )
    labels = [f"P={p}\ndepth {d}" for p, d in cells]
    if all(r.get("stale_cosine") is None for r in rows):
        axes[2].text(0.5, 0.5, "gradient quality not measured\n(--quick)", transform=axes[2].transAxes, ha="center")
    if all(r["reached"] < r["seeds"] for r in rows):
        axes[1].text(
            0.5,
            0.6,
            f"no strategy reaches {facts['target']:.0%}\non every seed within the budget",
            transform=axes[1].transAxes,
            ha="center",
            fontsize=9,
        )
    handles = [
        axes[2].plot([], [], m, color="grey", ls="", label=lab.replace("\n", ", "))[0]
        for m, lab in zip("osD^v", labels, strict=False)
    ]
    axes[2].legend(handles=handles, fontsize=7, loc="lower left")
    for ax in axes[:2]:
        ax.set_xticks(np.arange(len(cells)), labels)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("test accuracy at the budget")
    axes[0].set_title(f"equal simulated time (async's time for {facts['gradients']:,} gradients)", fontsize=9)
    axes[0].legend(fontsize=8)
    axes[1].set_ylabel(f"simulated seconds to {facts['target']:.0%} (×: {NOT_REACHED})")
    axes[1].set_title("time to target (interpolated), lower is better", fontsize=9)
    axes[2].set_xscale("log")
    axes[2].set_xlabel("simulated milliseconds per update")
    axes[2].set_ylabel("stale cosine")
    axes[2].set_title("the frontier: quality against time per update (colours: strategies)", fontsize=9)
    axes[2].grid(alpha=0.3, which="both")
    _save(fig, path)


def plot_mechanisms(facts: dict, path: Path) -> None:
    """C2's mechanisms, one at a time, at one cell: accuracy at the budget and time to target of sync +
    backups and async, beside the cell without any."""
    plt = _pyplot()
    first = next(r for r in facts["rows"] if r["mechanism"] != "none")
    cell = (first["workers"], first["depth"])
    rows = [
        r for r in facts["rows"] if (r["workers"], r["depth"]) == cell and r["strategy"] in ("sync + backups", "async")
    ]
    mechanisms = list(dict.fromkeys(r["mechanism"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for j, strategy in enumerate(("sync + backups", "async")):
        mine = {r["mechanism"]: r for r in rows if r["strategy"] == strategy}
        x = np.arange(len(mechanisms)) + (j - 0.5) * 0.38
        for ax, name in zip(axes, ("accuracy", "time_to_target"), strict=True):
            bars = np.array([_bar(mine[m], name) if m in mine else (np.nan, 0, 0) for m in mechanisms])
            if name == "time_to_target":
                missed = [m not in mine or mine[m]["reached"] < mine[m]["seeds"] for m in mechanisms]
                bars[missed] = (np.nan, 0, 0)
                for xi, m in zip(x, missed, strict=True):
                    if m:
                        ax.plot(xi, 0, "x", color=_colour(strategy), ms=8)
            ax.bar(x, bars[:, 0], 0.38, yerr=bars[:, 1:].T, capsize=3, color=_colour(strategy), label=strategy)
    for ax in axes:
        ax.set_xticks(np.arange(len(mechanisms)), [textwrap.fill(m, 11) for m in mechanisms])
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("test accuracy at the budget")
    axes[0].set_title(f"C2's mechanisms one at a time, P={cell[0]}, depth {cell[1]}", fontsize=9)
    axes[0].legend(fontsize=8)
    axes[1].set_ylabel(f"simulated seconds to {facts['target']:.0%} (×: {NOT_REACHED})")
    _save(fig, path)


def plot_tradeoff_map(facts: dict, path: Path) -> None:
    """The map: one cell per (depth and optimizer, P), coloured by the strategy that reached the target
    first (every seed), annotated with its speed-up over the other; hatched where the two intervals
    overlap (a tie)."""
    plt = _pyplot()
    cells = facts["cells"]
    lines = list(dict.fromkeys(map_row(c) for c in cells))
    workers = sorted({c["workers"] for c in cells})
    fig, ax = plt.subplots(figsize=(1.5 * len(workers) + 2.8, 1.1 * len(lines) + 1.8))
    for c in cells:
        i, j = lines.index(map_row(c)), workers.index(c["workers"])
        colour = _colour(c["winner"]) if c["winner"] else "#dddddd"
        tie = c["tie"]
        ax.add_patch(
            plt.Rectangle(
                (j, i),
                1,
                1,
                facecolor=colour,
                alpha=0.35 if tie else 0.8,
                hatch="//" if tie else None,
                edgecolor="white",
            )
        )
        if c["winner"] is None:
            text = "neither\nreached"
        elif c["speedup"] is None:
            text = f"{c['winner']}\nonly one reached"
        else:
            text = f"{c['winner']}\n{c['speedup']:.2f}x" + (" (tie)" if tie else "")
        ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=8)
    ax.set_xlim(0, len(workers))
    ax.set_ylim(0, len(lines))
    ax.set_xticks(np.arange(len(workers)) + 0.5, [str(p) for p in workers])
    ax.set_yticks(np.arange(len(lines)) + 0.5, lines)
    ax.set_xlabel("workers P (sync + backups: N + B = P, B = P/16)")
    ax.set_ylabel("hidden layers, optimizer")
    targets = sorted({(r["depth"], r["target"]) for r in facts["rows"]})
    ax.set_title(
        "who reaches the target first ("
        + ", ".join(f"depth {d}: {t:.0%}" for d, t in targets)
        + ")\nhatched: the intervals overlap (a tie)",
        fontsize=8,
    )
    _save(fig, path)


def map_row(cell: dict) -> str:
    """A map row's label: the depth, and the optimizer where it is not plain SGD."""
    optimizer = cell.get("optimizer", "sgd")
    return f"{cell['depth']}" + ("" if optimizer == "sgd" else f", {optimizer}")

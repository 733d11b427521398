"""The figures of the paper's study (``reproduce``): drawn from result files and tables that
``reproduce.py`` computes; nothing here simulates or computes theory. Matplotlib, Agg backend."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ..io.results import by_workers, read_csv
from ..plots.figures import _num, _pyplot, _save, line_colours, short_spec
from .aggregation import interval

NOT_DIVERGED = ("", "False", "false", "None")  # results.csv's diverged cell: else true or the reason


def plot_kth_gradient(table: Path, path: Path, *, model: str) -> None:
    """Mean and median time to collect the k-th gradient out of n (the paper's Figure 3)."""
    plt = _pyplot()
    rows = read_csv(table)
    k = np.array([int(r["k"]) for r in rows])
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.plot(k, [_num(r["trace_mean"]) * 1e3 for r in rows], color="C0", lw=2, label="trace, mean (bootstrap)")
    ax.plot(k, [_num(r["trace_median"]) * 1e3 for r in rows], color="C0", ls="--", label="trace, median")
    ax.plot(k, [_num(r["model_mean"]) * 1e3 for r in rows], color="C3", lw=1.2, label="fitted model, mean (theory)")
    ax.plot(k, [_num(r["model_median"]) * 1e3 for r in rows], color="C3", ls=":", label="fitted model, median")
    ax.set_xlabel(f"k: gradients collected out of {len(rows)} workers")
    ax.set_ylabel("time to collect the k-th gradient (ms)")
    ax.set_yscale("log")
    wrapped = textwrap.fill(f"fitted model: {short_spec(model)}", 100, break_on_hyphens=False)
    ax.set_title(f"the last few gradients cost the most\n{wrapped}", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)


def plot_iteration_time(results: Path, theory: Path, path: Path) -> None:
    """Mean iteration time against B per semantics (mean over seeds, bars the 95% Student-t interval
    across seeds), with the order-statistics curve."""
    plt = _pyplot()
    rows = read_csv(results)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    seeds = len({r["seed"] for r in rows})
    what = f"mean over {seeds} seeds, 95% t-interval" if seeds > 1 else "one seed"
    for i, semantics in enumerate(("tf", "drop", "cancel")):
        by_b: dict[int, list[float]] = {}
        for r in rows:
            if r["semantics"] == semantics:
                by_b.setdefault(int(r["backups"]), []).append(_num(r["mean_iteration_time"]))
        b = np.array(sorted(by_b))
        stats = np.array([interval(by_b[k]) for k in b])  # mean, std, low, high
        half = np.nan_to_num(stats[:, 3] - stats[:, 0]) if seeds > 1 else None
        ax.errorbar(
            b + (i - 1) * 0.08,
            stats[:, 0] * 1e3,
            yerr=None if half is None else half * 1e3,
            fmt="o",
            ms=4,
            capsize=3,
            color=f"C{i}",
            label=f"simulated, {semantics} ({what})",
        )
    th = read_csv(theory)
    ax.plot(
        [int(r["backups"]) for r in th],
        [_num(r["mean"]) * 1e3 for r in th],
        color="black",
        lw=1.5,
        label="theory: E[X(N:N+B)] (cancel)",
    )
    n = int(rows[0]["workers"])
    ax.set_xlabel(f"backup workers B (N = {n} gradients per update)")
    ax.set_ylabel("mean iteration time (ms)")
    ax.set_title("iteration time against backups: simulation on the theory curve", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_updates_to_target(results: Path, path: Path, *, total: int) -> None:
    """Updates to the target accuracy against N, at fixed N + B (the paper's Figure 5, left)."""
    plt = _pyplot()
    rows = read_csv(results)
    target = _num(rows[0]["target_accuracy"])
    data = by_workers(rows, "updates_to_target")
    n = np.array(list(data))
    mean = np.array([np.nanmean(v) for v in data.values()])
    lo = mean - np.array([np.nanmin(v) for v in data.values()])
    hi = np.array([np.nanmax(v) for v in data.values()]) - mean
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.errorbar(n, mean, yerr=[lo, hi], fmt="o-", capsize=3, label="mean over seeds (bars: min-max)")
    ax.set_xlabel(f"N, gradients averaged per update (N + B = {total})")
    ax.set_ylabel(f"updates to {target:.0%} test accuracy")
    ax.set_title("updates to the target against the number of gradients averaged", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_time_to_target(table: dict, path: Path) -> None:
    """Simulated and estimated time to target against B, optimum marked (Figure 5, right);
    ``table`` from ``reproduce.time_to_target_table``."""
    plt = _pyplot()
    b, simulated, estimated = table["backups"], table["simulated"], table["estimated"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(b, simulated, "o-", color="C0", label="simulated")
    ax.plot(b, estimated, "s--", color="C1", label="estimated: updates × E[X(N:N+B)]")
    i = table["optimum"]
    ax.plot([b[i]], [simulated[i]], "*", ms=16, color="C3", label=f"optimum: B = {b[i]}")
    ax.set_xlabel(f"backup workers B (N + B = {table['total']})")
    ax.set_ylabel(f"simulated seconds to {table['target']:.0%} test accuracy")
    ax.set_title("the trade-off: fewer gradients per update, faster updates", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_accuracy_vs_time(metrics: dict[str, Path], target: float | None, path: Path) -> None:
    """Test accuracy against simulated time for each strategy (``{label: metrics.csv}``), on the
    same latency draws."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for i, (label, table) in enumerate(metrics.items()):
        rows = read_csv(table)
        ax.plot(
            [_num(r["sim_time"]) for r in rows],
            [_num(r["test_accuracy"]) for r in rows],
            color=f"C{i}",
            label=label,
        )
    ends = [line.get_xdata()[-1] for line in ax.get_lines()]
    ax.set_xlim(0, min(ends))  # the shortest run's span: every strategy over the same time
    if target:
        ax.axhline(target, color="grey", ls=":", lw=1)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(
        "the same latency draws, five strategies (MLP on digits, test accuracy on the simulated clock)", fontsize=9
    )
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_staleness(sweep: Path, path: Path) -> None:
    """Final accuracy against mean staleness (left: mean over seeds, bars the 95% Student-t interval
    across seeds) and staleness histograms (right)."""
    plt = _pyplot()
    rows = read_csv(sweep / "results.csv")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    by_p: dict[int, list[tuple[float, float, bool]]] = {}
    for r in rows:  # a diverged run's accuracy (chance) is left out of the mean, and said
        gone = r.get("diverged", "") not in NOT_DIVERGED
        by_p.setdefault(int(r["workers"]), []).append((_num(r["mean_staleness"]), _num(r["final_test_accuracy"]), gone))
    seeds = sorted({len(points) for points in by_p.values()})
    for p, points in sorted(by_p.items()):
        stale, acc, diverged = np.array(points).T
        gone = int(diverged.sum())
        acc = acc[diverged == 0]
        mean, _, low, high = interval(list(acc))
        bars = None if np.isnan(low) else [[mean - low], [high - mean]]
        left.errorbar(stale.mean(), mean, yerr=bars, fmt="o", capsize=4, color="C0")
        same = " (seeds agree: no spread)" if len(acc) > 1 and np.ptp(acc) == 0 else ""
        same += f" ({gone} diverged, left out)" if gone else ""
        left.annotate(f"P = {p}{same}", (stale.mean(), mean), fontsize=8, xytext=(5, 4), textcoords="offset points")
    count = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    spread = f"mean over {count} seeds; bars: 95% t-interval across seeds" if seeds[-1] > 1 else "one seed"
    left.set_xlabel("mean staleness of applied gradients (updates)")
    left.set_ylabel("final test accuracy")
    left.set_title(f"async SGD with P workers, same number of updates\n{spread}", fontsize=9)
    left.grid(alpha=0.3)
    firsts = {}
    for r in rows:
        firsts.setdefault(int(r["workers"]), r)
    for colour, (p, r) in zip(line_colours(len(firsts)), sorted(firsts.items()), strict=True):
        grads = read_csv(sweep / "runs" / r["run"] / "gradients.csv")
        s = np.array([int(g["staleness"]) for g in grads if g["fate"] == "applied"])
        right.hist(
            s,
            bins=np.arange(0, s.max() + 2) - 0.5,
            histtype="step",
            lw=1.5,
            density=True,
            color=colour,
            label=f"P = {p} workers",
        )
    right.set_xlabel("staleness (updates)")
    right.set_ylabel(f"fraction of applied gradients (seed {rows[0]['seed']})")
    right.set_yscale("log")
    right.set_title("staleness histograms", fontsize=9)
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    _save(fig, path)


def plot_convex_bound(table: Path, constants: dict, path: Path) -> None:
    """F(w_t) - F* of a simulated K-sync run against Dutta et al.'s bound (log scale)."""
    plt = _pyplot()
    rows = read_csv(table)
    t = [_num(r["time"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.plot(t, [_num(r["error"]) for r in rows], "o-", ms=3, label="simulated K-sync run: F(w_t) - F*")
    ax.plot(
        t,
        [_num(r["bound"]) for r in rows],
        "--",
        color="C3",
        label="bound: ηLσ²/(2cKm) + (1-ηc)^J (F0 - F* - ηLσ²/(2cKm)), J = t/E[X(K:P)]",
    )
    ax.set_yscale("log")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("optimality gap F(w) - F* (nats)")
    c = constants
    ax.set_title(
        f"L2-regularised logistic regression on the digits, K = {c['K']} of P = {c['P']}; "
        f"L = {c['L']:.3g}, c = {c['c']:g}, σ² = {c['sigma2']:.3g}, η = {c['eta']:g}, m = {c['m']}",
        fontsize=8,
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)

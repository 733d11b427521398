"""Figures, drawn from results (never by re-running a simulation). Matplotlib, Agg backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fit(durations: np.ndarray, report: dict, path: Path, *, title: str = "") -> None:
    """Empirical CDF with the fitted CDFs (left) and a QQ plot of the chosen fit (right)."""
    from simulator.latency import parse_latency

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
    path = Path(path)
    fig.savefig(path.with_suffix(".png"), dpi=120)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)


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
    from matplotlib.ticker import MaxNLocator

    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_title("adaptive-backup's choices (Kaplan-Meier estimate, re-evaluated)", fontsize=9)
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path.with_suffix(".png"), dpi=120)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)

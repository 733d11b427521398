"""Figures, drawn from results (never by re-running a simulation). Matplotlib, Agg backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .results import read_csv


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fit(durations: np.ndarray, report: dict, path: Path, *, title: str = "") -> None:
    """Empirical CDF with the fitted CDFs (left) and a QQ plot of the chosen fit (right)."""
    from .latency import parse_latency

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


FATE_COLOURS = {
    "applied": "#2b8cbe",
    "dropped_late": "#fdae61",
    "dropped_stale": "#f46d43",
    "cancelled": "#bdbdbd",
    "failed": "#d73027",
    "unfinished": "#e0e0e0",
}


def _save(fig, path: Path) -> None:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    fig.savefig(path.with_suffix(".pdf"))
    _pyplot().close(fig)


def plot_gantt(run: Path, path: Path, *, updates: int = 6, title: str = "") -> None:
    """Who computed when over the first ``updates`` updates, coloured by each gradient's fate."""
    from matplotlib.patches import Patch

    from .timeline import read_run

    plt = _pyplot()
    gradients, ups = read_run(run)
    horizon = ups[min(updates, len(ups)) - 1]["time"]
    shown = [g for g in gradients if g["start"] < horizon]
    workers = sorted({g["worker"] for g in gradients})
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(workers) + 1.8))
    for g in shown:
        end = min(g["end"], horizon * 1.02)
        ax.barh(
            g["worker"],
            end - g["start"],
            left=g["start"],
            height=0.7,
            color=FATE_COLOURS[g["fate"]],
            edgecolor="black",
            linewidth=0.4,
        )
    for u in ups[:updates]:
        ax.axvline(u["time"], color="black", lw=0.8, ls="--")
        ax.text(u["time"], len(workers) - 0.3, f" {u['update']}", fontsize=8, va="bottom")
    ax.set_yticks(workers, [f"worker {w}" for w in workers])
    ax.invert_yaxis()
    ax.set_xlim(0, horizon * 1.02)
    ax.set_xlabel("simulated time (s); dashed lines: parameter updates (numbered)")
    ax.set_title(title or f"timeline of {run}", fontsize=10)
    fates = sorted({g["fate"] for g in shown}, key=list(FATE_COLOURS).index)
    ax.legend(
        handles=[Patch(color=FATE_COLOURS[f], label=f.replace("_", " ")) for f in fates],
        fontsize=8,
        loc="upper right",
        ncol=len(fates),
    )
    _save(fig, path)


def _num(value) -> float:
    return float(value) if value not in ("", None) else float("nan")


def plot_sweep(results: Path, path: Path) -> None:
    """Mean iteration time against B for each strategy and semantics of a sweep (95% CI)."""
    plt = _pyplot()
    rows = read_csv(results)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], r["semantics"], r["workers"]), []).append(r)
    for i, ((strategy, semantics, n), sel) in enumerate(sorted(groups.items())):
        sel.sort(key=lambda r: int(r["backups"]))
        b = [int(r["backups"]) for r in sel]
        mean = np.array([_num(r["mean_iteration_time"]) for r in sel])
        ci = 1.96 * np.array([_num(r["std_iteration_time"]) / np.sqrt(_num(r["updates"])) for r in sel])
        label = f"{strategy}{' ' + semantics if semantics else ''}, N = {n}"
        ax.errorbar(b, mean, yerr=ci, fmt="o-", ms=4, capsize=3, color=f"C{i % 10}", label=label)
    ax.set_xlabel("backup workers B")
    ax.set_ylabel("mean iteration time (s), 95% CI")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_metrics(metrics: Path, path: Path) -> None:
    """Test accuracy (or loss) of one training run against simulated time."""
    plt = _pyplot()
    rows = read_csv(metrics)
    t = [_num(r["sim_time"]) for r in rows]
    acc = [_num(r["test_accuracy"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if all(np.isnan(acc)):
        ax.plot(t, [_num(r["test_loss"]) for r in rows], "o-")
        ax.set_ylabel("test loss")
    else:
        ax.plot(t, acc, "o-")
        ax.set_ylabel("test accuracy")
    ax.set_xlabel("simulated time (s)")
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_folders(dirs: list[Path], out: Path) -> list[Path]:
    """The figures of run and sweep folders: a sweep (results.csv) gets its iteration time against
    backups; a run (gradients.csv) its timeline and, when it trained, its accuracy curve.

    Returns:
        The PNG files written (each also as PDF).

    Raises:
        InputError: a folder that is neither, or a sweep without backup runs.
    """
    from .errors import InputError

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for d in dirs:
        if (d / "results.csv").exists():
            if not any(r.get("semantics") for r in read_csv(d / "results.csv")):
                raise InputError(f"{d}: the plot of a sweep needs backup runs (iteration time against B)")
            plot_sweep(d / "results.csv", out / f"{d.name}-iteration-time")
            written.append(out / f"{d.name}-iteration-time.png")
        elif (d / "gradients.csv").exists():
            plot_gantt(d, out / f"{d.name}-timeline", title=f"{d}: the first updates")
            written.append(out / f"{d.name}-timeline.png")
            if (d / "metrics.csv").exists():
                plot_metrics(d / "metrics.csv", out / f"{d.name}-accuracy")
                written.append(out / f"{d.name}-accuracy.png")
        else:
            raise InputError(f"{d}: neither a run folder (gradients.csv) nor a sweep folder (results.csv)")
    return written

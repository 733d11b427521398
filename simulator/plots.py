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
    ax.set_title(f"the last few gradients cost the most; model {model}", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)


def plot_iteration_time(results: Path, theory: Path, path: Path) -> None:
    """Mean iteration time against B per semantics (95% CI), with the order-statistics curve."""
    plt = _pyplot()
    rows = read_csv(results)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, semantics in enumerate(("tf", "drop", "cancel")):
        sel = sorted((r for r in rows if r["semantics"] == semantics), key=lambda r: int(r["backups"]))
        b = np.array([int(r["backups"]) for r in sel])
        mean = np.array([_num(r["mean_iteration_time"]) for r in sel])
        ci = 1.96 * np.array([_num(r["std_iteration_time"]) / np.sqrt(_num(r["updates"])) for r in sel])
        ax.errorbar(
            b + (i - 1) * 0.08,
            mean * 1e3,
            yerr=ci * 1e3,
            fmt="o",
            ms=4,
            capsize=3,
            color=f"C{i}",
            label=f"simulated, {semantics} (95% CI)",
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


def _by_n(rows: list[dict], key: str) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for r in rows:
        out.setdefault(int(r["workers"]), []).append(_num(r[key]))
    return dict(sorted(out.items()))


def plot_updates_to_target(results: Path, path: Path, *, total: int) -> None:
    """Updates to the target accuracy against N, at fixed N + B (the paper's Figure 5, left)."""
    plt = _pyplot()
    rows = read_csv(results)
    target = _num(rows[0]["target_accuracy"])
    data = _by_n(rows, "updates_to_target")
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


def plot_time_to_target(results: Path, path: Path, *, total: int, model) -> dict:
    """Simulated and estimated time to target against B, optimum marked (Figure 5, right).

    Estimated = (updates to target at N) × E[X_{N:N+B}] from the order statistics of ``model``.
    """
    from .theory import order_mean

    plt = _pyplot()
    rows = read_csv(results)
    target = _num(rows[0]["target_accuracy"])
    times = _by_n(rows, "time_to_target")
    updates = _by_n(rows, "updates_to_target")
    n = np.array(list(times))
    b = total - n
    simulated = np.array([np.nanmean(v) for v in times.values()])
    estimated = np.array([np.nanmean(updates[k]) * order_mean(model, k, total) for k in times])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(b, simulated, "o-", color="C0", label="simulated")
    ax.plot(b, estimated, "s--", color="C1", label="estimated: updates × E[X(N:N+B)]")
    i, j = int(np.nanargmin(simulated)), int(np.nanargmin(estimated))
    ax.plot([b[i]], [simulated[i]], "*", ms=16, color="C3", label=f"optimum: B = {b[i]}")
    ax.set_xlabel(f"backup workers B (N + B = {total})")
    ax.set_ylabel(f"simulated seconds to {target:.0%} test accuracy")
    ax.set_title("the trade-off: fewer gradients per update, faster updates", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    return {"backups": int(b[i]), "time": float(simulated[i]), "estimated_backups": int(b[j])}


def plot_accuracy_vs_time(sweep: Path, compare: dict, seeds, path: Path) -> None:
    """Test accuracy against simulated time for each strategy, on the same latency draws."""
    from .sweep import run_name

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for i, (label, config) in enumerate(compare.items()):
        from dataclasses import replace

        for s in seeds[:1]:
            rows = read_csv(sweep / "runs" / run_name(replace(config, seed=s)) / "metrics.csv")
            ax.plot(
                [_num(r["sim_time"]) for r in rows],
                [_num(r["test_accuracy"]) for r in rows],
                color=f"C{i}",
                label=label,
            )
    ends = [line.get_xdata()[-1] for line in ax.get_lines()]
    ax.set_xlim(0, min(ends))  # the shortest run's span: every strategy over the same time
    target = compare[next(iter(compare))].target_accuracy
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
    """Final accuracy against mean staleness (left) and staleness histograms (right)."""
    plt = _pyplot()
    rows = read_csv(sweep / "results.csv")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    by_p: dict[int, list[tuple[float, float]]] = {}
    for r in rows:
        by_p.setdefault(int(r["workers"]), []).append((_num(r["mean_staleness"]), _num(r["final_test_accuracy"])))
    for p, points in sorted(by_p.items()):
        stale, acc = np.array(points).T
        left.errorbar(
            stale.mean(),
            acc.mean(),
            yerr=[[acc.mean() - acc.min()], [acc.max() - acc.mean()]],
            fmt="o",
            capsize=3,
            color="C0",
        )
        left.annotate(f"P = {p}", (stale.mean(), acc.mean()), fontsize=8, xytext=(5, 4), textcoords="offset points")
    left.set_xlabel("mean staleness of applied gradients (updates)")
    left.set_ylabel("final test accuracy (mean; bars: min-max over seeds)")
    left.set_title("async SGD with P workers, same number of updates", fontsize=9)
    left.grid(alpha=0.3)
    seen = set()
    for i, r in enumerate(rows):
        if r["workers"] in seen:
            continue
        seen.add(r["workers"])
        grads = read_csv(sweep / "runs" / r["run"] / "gradients.csv")
        s = np.array([int(g["staleness"]) for g in grads if g["fate"] == "applied"])
        right.hist(
            s,
            bins=np.arange(0, s.max() + 2) - 0.5,
            histtype="step",
            lw=1.5,
            density=True,
            color=f"C{i}",
            label=f"P = {r['workers']} workers",
        )
    right.set_xlabel("staleness (updates)")
    right.set_ylabel("fraction of applied gradients")
    right.set_yscale("log")
    right.set_title("staleness histograms", fontsize=9)
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    _save(fig, path)


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

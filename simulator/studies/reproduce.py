"""``stragglersim reproduce``: the paper's study end to end, on shipped data and defaults.

Every experiment writes its data (run folders, sweeps, CSV tables) under ``OUT/data/``; every
figure is then drawn from those files. ``--quick`` shrinks the experiments (for CI);
the full study is what ``figures/`` holds.
"""

from __future__ import annotations

import csv
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..core.config import RunConfig
from ..io.errors import InputError, named
from ..io.results import by_workers, check_out_dir, read_csv, write_json
from ..io.timeline import chrome_trace
from ..latency import Empirical, parse_latency
from ..latency.fitting import fit_durations
from ..latency.traces import read_trace, shipped_trace
from ..plots import figures as plots
from ..training.runner import execute_and_write
from . import claim_plots, study_plots
from .claim_report import write_report
from .claims import QUICK_CLAIMS, ClaimScale, staleness_depth, sync_vs_async, tradeoff_map
from .convex import convex_study
from .grids import digest
from .survival import order_means
from .sweeps import run_sweep
from .theory import order_moments

TRACE = shipped_trace("measured-cpu-4x-cnn-digits.csv")


@dataclass(frozen=True)
class Scale:
    """How big each experiment is."""

    kth_workers: int = 100  # workers in the k-th gradient figure
    kth_replications: int = 4000
    timing_n: int = 100  # N of the iteration-time figure
    timing_backups: int = 10
    timing_steps: int = 4000
    total: int = 16  # N + B of the time-to-target study
    ns: tuple[int, ...] = (2, 4, 6, 8, 10, 12, 14, 16)
    seeds: tuple[int, ...] = (0, 1, 2)
    train_steps: int = 800
    target: float = 0.9  # test accuracy of the strategy comparison
    study_target: float = 0.93  # test accuracy of the time-to-target study
    compare_workers: int = 8
    staleness_workers: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    convex_steps: int = 1500


QUICK = Scale(
    kth_workers=100,
    kth_replications=1000,
    timing_n=20,
    timing_backups=6,
    timing_steps=1500,
    total=8,
    ns=(2, 4, 6, 8),
    seeds=(0,),
    train_steps=400,
    staleness_workers=(1, 4, 16),
    convex_steps=300,
)


STUDIES = ("paper", "staleness-depth", "sync-vs-async", "tradeoff-map")  # reproduce --only NAME
# what the paper's experiments write under data/ (redone by each run of them; the claim studies' folders stay)
PAPER_DATA = (
    "fit.json",
    "kth-gradient.csv",
    "timing",
    "timing-theory.csv",
    "target",
    "compare",
    "staleness",
    "convex.csv",
    "convex.json",
    "gantt-run",
)


def reproduce(
    out: Path,
    *,
    quick: bool = False,
    only: str | None = None,
    jobs: int | None = None,
    overwrite: bool = False,
    log=print,
    scale: Scale | None = None,
    claim_scale: ClaimScale | None = None,
) -> Path:
    """Run the studies (every one, or ``only`` one of ``STUDIES``) and draw their figures into ``out``;
    write ``report.md`` from the facts of every study ``out`` holds (``out/facts/STUDY.json``); returns
    its path.

    The paper's experiments redo their data under ``out/data/`` from scratch; a claim study resumes
    its folder ``out/data/STUDY/`` (runs already complete are kept: delete it to start afresh). With
    ``overwrite``, a non-empty ``out`` is written into: the figures replace those of the same names;
    other files stay.

    Raises:
        InputError: ``out`` is not empty and ``overwrite`` is off, or is a file; an unknown ``only``.
    """
    if only is not None and only not in STUDIES:
        raise InputError(f"{named('only')} {only!r}: one of {', '.join(STUDIES)}")
    check_out_dir(out, overwrite=overwrite, replaces=False)  # writes into out, keeping other files
    scale = scale or (QUICK if quick else Scale())  # ``scale``: any other size (the tests' smallest)
    claim_scale = claim_scale or (QUICK_CLAIMS if quick else ClaimScale())
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    log("fitting the shipped measured trace ...")
    trace = read_trace(TRACE)
    fit = fit_durations(trace.duration)
    spec = fit["best"]["spec"]
    # At toy scale compiling the training steps outweighs the runs: one process compiles each once.
    claim_jobs = 1 if quick else jobs
    for study in STUDIES if only is None else (only,):
        started = time.perf_counter()
        if study == "paper":
            facts = _paper(out, data, scale, jobs, log, trace, fit)
        else:
            log(f"{study} (tuned cells; a progress bar per sweep) ...")
            run = {"staleness-depth": staleness_depth, "sync-vs-async": sync_vs_async, "tradeoff-map": tradeoff_map}
            facts = run[study](data / study, claim_scale, spec, jobs=claim_jobs, log=log)
            _claim_figures(study, facts, out)
        facts |= {"quick": quick, "seconds": time.perf_counter() - started}
        (out / "facts").mkdir(exist_ok=True)
        write_json(out / "facts" / f"{study}.json", facts)
    return write_report(out)


def _claim_figures(study: str, facts: dict, out: Path) -> None:
    if study == "staleness-depth":
        claim_plots.plot_staleness_depth(facts, out / "staleness-depth")
    elif study == "sync-vs-async":
        claim_plots.plot_sync_vs_async(facts, out / "sync-vs-async")
        claim_plots.plot_mechanisms(facts, out / "sync-vs-async-mechanisms")
    else:
        claim_plots.plot_tradeoff_map(facts, out / "tradeoff-map")


def _paper(out: Path, data: Path, scale: Scale, jobs, log, trace, fit) -> dict:
    """The paper's experiments (trace fit, k-th gradient, iteration time, time to target, strategies on
    the same draws, staleness, Dutta et al.'s bound, a timeline); their facts for the report."""
    for name in PAPER_DATA:
        path = data / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    facts: dict = {"total": scale.total, "study_target": scale.study_target, "target": scale.target}
    write_json(data / "fit.json", fit)
    plots.plot_fit(trace.duration, fit, out / "trace-fit", title=f"{TRACE.name}: {fit['best']['spec']}")
    model = parse_latency(fit["best"]["spec"])
    facts["fit"] = fit["best"]
    facts["compare_workers"] = scale.compare_workers

    log("k-th gradient out of 100 workers ...")
    _kth_gradient(Empirical(trace.duration, f"empirical:{TRACE.name}"), model, scale, data / "kth-gradient.csv")
    study_plots.plot_kth_gradient(data / "kth-gradient.csv", out / "kth-gradient", model=fit["best"]["spec"])

    log("iteration time against backups (timing sweep) ...")
    timing = replace(
        RunConfig(),
        strategy="backup",
        workers=scale.timing_n,
        latency=fit["best"]["spec"],
        steps=scale.timing_steps,
        timing_only=True,
    )
    configs = [
        replace(timing, semantics=s, backups=b, seed=seed)
        for s in ("tf", "drop", "cancel")
        for b in range(scale.timing_backups + 1)
        for seed in scale.seeds
    ]
    run_sweep(configs, data / "timing", jobs=jobs)
    moments = [order_moments(model, scale.timing_n, scale.timing_n + b) for b in range(scale.timing_backups + 1)]
    theory = [(b, m.mean, m.std) for b, m in enumerate(moments)]
    _write_rows(data / "timing-theory.csv", ("backups", "mean", "std"), theory)
    study_plots.plot_iteration_time(
        data / "timing" / "results.csv", data / "timing-theory.csv", out / "iteration-time-vs-backups"
    )

    log("updates and time to target at fixed N + B (training sweep) ...")
    # Small mini-batches and a learning rate growing as sqrt(N): the regime where averaging more
    # gradients per update saves updates (the left half of the paper's trade-off).
    train = RunConfig(
        strategy="backup",
        semantics="cancel",
        latency=fit["best"]["spec"],
        steps=scale.train_steps,
        target_accuracy=scale.study_target,
        eval_every="2",
        batch_size=4,
        lr=0.03,
        lr_scaling="sqrt",
    )
    configs = [replace(train, workers=n, backups=scale.total - n, seed=s) for n in scale.ns for s in scale.seeds]
    rows = run_sweep(configs, data / "target", jobs=jobs)
    study_plots.plot_updates_to_target(
        data / "target" / "results.csv", out / "updates-to-target-vs-n", total=scale.total
    )
    table = time_to_target_table(data / "target" / "results.csv", total=scale.total, model=model)
    study_plots.plot_time_to_target(table, out / "time-to-target-vs-backups")
    i, j = table["optimum"], table["estimated_optimum"]
    best = {"backups": int(table["backups"][i]), "time": float(table["simulated"][i])}
    facts["optimum"] = {**best, "estimated_backups": int(table["backups"][j])}
    facts["target_runs_reached"] = sum(r["time_to_target"] not in ("", None) for r in rows)

    log("strategies on the same latency draws (training) ...")
    p = scale.compare_workers
    base = RunConfig(
        strategy="async",
        latency=fit["best"]["spec"],
        steps=scale.train_steps,
        eval_every="5",
        lr=0.1,
        target_accuracy=scale.target,
        stop_at_target=False,
    )
    compare = {
        "sync": replace(base, strategy="sync", workers=p),
        "backup": replace(base, strategy="backup", workers=p - 2, backups=2, semantics="tf"),
        # one gradient per update: as many gradients as the synchronous runs compute
        "async": replace(base, strategy="async", workers=p, lr=0.05, steps=base.steps * p),
        "async, staleness <= 2": replace(
            base, strategy="async", workers=p, staleness_cutoff=2, lr=0.05, steps=base.steps * p
        ),
        "softsync n=2": replace(base, strategy="softsync", workers=p, softsync_n=2, lr=0.1, steps=base.steps * 2),
    }
    configs = [replace(c, seed=s) for c in compare.values() for s in scale.seeds]
    rows = run_sweep(configs, data / "compare", jobs=jobs)
    named = {digest(c): row["run"] for c, row in zip(configs, rows, strict=True)}
    first = {
        label: data / "compare" / "runs" / named[digest(replace(c, seed=scale.seeds[0]))]
        for label, c in compare.items()
    }
    study_plots.plot_accuracy_vs_time(
        {label: folder / "metrics.csv" for label, folder in first.items()},
        base.target_accuracy,
        out / "accuracy-vs-time",
    )
    facts["compare"] = _time_to_target_by_label(rows, named, compare, scale.seeds)

    log("the staleness effect (async with more and more workers) ...")
    configs = [
        replace(base, strategy="async", workers=w, lr=0.05, seed=s)
        for w in scale.staleness_workers
        for s in scale.seeds
    ]
    run_sweep(configs, data / "staleness", jobs=jobs)
    study_plots.plot_staleness(data / "staleness", out / "staleness")

    log("Dutta et al.'s bound beside a convex run ...")
    convex = RunConfig(
        strategy="k-sync",
        workers=8,
        k=6,
        steps=scale.convex_steps,
        lr=0.15,
        batch_size=16,
        eval_every="10",
        latency=fit["best"]["spec"],
        seed=0,
    )
    study = convex_study(convex, l2=0.05)
    _write_rows(
        data / "convex.csv",
        ("time", "error", "bound"),
        zip(study["times"], study["error"], study["bound"], strict=True),
    )
    constants = {k: v for k, v in study.items() if not isinstance(v, np.ndarray)}
    write_json(data / "convex.json", constants)
    study_plots.plot_convex_bound(data / "convex.csv", constants, out / "convex-bound")
    facts["convex_below_bound"] = float(np.mean(study["error"] <= study["bound"]))

    log("a timeline of a few steps ...")
    gantt = RunConfig(
        strategy="backup",
        workers=4,
        backups=2,
        semantics="tf",
        latency=fit["best"]["spec"],
        steps=12,
        speed_factors="1,1,1,1,1.3,2",
        timing_only=True,
        seed=1,
    )
    execute_and_write(gantt, data / "gantt-run", overwrite=True)
    plots.plot_gantt(
        data / "gantt-run",
        out / "timeline",
        updates=8,
        title="backup N=4, B=2, TensorFlow semantics: the first 8 updates (workers 4 and 5 slower)",
    )
    chrome_trace(data / "gantt-run", out / "timeline.json")

    return facts


def _kth_gradient(empirical, model, scale: Scale, path: Path) -> None:
    """Mean and median time to collect the k-th of n gradients: bootstrap from the trace's
    durations, and the fitted model (mean from theory, median by simulation)."""
    n, r = scale.kth_workers, scale.kth_replications
    # A fixed stream of its own, not a run's: a named Stream (spawn key under the run seed) would
    # draw other numbers than default_rng(0), and this figure's bootstrap is kept as published.
    rng = np.random.default_rng(0)
    boot = np.sort(empirical.sample(rng, r * n).reshape(r, n), axis=1)
    modelled = np.sort(model.sample(rng, r * n).reshape(r, n), axis=1)
    means = order_means(model, n)
    rows = [
        (k, boot[:, k - 1].mean(), np.median(boot[:, k - 1]), means[k - 1], np.median(modelled[:, k - 1]))
        for k in range(1, n + 1)
    ]
    _write_rows(path, ("k", "trace_mean", "trace_median", "model_mean", "model_median"), rows)


def time_to_target_table(results: Path, *, total: int, model) -> dict:
    """Per B = total - N of a sweep: simulated time to target (mean over seeds) and the estimate
    (updates to target at N) x E[X_{N:N+B}] from the order statistics of ``model``; the index of
    the optimum of each."""
    rows = read_csv(results)
    times, updates = by_workers(rows, "time_to_target"), by_workers(rows, "updates_to_target")
    n = np.array(list(times))
    simulated = np.array([np.nanmean(v) for v in times.values()])
    means = order_means(model, total)
    estimated = np.array([np.nanmean(updates[k]) * means[k - 1] for k in times])
    return {
        "backups": total - n,
        "simulated": simulated,
        "estimated": estimated,
        "optimum": int(np.nanargmin(simulated)),
        "estimated_optimum": int(np.nanargmin(estimated)),
        "total": total,
        "target": float(rows[0]["target_accuracy"]),
    }


def _write_rows(path: Path, header, rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _time_to_target_by_label(rows: list[dict], named: dict, compare: dict, seeds) -> dict:
    """Mean time to target over seeds for each labelled configuration (runs that reached it)."""
    by_run = {r["run"]: r for r in rows}
    out = {}
    for label, config in compare.items():
        times = [by_run[named[digest(replace(config, seed=s))]]["time_to_target"] for s in seeds]
        times = [float(t) for t in times if t is not None]
        if times:
            out[label] = float(np.mean(times))
    return out

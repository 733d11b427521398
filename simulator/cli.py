"""The command line: parse, build the config, call the library, write files.

Every input problem ends as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import fields
from pathlib import Path

from ._version import __version__
from .config import OPTIMIZERS, SEMANTICS, STRATEGIES, RunConfig
from .errors import InputError, RunsFailed
from .models.catalog import DATASETS, MODELS


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (and exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_run_options(p: argparse.ArgumentParser, *, replay: bool = False, sweep: bool = False) -> None:
    """The options of one run (``simulate``; ``replay`` takes its latency from the trace; ``sweep``
    takes lists for strategy, workers, backups and seeds)."""
    d = RunConfig()
    if sweep:
        p.add_argument(
            "--strategy", default=d.strategy, metavar="S,S,...", help=f"strategies, from {', '.join(STRATEGIES)}"
        )
        p.add_argument("--workers", default=str(d.workers), metavar="N,N,...|A-B", help="workers N (list or range)")
        p.add_argument("--backups", default="0", metavar="B,B,...|A-B", help="backups B (list or range)")
        p.add_argument("--seeds", default="0", metavar="S,S,...|A-B", help="seeds (list or range)")
        p.add_argument("--total-workers", type=int, default=None, metavar="P", help="hold N + B = P (B = P - N)")
        p.add_argument("--jobs", type=int, default=None, metavar="J", help="parallel processes (default: CPU count)")
        p.add_argument(
            "--scheduler",
            default=None,
            metavar="ADDRESS",
            help="run on a Dask cluster: tcp://HOST:PORT of a running `dask scheduler`, or local:K for a "
            "LocalCluster of K workers (needs the cluster extra: pip install '.[cluster]')",
        )
    else:
        p.add_argument("--strategy", default=d.strategy, help=f"one of {', '.join(STRATEGIES)} (default: {d.strategy})")
        p.add_argument(
            "--workers",
            type=int,
            default=d.workers,
            metavar="N",
            help=f"gradients per update (sync, backup); number of workers (others) (default: {d.workers})",
        )
        p.add_argument(
            "--backups", type=int, default=d.backups, metavar="B", help="backup workers: N+B run, the first N count"
        )
    p.add_argument("--semantics", default=None, help=f"late workers under backup: {', '.join(SEMANTICS)} (default: tf)")
    p.add_argument(
        "--staleness-cutoff", type=int, default=None, metavar="T", help="async: drop gradients with staleness > T"
    )
    f = p.add_argument_group("the strategy family (--workers is then P, the number of workers)")
    f.add_argument(
        "--k", type=int, default=None, metavar="K", help="k-sync, k-batch-sync, k-async, k-batch-async: K per update"
    )
    f.add_argument(
        "--softsync-n", type=int, default=None, metavar="n", help="softsync: update every floor(P/n) gradients"
    )
    f.add_argument(
        "--ssp-bound", type=int, default=None, metavar="s", help="ssp: clocks a worker may run ahead of the slowest"
    )
    f.add_argument(
        "--deadline", type=float, default=None, metavar="SECONDS", help="deadline: aggregate what arrived by then"
    )
    f.add_argument("--staleness-lr", action="store_true", help="scale a gradient of staleness t > 0 by 1/t")
    f.add_argument(
        "--noise-scale",
        type=float,
        default=None,
        metavar="EXAMPLES",
        help="adaptive-backup: gradient noise scale (default: workers x batch size)",
    )
    f.add_argument(
        "--adapt-every", type=int, default=d.adapt_every, metavar="K", help="adaptive-backup: updates between choices"
    )
    e = p.add_argument_group("system effects")
    e.add_argument(
        "--ps-bandwidth",
        type=float,
        default=d.ps_bandwidth,
        metavar="BYTES/S",
        help="the PS's incoming link, shared by concurrent pushes (default: inf, not modelled)",
    )
    e.add_argument(
        "--fail-slow",
        default=d.fail_slow,
        metavar="normal=S,slow=S,factor=F",
        help="fail-slow episodes: mean seconds normal and slow, slowdown factor",
    )
    e.add_argument("--fail-at", default=d.fail_at, metavar="W@DOWN[-UP],...", help="worker W is down from DOWN to UP s")
    e.add_argument("--failures", default=d.failures, metavar="rate=R,downtime=S", help="random failures per worker")
    e.add_argument(
        "--data-cost",
        default=d.data_cost,
        metavar="none|nnz",
        help="scale computation time with the mini-batch's non-zero inputs (default: none)",
    )
    if not replay:
        p.add_argument(
            "--latency",
            default=d.latency,
            metavar="SPEC",
            help="computation time in seconds, e.g. shifted-exponential:shift=2,rate=0.5, trace:PATH, "
            f"empirical:PATH (default: {d.latency})",
        )
        add_trace_options(p, what="of a trace:/empirical: latency file")
    p.add_argument(
        "--speed-factors",
        default=d.speed_factors,
        metavar="LIST|SPEC",
        help="per-worker time multipliers: '1,1,2.5' or a SPEC to draw them from (default: all 1)",
    )
    p.add_argument(
        "--comm-latency", type=float, default=d.comm_latency, metavar="SECONDS", help="fixed cost of each pull and push"
    )
    p.add_argument(
        "--bandwidth", type=float, default=d.bandwidth, metavar="BYTES/S", help="link bandwidth (default: inf)"
    )
    p.add_argument(
        "--param-bytes",
        type=float,
        default=None,
        metavar="BYTES",
        help="bytes per pull and per push (default: the model's size when training, else 0)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None if replay else d.steps,
        metavar="K",
        help="parameter updates to simulate (default: " + ("until the trace is used up)" if replay else f"{d.steps})"),
    )
    if not sweep:
        p.add_argument("--seed", type=int, default=d.seed, help="run seed (default: 0)")
    p.add_argument("--timing-only", action="store_true", help="simulate timing only, compute no gradients")
    p.add_argument(
        "--log-gradients",
        default=d.log_gradients,
        metavar="all|none",
        help="write gradients.csv (all) or not (none: barrier runs then take the vectorised fast path)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the results")
    p.add_argument("--overwrite", action="store_true", help="replace results already in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no printed summary")
    if not sweep:
        p.add_argument(
            "--config",
            type=Path,
            default=None,
            metavar="run.toml",
            help="read the options from a TOML file (the keys of config.toml); flags override it",
        )
    t = p.add_argument_group("training (without --timing-only)")
    t.add_argument("--model", default=d.model, help=f"{', '.join(MODELS)} (default: {d.model})")
    t.add_argument("--dataset", default=d.dataset, help=f"{', '.join(DATASETS)} (default: {d.dataset})")
    t.add_argument(
        "--data-path", default=d.data_path, metavar="PATH", help="files of mnist (.npz or IDX folder) or cifar10"
    )
    t.add_argument(
        "--dataset-size", type=int, default=d.dataset_size, metavar="N", help="examples of mnist1d / teacher-student"
    )
    t.add_argument(
        "--data-partition",
        default=d.data_partition,
        help="shared (i.i.d. sampling), sharded or by-work (default: shared)",
    )
    t.add_argument(
        "--batch-size", type=int, default=d.batch_size, metavar="n", help=f"per worker (default: {d.batch_size})"
    )
    t.add_argument("--hidden", default=d.hidden, metavar="WIDTHS", help=f"mlp hidden widths (default: {d.hidden})")
    t.add_argument("--optimizer", default=d.optimizer, help=f"{', '.join(OPTIMIZERS)} (default: {d.optimizer})")
    t.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default: {d.lr})")
    t.add_argument(
        "--momentum", type=float, default=d.momentum, help=f"for --optimizer momentum (default: {d.momentum})"
    )
    t.add_argument(
        "--lr-schedule", default=d.lr_schedule, metavar="NAME", help="constant or exponential (default: constant)"
    )
    t.add_argument(
        "--lr-decay-rate", type=float, default=d.lr_decay_rate, metavar="R", help=f"(default: {d.lr_decay_rate})"
    )
    t.add_argument(
        "--lr-decay-steps",
        type=int,
        default=d.lr_decay_steps,
        metavar="K",
        help=f"updates per decay (default: {d.lr_decay_steps})",
    )
    t.add_argument(
        "--lr-scaling",
        default=d.lr_scaling,
        metavar="RULE",
        help="none, linear or sqrt in gradients per update (default: none)",
    )
    t.add_argument(
        "--eval-every", default=d.eval_every, metavar="K|Ts", help="updates (50), simulated seconds (10s) or auto"
    )
    t.add_argument(
        "--target-accuracy", type=float, default=None, metavar="FRACTION", help="test accuracy that ends the run"
    )
    t.add_argument("--target-loss", type=float, default=None, metavar="LOSS", help="test loss that ends the run")
    t.add_argument("--stop-at-target", action=argparse.BooleanOptionalAction, default=True, help="stop when reached")
    t.add_argument("--gradient-quality", action="store_true", help="compare each update with a large-batch gradient")
    if not sweep:  # checkpoints belong to single runs; a sweep resumes run by run
        t.add_argument(
            "--checkpoint-every",
            default="",
            metavar="K",
            help="save a checkpoint to DIR.checkpoint every K updates (a multiple of --eval-every)",
        )
        t.add_argument(
            "--resume",
            type=Path,
            default=None,
            metavar="CHECKPOINT",
            help="continue a run from its checkpoint folder (its configuration; --out says where)",
        )
    t.add_argument(
        "--reference-batch", type=int, default=d.reference_batch, metavar="n", help="examples of that gradient"
    )


def add_trace_options(p: argparse.ArgumentParser, what: str = "of TRACE") -> None:
    p.add_argument(
        "--format",
        dest="trace_format",
        default="csv",
        metavar="F",
        help=f"layout {what}: csv (worker,step,duration[,start]), pai, chrome (default: csv)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="seconds per unit of the trace's times (PAI times are normalised; default: 1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stragglersim", description="Discrete-event simulation of distributed SGD with stragglers.")
    parser.add_argument("--version", action="version", version=f"stragglersim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sim = sub.add_parser(
        "simulate", help="simulate one run", description="Simulate one run and write its results to --out."
    )
    add_run_options(sim)
    sim.set_defaults(func=cmd_simulate)

    rep = sub.add_parser(
        "replay",
        help="replay a measured trace exactly",
        description="Simulate a run whose worker w's i-th computation takes w's i-th recorded duration.",
    )
    rep.add_argument("trace", type=Path, metavar="TRACE")
    add_trace_options(rep)
    add_run_options(rep, replay=True)
    rep.set_defaults(func=cmd_replay)

    imp = sub.add_parser(
        "import",
        help="convert a trace to the canonical CSV",
        description="Convert traces (PAI CSV, Chrome trace JSON) to worker,step,duration[,start].",
    )
    imp.add_argument(
        "sources", type=Path, nargs="+", metavar="SRC", help="trace files (several for chrome: one worker each)"
    )
    add_trace_options(imp)
    imp.add_argument("--out", type=Path, required=True, metavar="trace.csv")
    imp.add_argument("--overwrite", action="store_true")
    imp.set_defaults(func=cmd_import)

    fit = sub.add_parser(
        "fit",
        help="fit latency families to a trace",
        description="Maximum-likelihood fits ranked by AIC; writes fit.json and fit.png/pdf to --out.",
    )
    fit.add_argument("trace", type=Path, metavar="TRACE")
    add_trace_options(fit)
    fit.add_argument("--out", type=Path, required=True, metavar="DIR")
    fit.add_argument("--overwrite", action="store_true")
    fit.set_defaults(func=cmd_fit)

    mea = sub.add_parser(
        "measure",
        help="measure a trace with real JAX workers on this machine",
        description="Start K processes that run real gradient steps at once; record every step.",
    )
    mea.add_argument("--workers", type=int, required=True, metavar="K")
    mea.add_argument("--steps", type=int, required=True, metavar="S")
    mea.add_argument("--model", default="mlp", help=f"{', '.join(m for m in MODELS if m != 'pixelcnn')} or pixelcnn")
    mea.add_argument("--dataset", default="digits")
    mea.add_argument("--batch-size", type=int, default=32)
    mea.add_argument("--out", type=Path, required=True, metavar="trace.csv")
    mea.add_argument("--overwrite", action="store_true")
    mea.set_defaults(func=cmd_measure)

    val = sub.add_parser(
        "validate",
        help="is the fitted model of a trace good enough for a configuration?",
        description="Compare iteration times of exact replay with a simulation of the fitted model.",
    )
    val.add_argument("trace", type=Path, metavar="TRACE")
    add_trace_options(val)
    val.add_argument("--workers", type=int, required=True, metavar="N")
    val.add_argument("--backups", type=int, default=0, metavar="B")
    val.add_argument("--semantics", default="tf", help=f"{', '.join(SEMANTICS)} (default: tf)")
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--out", type=Path, default=None, metavar="DIR", help="also write validate.json here")
    val.add_argument("--overwrite", action="store_true")
    val.set_defaults(func=cmd_validate)
    swp = sub.add_parser(
        "sweep",
        help="run every combination of strategies, workers, backups and seeds",
        description="One run per combination in parallel processes, or on a Dask cluster with --scheduler; "
        "DIR/runs/NAME/ each, plus DIR/results.csv. Complete runs are skipped, so an interrupted sweep resumes.",
    )
    add_run_options(swp, sweep=True)
    swp.set_defaults(func=cmd_sweep)

    rep = sub.add_parser(
        "reproduce",
        help="run the paper's study and draw every figure",
        description="Experiments on the shipped trace and bundled data; figures, data and report.md.",
    )
    rep.add_argument("--quick", action="store_true", help="small experiments (about 2 minutes)")
    rep.add_argument("--out", type=Path, default=Path("figures"), metavar="DIR", help="default: figures/")
    rep.add_argument("--jobs", type=int, default=None, metavar="J", help="parallel processes (default: CPU count)")
    rep.set_defaults(func=cmd_reproduce)

    tl = sub.add_parser("timeline", help="export a run's timeline as Chrome trace JSON (Perfetto opens it)")
    tl.add_argument("run", type=Path, metavar="RUN_DIR")
    tl.add_argument("--out", type=Path, required=True, metavar="trace.json")
    tl.add_argument("--updates", type=int, default=None, metavar="K", help="only the first K updates")
    tl.add_argument("--overwrite", action="store_true")
    tl.set_defaults(func=cmd_timeline)

    plo = sub.add_parser(
        "plot",
        help="figures of run or sweep folders",
        description="A run folder gets its timeline (and accuracy curve); a sweep folder its "
        "iteration time against backups.",
    )
    plo.add_argument("dirs", type=Path, nargs="+", metavar="DIR")
    plo.add_argument("--out", type=Path, required=True, metavar="DIR")
    plo.set_defaults(func=cmd_plot)

    pre = sub.add_parser(
        "predict",
        help="predicted iteration time for each number of backups (order statistics)",
        description="E and std of X_{N:N+B}, the N-th fastest of N+B i.i.d. computations "
        "(backup workers with cancellation).",
    )
    pre.add_argument("--latency", required=True, metavar="SPEC")
    add_trace_options(pre, what="of a trace:/empirical: latency file")
    pre.add_argument("--workers", type=int, required=True, metavar="N")
    pre.add_argument("--backups", default="0", metavar="B,B,...|A-B", help="backup counts: 0,1,2 or 0-8")
    pre.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    pre.set_defaults(func=cmd_predict)

    cmp = sub.add_parser(
        "compare-backups",
        help="adaptive-backup against every fixed number of backups",
        description="Time per unit of progress of K-sync for B = 0..P-1 and of adaptive-backup, "
        "on the same latency draws; writes compare.json and compare.png/pdf.",
    )
    d = RunConfig()
    cmp.add_argument("--workers", type=int, required=True, metavar="P")
    cmp.add_argument("--latency", default=d.latency, metavar="SPEC")
    add_trace_options(cmp, what="of a trace:/empirical: latency file")
    cmp.add_argument("--steps", type=int, default=1000, metavar="K")
    cmp.add_argument("--seed", type=int, default=0)
    cmp.add_argument("--batch-size", type=int, default=d.batch_size, metavar="n")
    cmp.add_argument("--noise-scale", type=float, default=None, metavar="EXAMPLES", help="default: P x batch size")
    cmp.add_argument("--adapt-every", type=int, default=d.adapt_every, metavar="K")
    cmp.add_argument("--out", type=Path, required=True, metavar="DIR")
    cmp.add_argument("--overwrite", action="store_true")
    cmp.set_defaults(func=cmd_compare_backups)
    return parser


def parse_int_list(text: str, option: str) -> list[int]:
    """``0,1,2`` or ``0-8`` (inclusive) or a mix: ``0-3,6``."""
    values: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, dash, hi = part.partition("-")
            values.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    except ValueError:
        raise InputError(f"{option} {text!r}: expected integers like 0,1,2 or a range 0-8") from None
    if not values:
        raise InputError(f"{option} {text!r}: no values")
    return values


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from .latency import parse_latency
    from .theory import predict_backups

    backups = list(dict.fromkeys(parse_int_list(args.backups, "--backups")))  # each B once, in order
    if args.workers < 1 or min(backups) < 0:
        raise InputError("--workers must be >= 1 and --backups >= 0")
    model = parse_latency(args.latency, trace_format=args.trace_format, time_scale=args.time_scale)
    rows = predict_backups(model, args.workers, backups)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"N={args.workers}, latency {args.latency}: iteration time of N of N+B with cancellation")
    print(f"  {'B':>4}{'mean (s)':>14}{'std (s)':>14}")
    for r in rows:
        cells = [_moment_cell(r[f"{m}_iteration_time"], r[f"{m}_finite"]) for m in ("mean", "std")]
        print(f"  {r['backups']:>4}{cells[0]:>14}{cells[1]:>14}")
    for r in rows:
        for note in r["notes"]:
            print(f"  B={r['backups']}: {note}")
    return 0


def _moment_cell(value: float | None, finite: bool) -> str:
    """A predicted moment as printed: the number, ``inf``, or ``n/a`` (finite, beyond double precision)."""
    if value is not None:
        return f"{value:.6g}"
    return "n/a" if finite else "inf"


def cmd_compare_backups(args: argparse.Namespace) -> int:
    from .adaptive import compare_with_fixed
    from .plots import plot_adaptive
    from .results import check_out_dir, staged_dir, write_json

    config = RunConfig(
        strategy="adaptive-backup",
        workers=args.workers,
        latency=args.latency,
        trace_format=args.trace_format,
        time_scale=args.time_scale,
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        noise_scale=args.noise_scale,
        adapt_every=args.adapt_every,
        timing_only=True,
    ).validate()
    check_out_dir(args.out, overwrite=args.overwrite)
    report = compare_with_fixed(config)
    with staged_dir(args.out, overwrite=args.overwrite) as tmp:
        write_json(tmp / "compare.json", report)
        plot_adaptive(report, tmp / "compare")
    print(f"P={args.workers}, latency {args.latency}: seconds per unit of progress")
    best, zero = report["best_fixed"], report["fixed"]["0"]
    print(f"  best fixed B = {report['best_fixed_backups']}: {best:.6g}; B = 0: {zero:.6g}")
    print(f"  adaptive-backup: {report['adaptive']:.6g} ({report['adaptive_vs_best']:.3f}x the best fixed B)")
    print(f"  results: {args.out / 'compare.json'}, {args.out / 'compare.png'}")
    return 0


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Every RunConfig field comes from the option of the same name."""
    return RunConfig(**{f.name: getattr(args, f.name) for f in fields(RunConfig)}).validate()


def cmd_simulate(args: argparse.Namespace) -> int:
    from .progress import NullProgress, progress_bar
    from .results import check_out_dir, write_run
    from .runner import execute

    resume = getattr(args, "resume", None)
    if resume is not None:
        from .checkpoint import load_config

        config = load_config(resume).validate()
    else:
        config = config_from_args(args)
    check_out_dir(args.out, overwrite=args.overwrite)
    bar = progress_bar(config.steps, desc=f"{config.strategy} N={config.workers} B={config.backups}", quiet=args.quiet)
    try:
        checkpoints = Path(f"{args.out}.checkpoint")
        result = execute(config, progress=bar, checkpoints=checkpoints, resume=resume)
    finally:
        bar.close()
    log = result.log
    if not isinstance(bar, NullProgress) and len(log.gradients) > 200_000:
        print(f"writing {len(log.gradients)} gradient records to {args.out} ...", file=sys.stderr)
    write_run(args.out, result.config, log, result.summary, tables=result.tables, overwrite=args.overwrite)
    if checkpoints.exists() and checkpoints != resume:
        shutil.rmtree(checkpoints)  # the run is complete
    if not args.quiet:
        print(describe(result.summary, args.out))
    if result.summary.get("diverged"):
        print(f"stragglersim {args.command}: diverged: {result.summary['diverged']} ({args.out})", file=sys.stderr)
        return 1
    if log.stalled:
        print(f"stragglersim {args.command}: stalled: {log.stalled} (results so far in {args.out})", file=sys.stderr)
        return 1
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .progress import RunCounter
    from .sweep import grid, run_sweep

    strategies = [s.strip() for s in args.strategy.split(",") if s.strip()]
    workers = parse_int_list(args.workers, "--workers")
    backups = parse_int_list(args.backups, "--backups")
    seeds = parse_int_list(args.seeds, "--seeds")
    values = {**vars(args), "strategy": strategies[0], "workers": workers[0], "backups": 0, "seed": seeds[0]}
    base = RunConfig(**{f.name: values[f.name] for f in fields(RunConfig) if f.name in values})  # the rest: defaults
    if args.total_workers is not None and min(workers) > args.total_workers:
        raise InputError(f"--total-workers {args.total_workers}: smaller than --workers")
    configs = grid(
        base, strategies=strategies, workers=workers, backups=backups, seeds=seeds, total_workers=args.total_workers
    )
    if not configs:
        raise InputError("the sweep is empty: only --strategy backup takes --backups > 0")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out}: exists and is not a directory")
    counter = RunCounter(quiet=args.quiet)
    try:
        summaries = run_sweep(
            configs,
            args.out,
            jobs=args.jobs,
            scheduler=args.scheduler,
            counter=counter,
            log=lambda message: args.quiet or print(message, file=sys.stderr),
        )
    finally:
        counter.close()
    if not args.quiet:
        print(f"{len(summaries)} runs; results: {args.out / 'results.csv'}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce

    args.out.mkdir(parents=True, exist_ok=True)
    report = reproduce(args.out, quick=args.quick, jobs=args.jobs, log=lambda m: print(m, file=sys.stderr))
    print(report.read_text())
    print(f"figures and report: {args.out}")
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from .results import check_out_file
    from .timeline import chrome_trace

    check_out_file(args.out, overwrite=args.overwrite)
    n = chrome_trace(args.run, args.out, max_updates=args.updates)
    print(f"{args.out}: {n} trace events; open it in https://ui.perfetto.dev or chrome://tracing")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from . import plots
    from .results import read_csv

    args.out.mkdir(parents=True, exist_ok=True)
    for d in args.dirs:
        if (d / "results.csv").exists():
            rows = read_csv(d / "results.csv")
            if not any(r.get("semantics") for r in rows):
                raise InputError(f"{d}: the plot of a sweep needs backup runs (iteration time against B)")
            plots.plot_sweep(d / "results.csv", args.out / f"{d.name}-iteration-time")
            print(f"{args.out / (d.name + '-iteration-time.png')}")
        elif (d / "gradients.csv").exists():
            plots.plot_gantt(d, args.out / f"{d.name}-timeline", title=f"{d}: the first updates")
            print(f"{args.out / (d.name + '-timeline.png')}")
            if (d / "metrics.csv").exists():
                plots.plot_metrics(d / "metrics.csv", args.out / f"{d.name}-accuracy")
                print(f"{args.out / (d.name + '-accuracy.png')}")
        else:
            raise InputError(f"{d}: neither a run folder (gradients.csv) nor a sweep folder (results.csv)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    args.latency = f"trace:{args.trace}"
    return cmd_simulate(args)


def cmd_import(args: argparse.Namespace) -> int:
    from .results import check_out_file
    from .traces import combine, read_trace

    check_out_file(args.out, overwrite=args.overwrite)
    trace = combine([read_trace(src, args.trace_format, args.time_scale) for src in args.sources])
    trace.write_csv(args.out)
    print(
        f"{args.out}: {trace.n_workers} workers, {len(trace.duration)} computations, "
        f"mean duration {trace.duration.mean():.6g} s"
    )
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from .fitting import fit_durations
    from .plots import plot_fit
    from .results import staged_dir, write_json
    from .traces import read_trace

    trace = read_trace(args.trace, args.trace_format, args.time_scale)
    report = {
        "trace": str(args.trace),
        "format": args.trace_format,
        "time_scale": args.time_scale,
        **fit_durations(trace.duration),
    }
    with staged_dir(args.out, overwrite=args.overwrite) as tmp:
        write_json(tmp / "fit.json", report)
        plot_fit(trace.duration, report, tmp / "fit", title=f"{args.trace}: {report['best']['spec']}")
    print(f"{args.trace}: {report['n']} durations, mean {report['mean']:.6g} s")
    for c in report["candidates"]:
        print(f"  {c['family']:<20} AIC {c['aic']:>12.1f}  KS {c['ks']:.4f}  {c['spec']}")
    tail = "the body + tail mixture wins" if report["mixture_wins"] else "no single family is beaten by the mixture"
    print(f"  best: {report['best']['spec']} ({tail})")
    print(f"  results: {args.out / 'fit.json'}, {args.out / 'fit.png'}")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from .measure import measure
    from .results import check_out_file

    if args.workers < 1 or args.steps < 1 or args.batch_size < 1:
        raise InputError("--workers, --steps and --batch-size must be integers >= 1")
    if args.model not in MODELS:
        raise InputError(f"--model: unknown model {args.model!r} (choose from {', '.join(MODELS)})")
    if args.dataset not in ("digits", "mnist1d", "teacher-student"):
        raise InputError(
            f"--dataset {args.dataset!r}: measure uses a bundled or generated dataset "
            "(digits, mnist1d, teacher-student)"
        )
    check_out_file(args.out, overwrite=args.overwrite)
    trace = measure(args.workers, args.steps, model=args.model, dataset=args.dataset, batch_size=args.batch_size)
    trace.write_csv(args.out)
    per = [d.mean() for d in trace.per_worker()]
    print(
        f"{args.out}: {args.workers} workers x {args.steps} steps of {args.model} on {args.dataset}; "
        f"mean step {trace.duration.mean() * 1e3:.3f} ms (per worker {min(per) * 1e3:.3f}-{max(per) * 1e3:.3f} ms), "
        f"max {trace.duration.max() * 1e3:.3f} ms"
    )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .results import staged_dir, write_json
    from .validation import validate_trace

    config = RunConfig(
        strategy="backup",
        workers=args.workers,
        backups=args.backups,
        semantics=args.semantics,
        latency=f"trace:{args.trace}",
        trace_format=args.trace_format,
        time_scale=args.time_scale,
        steps=None,
        seed=args.seed,
        timing_only=True,
    ).validate()
    report = validate_trace(config)
    if args.out is not None:
        with staged_dir(args.out, overwrite=args.overwrite) as tmp:
            write_json(tmp / "validate.json", report)
    print(f"{args.trace}: backup N={args.workers} B={args.backups} ({args.semantics}); fitted {report['fitted_spec']}")
    print(f"  {'quantile':<10}{'replay (s)':>14}{'model (s)':>14}")
    for q, a, b in zip(report["quantiles"], report["replay_quantiles"], report["model_quantiles"], strict=True):
        print(f"  {q:<10g}{a:>14.6g}{b:>14.6g}")
    print(
        f"  mean iteration time: replay {report['replay_mean']:.6g} s, model {report['model_mean']:.6g} s "
        f"({report['mean_relative_error']:+.1%}); KS distance {report['ks']:.3f}"
    )
    verdict = "good enough" if report["good_enough"] else "NOT good enough"
    print(f"  verdict: the fitted model is {verdict} for this configuration ({report['criterion']})")
    return 0


def describe(s: dict, out: Path) -> str:
    """A short human-readable account of a run's summary."""
    head = f"{s['strategy']} N={s['workers']} B={s['backups']}"
    head += f" ({s['semantics']})" if s["semantics"] else ""
    head += f" staleness<={s['staleness_cutoff']}" if s["staleness_cutoff"] is not None else ""
    lines = [
        f"{head}, latency {s['latency']}, seed {s['seed']}",
        f"  {s['updates']} updates in {s['sim_time']:.6g} s simulated: "
        f"mean iteration time {s['mean_iteration_time']:.6g} s",
        f"  gradients: {s['gradients_computed']} computed, {s['gradients_applied']} applied, "
        f"{s['gradients_dropped']} dropped, {s['gradients_cancelled']} cancelled, {s['gradients_failed']} failed; "
        f"{s['repeat_contributions']} repeat contributions",
    ]
    if s.get("trace_exhausted"):
        lines.append("  the trace was used up: the run ended there")
    if s["mean_staleness"] is not None and s["strategy"] == "async":
        lines.append(f"  staleness: mean {s['mean_staleness']:.4g}, max {s['max_staleness']}")
    if "model" in s:
        accuracy = f", test accuracy {s['final_test_accuracy']:.4f}" if s["final_test_accuracy"] is not None else ""
        lines.append(
            f"  {s['model']} on {s['dataset']} ({s['device']}): test loss {s['final_test_loss']:.4g}{accuracy}"
        )
        if isinstance(s.get("gradients_per_update"), float):  # a varying count (deadline, adaptive-backup)
            lines.append(
                f"  gradients averaged per update: mean {s['gradients_per_update']:.4g} "
                f"(effective batch {s['effective_batch_size']:.4g} examples)"
            )
        if s["target_accuracy"] is not None or s["target_loss"] is not None:
            reached = (
                f"reached after {s['updates_to_target']} updates, {s['time_to_target']:.6g} s simulated"
                if s["time_to_target"] is not None
                else "not reached"
            )
            lines.append(f"  target: {reached}")
    lines.append(f"  results: {out / 'summary.json'}")
    return "\n".join(lines)


def _config_defaults(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """With ``--config FILE``, the file's values become the command's defaults, so flags win."""
    if "--config" not in argv or not argv or argv[0] not in ("simulate", "replay"):
        return
    at = argv.index("--config")
    if at + 1 >= len(argv):
        return  # argparse reports the missing value
    values = RunConfig.load(Path(argv[at + 1])).to_dict()
    if argv[0] == "replay":
        values.pop("latency", None)
    command = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command.choices[argv[0]].set_defaults(**values)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        _config_defaults(parser, argv)
    except InputError as err:
        print(f"stragglersim: error: {err}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as err:
        print(f"stragglersim {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RunsFailed as err:
        print(f"stragglersim {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = "complete runs are kept; the same command resumes" if args.command == "sweep" else "nothing was written"
        print(f"stragglersim {args.command}: interrupted; {kept}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

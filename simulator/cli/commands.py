"""The commands: each parses nothing, calls the library and prints what it returns.

``cli.py`` builds the parser from these functions (a command's help is its docstring's first line,
its description the rest) and turns errors into exit statuses.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

from ..core.config import RunConfig
from ..io.errors import InputError
from ..io.outcome import Outcome
from ..io.progress import RunCounter, progress_bar
from ..studies.grids import grid_from_options, parse_int_list
from .options import config_from_namespace, given_options, worded


def cmd_simulate(args: argparse.Namespace) -> int:
    """simulate one run

    Simulate one run; write its results to --out.
    """
    from ..studies.reports import describe_run  # here, not at import: the CLI starts without SciPy
    from ..training.runner import run_to_folder  # here, not at import: the CLI starts without SciPy

    if args.resume is not None:
        from ..training.checkpoint import resume_config  # imports JAX: only when resuming a training run

        config = resume_config(args.resume, given_options(args))
    else:
        config = config_from_namespace(args)
    bar = progress_bar(config.steps, desc=f"{config.strategy} N={config.workers} B={config.backups}", quiet=args.quiet)
    reads = [args.config] if args.config is not None else []
    result = run_to_folder(config, args.out, overwrite=args.overwrite, progress=bar, resume=args.resume, reads=reads)
    if not args.quiet:
        print(describe_run(result.summary, args.out))
    if result.outcome is Outcome.DIVERGED:  # a result, not a failure: a study counts it
        print(
            f"stragglersim {args.command}: diverged: {result.summary['diverged_reason']} ({args.out})", file=sys.stderr
        )
    if result.outcome is Outcome.STALLED:
        print(
            f"stragglersim {args.command}: stalled: {result.log.stalled} (results so far in {args.out})",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """replay a measured trace exactly

    Simulate a run whose worker w's i-th computation takes w's i-th recorded duration.
    """
    if args.resume is not None:
        raise InputError("--resume: resume a replay with simulate --resume CHECKPOINT (it holds the trace)")
    args.latency = f"trace:{args.trace}"
    with _named_as_positional(args.trace):
        return cmd_simulate(args)


@contextmanager
def _named_as_positional(trace):
    """Errors about the latency ``trace:PATH`` a command made from its TRACE argument name TRACE."""
    try:
        yield
    except InputError as err:
        given = f"--latency trace:{trace}"
        said = worded(err)
        if not said.startswith(given):
            raise
        raise InputError(f"TRACE {trace}{said[len(given) :]}") from None


def cmd_sweep(args: argparse.Namespace) -> int:
    """run every combination of a grid of options (any option: a list of values)

    One run per combination in parallel processes, or on a Dask cluster with --scheduler: DIR/runs/NAME/ each,
    DIR/results.csv (one row per run), DIR/aggregate.csv (one row per configuration: mean, std and 95%
    Student-t interval across seeds) and DIR/grid.toml (the grid). Complete runs are skipped, so an
    interrupted sweep resumes; a folder of another grid is refused unless --extend or --overwrite.
    """
    from ..studies.sweeps import run_sweep  # here, not at import: the CLI starts without SciPy

    grid = grid_from_options(vars(args), args.grid)
    counter = RunCounter(quiet=args.quiet)
    try:
        summaries = run_sweep(
            grid,
            args.out,
            jobs=args.jobs,
            scheduler=args.scheduler,
            counter=counter,
            log=lambda message: args.quiet or print(message, file=sys.stderr),
            extend=args.extend,
            overwrite=args.overwrite,
        )
    finally:
        counter.close()
    if not args.quiet:
        print(f"{len(summaries)} runs; results: {args.out / 'results.csv'}, over seeds: {args.out / 'aggregate.csv'}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """each configuration's best value of some options, chosen on a validation split, reported on the test set

    Every configuration of the grid (the sweep's options, seeds aside) runs every candidate of the --tune
    options (crossed) on every seed, training on all but --validation-split of the training set (default
    0.1) and evaluating on the rest: DIR/candidates/. The candidate with the best mean over seeds of
    --select-by wins and runs again on the whole training set, evaluated on the test set: DIR/final/ (compare
    and plot read it when given DIR). DIR/tuned.csv: one row per configuration (the winner, every candidate's
    mean, diverged seeds, at_edge); DIR/tune.toml records the tuning. The same command resumes it.
    """
    from ..studies.tuning import Tuning, describe, tune  # here, not at import: the CLI starts without SciPy

    if args.extend:
        raise InputError("--extend: a tuning takes no other runs; tune into another --out")
    tuning = Tuning.parse(args.tune, args.select_by, args.validation_split)
    grid = grid_from_options({**vars(args), "validation_split": None}, args.grid)
    rows = tune(
        grid,
        args.out,
        tuning,
        jobs=args.jobs,
        scheduler=args.scheduler,
        quiet=args.quiet,
        log=lambda message: args.quiet or print(message, file=sys.stderr),
        warn=lambda message: print(f"stragglersim tune: warning: {message}", file=sys.stderr),
        overwrite=args.overwrite,
    )
    if not args.quiet:
        print(describe(rows, tuning, args.out))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """predicted iteration time for each number of backups (order statistics)

    E and std of X_{N:N+B}, the N-th fastest of N+B i.i.d. computations (backup workers with cancellation).
    """
    from ..studies.reports import predict, to_json  # here, not at import: the CLI starts without SciPy

    backups = parse_int_list(args.backups, "--backups")
    report = predict(args.latency, args.workers, backups, trace_format=args.trace_format, time_scale=args.time_scale)
    print(to_json(report) if args.json else report.text())
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """fit latency families to a trace

    Maximum-likelihood fits ranked by AIC; writes fit.json and fit.png/pdf to --out.
    """
    from ..studies.reports import fit  # here, not at import: the CLI starts without SciPy

    report = fit(args.trace, trace_format=args.trace_format, time_scale=args.time_scale, out=args.out)
    report.save(args.out, overwrite=args.overwrite, inputs=[args.trace])
    print(report.text())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """is the fitted model of a trace good enough for a configuration?

    Compare iteration times of exact replay with a simulation of the fitted model.
    """
    from ..studies.reports import validate  # here, not at import: the CLI starts without SciPy

    trace = {"trace_format": args.trace_format, "time_scale": args.time_scale}
    with _named_as_positional(args.trace):
        report = validate(args.trace, args.workers, args.backups, args.semantics, seed=args.seed, **trace)
    if args.out is not None:
        report.save(args.out, overwrite=args.overwrite, inputs=[args.trace])
    print(report.text())
    return 0


def cmd_compare_backups(args: argparse.Namespace) -> int:
    """adaptive-backup against every fixed number of backups

    Time per unit of progress of K-sync for B = 0..P-1 and of adaptive-backup, on the same latency draws;
    writes compare.json and compare.png/pdf.
    """
    from ..core.assemble import input_files  # here, not at import: the CLI starts without SciPy
    from ..io.results import check_out_dir  # here, not at import: the CLI starts without io.results (13 ms)
    from ..studies.compare_backups import subject  # here, not at import: the CLI starts without SciPy
    from ..studies.reports import compare_backups  # here, not at import: the CLI starts without SciPy

    names = ("workers", "latency", "trace_format", "time_scale", "steps", "seed", "batch_size", "noise_scale")
    options = {name: getattr(args, name) for name in (*names, "adapt_every")}  # the adaptive-backup run
    config = RunConfig(strategy=subject().name, timing_only=True, **options).validate()
    check_out_dir(args.out, overwrite=args.overwrite, inputs=input_files(config))
    report = compare_backups(config, out=args.out)
    report.save(args.out, overwrite=args.overwrite, inputs=input_files(config))
    print(report.text())
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    """measure a trace with real JAX workers on this machine

    Start --workers processes that run --steps real gradient steps each, at once; record every step.
    """
    from ..io.results import check_out_file  # here, not at import: the CLI starts without io.results (13 ms)
    from ..studies.reports import measure  # here, not at import: the CLI starts without SciPy

    check_out_file(args.out, overwrite=args.overwrite)
    trace, report = measure(
        args.workers, args.steps, model=args.model, dataset=args.dataset, batch_size=args.batch_size
    )
    trace.write_csv(args.out)
    print(f"{args.out}: {report.text()}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """convert a trace to the canonical CSV

    Convert traces (PAI CSV, Chrome trace JSON) to worker,step,duration[,start].
    """
    from ..io.results import check_out_file  # here, not at import: the CLI starts without io.results (13 ms)
    from ..studies.reports import import_trace  # here, not at import: the CLI starts without SciPy

    check_out_file(args.out, overwrite=args.overwrite, inputs=args.sources)
    trace, report = import_trace(args.sources, trace_format=args.trace_format, time_scale=args.time_scale)
    trace.write_csv(args.out)
    print(f"{args.out}: {report.text()}")
    return 0


def cmd_whatif(args: argparse.Namespace) -> int:
    """what-if analysis of a hybrid-parallel (DP x PP x TP) op-level trace

    Replay the trace's ops with a dependency model, compare with an ideal replay in which no op
    straggles, attribute the slowdown to op types, DP ranks, stages and workers (M_S, M_W), and
    replay it with B = 0 .. dp_size-1 backup replicas on the data-parallel dimension. Writes
    whatif.json, replicas.csv (a canonical trace of the DP replicas), figures and Perfetto
    timelines to --out.
    """
    from ..llm.report import run_whatif  # here, not at import: the CLI starts without pandas

    print(run_whatif(args.trace, args.meta, args.out, overwrite=args.overwrite, quiet=args.quiet))
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    """predict a job's stragglers at 10x-100x its size from its op-level trace

    Fit a generative model of the trace's op durations (per op type and stage: a persistent factor per
    worker, per-step transients and noise; communication drawn from the measured transfer times), draw
    --draws synthetic jobs at each DP size, replay each as whatif does (no-delay and ideal), and compare
    mitigations: B backup replicas and replacing the slowest 1% of workers. Writes scale.json (per size:
    GPUs, step time, S with its interval over the draws, M_S, M_W, the mitigations; the fit with its
    intervals and goodness of fit), fit.csv (the fit, a row per op type and stage) and scale.png and .pdf
    to --out.
    """
    from ..llm.scale.report import run_scale  # here, not at import: the CLI starts without pandas
    from ..llm.scale.study import ScaleConfig  # here, not at import: as run_scale

    dp = tuple(parse_int_list(args.dp, "--dp"))
    ranks = None
    if args.fit_ranks is not None:
        text = args.fit_ranks
        if not text.startswith("dp="):
            raise InputError(f"--fit-ranks {text!r}: expected dp=RANKS, e.g. dp=0-7 or dp=0,2,4")
        rest = text.removeprefix("dp=")
        try:
            ranks = tuple(parse_int_list(rest, "--fit-ranks"))
        except InputError as err:  # name the option's whole value, as given
            raise InputError(str(err).replace(f"--fit-ranks {rest!r}", f"--fit-ranks {text!r}", 1)) from None
    config = ScaleConfig(
        dp=dp,
        pp=args.pp,
        microbatches=args.microbatches,
        steps=args.steps,
        draws=args.draws,
        seed=args.seed,
        backups=args.backups,
        drop_share=args.drop_share,
        fit_ranks=ranks,
    )
    print(run_scale(args.trace, args.meta, args.out, config, overwrite=args.overwrite, quiet=args.quiet))
    return 0


def cmd_import_ops(args: argparse.Namespace) -> int:
    """convert per-rank PyTorch profiler traces to the op-level table

    Read one Chrome trace JSON per rank (.json or .json.gz; or a folder of them): a plain PyTorch job on the
    CPU (DDP, FSDP, explicit collectives, send/recv; gloo), read as the profiler wrote it, or a Megatron-style
    DP x PP x TP job (the timers' ranges, NCCL kernels). A rank is its distributedInfo.rank (or the number in
    its file name), placed as rank = tp_rank + tp x (cp_rank + cp x (dp_rank + dp x stage)). Write one row
    per op of one rank per (DP rank, stage): parquet for a .parquet --out, else CSV; and the job's sizes to
    meta-NAME.yaml beside it (NAME: --out's stem without a leading trace-), where whatif looks for them.
    """
    from ..llm.profile_write import import_ops  # here, not at import: the CLI starts without pandas

    sizes = {"dp_size": args.dp, "pp_size": args.pp, "tp_size": args.tp, "cp_size": args.cp}
    options = {"step_range": args.step_range, "trust_clocks": args.trust_clocks}
    print(import_ops(args.sources, args.out, **sizes, **options, overwrite=args.overwrite))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """run the paper's study and draw every figure

    Experiments on the shipped trace and bundled data; figures, data and report.md.
    """
    from ..studies.reproduce import reproduce  # here, not at import: the CLI starts without JAX

    report = reproduce(
        args.out,
        quick=args.quick,
        only=args.only,
        jobs=args.jobs,
        overwrite=args.overwrite,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(report.read_text())
    print(f"figures and report: {args.out}")
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    """export a run's timeline as Chrome trace JSON (Perfetto opens it)

    One track per worker with one span per computation (from start to end, named by its fate) and the
    updates as instants on the parameter server's track, read from RUN_DIR's gradients.csv and updates.csv;
    --updates keeps a window of a long run.
    """
    from ..io.results import check_out_file  # here, not at import: the CLI starts without io.results (13 ms)
    from ..io.timeline import (  # here, not at import: the CLI starts without io.timeline (4 ms)
        chrome_trace,
        parse_window,
    )

    window = None if args.updates is None else parse_window(args.updates)
    check_out_file(args.out, overwrite=args.overwrite, inputs=[args.run])
    n = chrome_trace(args.run, args.out, updates=window)
    print(f"{args.out}: {n} trace events; open it in https://ui.perfetto.dev or chrome://tracing")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """figures of run or sweep folders, each alone and overlaid

    A sweep folder gets its iteration time (mean over seeds, 95% t-intervals across seeds), faceted by its
    grid, and with gradient quality its trade-off frontier (quality against seconds per update); a run folder
    its iteration times, timeline and accuracy curve. Several folders are also overlaid. A tuning folder
    (stragglersim tune) is read as its final runs, DIR/final.
    """
    from ..studies.aggregation import tuned_final  # here, not at import: the CLI starts without SciPy
    from ..studies.folder_plots import plot_folders  # here, not at import: the CLI starts without Matplotlib

    for path in plot_folders([tuned_final(d) for d in args.dirs], args.out, figsize=args.figsize):
        print(path)
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    """mean, std and Student-t interval (95 percent) over seeds of each configuration of runs

    Mean, std and Student-t interval (95 percent) over seeds of each configuration of runs. A tuning
    folder (stragglersim tune) is read as its final runs, DIR/final.
    """
    from ..studies.aggregation import tuned_final  # here, not at import: the CLI starts without SciPy
    from ..studies.comparison import aggregate_folders  # here, not at import: the CLI starts without SciPy

    dirs = [tuned_final(d) for d in args.dirs]
    print(aggregate_folders(dirs, out=args.out, overwrite=args.overwrite).text())
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """configurations against a baseline, paired by seed (common random numbers)

    Configurations against a baseline, paired by seed (common random numbers). A tuning folder (stragglersim
    tune) is read as its final runs, DIR/final.
    """
    from ..studies.aggregation import tuned_final  # here, not at import: the CLI starts without SciPy
    from ..studies.comparison import compare_runs  # here, not at import: the CLI starts without SciPy

    dirs = [tuned_final(d) for d in args.dirs]
    report = compare_runs(dirs, baseline=args.baseline, metrics=args.metrics, out=args.out, figsize=args.figsize)
    if args.out is not None:
        report.save(args.out, overwrite=args.overwrite, inputs=args.dirs)
    print(report.text())
    return 0

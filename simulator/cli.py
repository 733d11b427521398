"""The command line: parse, call the library, print what it returns, choose the exit status.

The run options are generated from their declarations (``options.py``); the analyses are library
functions returning reports (``reports.py``). Every input problem ends as one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._version import __version__
from .config import RunConfig
from .errors import InputError, RunsFailed
from .options import add_output_options, add_run_options, add_trace_options, config_from_namespace
from .outcome import Outcome
from .strategies import SEMANTICS


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (and exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _command(sub, name: str, func) -> argparse.ArgumentParser:
    """A subcommand whose help is the first line of ``func``'s docstring, its description the rest."""
    help, _, description = func.__doc__.partition("\n")
    description = " ".join(description.split()) or help[:1].upper() + help[1:] + "."
    p = sub.add_parser(name, help=help, description=description)
    p.set_defaults(func=func)
    return p


def build_parser(config_defaults: dict | None = None) -> argparse.ArgumentParser:
    """The parser; ``config_defaults`` (from ``--config FILE``) replace the run options' defaults."""
    parser = _Parser(prog="stragglersim", description="Discrete-event simulation of distributed SGD with stragglers.")
    parser.add_argument("--version", action="version", version=f"stragglersim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sim = _command(sub, "simulate", cmd_simulate)
    add_run_options(sim, defaults=config_defaults)
    add_output_options(sim, single=True)

    rep = _command(sub, "replay", cmd_replay)
    rep.add_argument("trace", type=Path, metavar="TRACE")
    add_run_options(rep, replay=True, defaults=config_defaults)
    add_output_options(rep, single=True)

    imp = _command(sub, "import", cmd_import)
    imp.add_argument("sources", type=Path, nargs="+", metavar="SRC", help="trace files (for chrome: one per worker)")
    add_trace_options(imp)
    _file_out(imp, "trace.csv")

    fit = _command(sub, "fit", cmd_fit)
    fit.add_argument("trace", type=Path, metavar="TRACE")
    add_trace_options(fit)
    _file_out(fit, "DIR")

    mea = _command(sub, "measure", cmd_measure)
    own = {
        "workers": "processes to start",
        "steps": "gradient steps each",
        "dataset": "digits, mnist1d or teacher-student",
    }
    add_run_options(
        mea, only=("workers", "steps", "model", "dataset", "batch_size"), required=("workers", "steps"), helps=own
    )
    _file_out(mea, "trace.csv")

    val = _command(sub, "validate", cmd_validate)
    val.add_argument("trace", type=Path, metavar="TRACE")
    add_trace_options(val)
    add_run_options(val, only=("workers", "backups", "seed"), required=("workers",), helps={"workers": "N of N+B"})
    val.add_argument("--semantics", default="tf", help=f"{', '.join(SEMANTICS)} (default: tf)")
    val.add_argument("--out", type=Path, default=None, metavar="DIR", help="also write validate.json here")
    val.add_argument("--overwrite", action="store_true")

    swp = _command(sub, "sweep", cmd_sweep)
    add_run_options(swp, sweep=True)
    add_output_options(swp, single=False)

    rpr = _command(sub, "reproduce", cmd_reproduce)
    rpr.add_argument("--quick", action="store_true", help="small experiments (about 2 minutes)")
    rpr.add_argument("--out", type=Path, required=True, metavar="DIR", help="figures/ regenerates the committed ones")
    rpr.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty DIR (its data/ is redone; other files kept)"
    )
    rpr.add_argument("--jobs", type=int, default=None, metavar="J", help="parallel processes (default: CPU count)")

    tl = _command(sub, "timeline", cmd_timeline)
    tl.add_argument("run", type=Path, metavar="RUN_DIR")
    tl.add_argument(
        "--updates", default=None, metavar="K|A:B", help="only the first K updates, or updates A to B (inclusive)"
    )
    _file_out(tl, "trace.json")

    agg = _command(sub, "aggregate", cmd_aggregate)
    agg.add_argument("dirs", type=Path, nargs="+", metavar="DIR")
    agg.add_argument("--out", type=Path, metavar="FILE", help="default: DIR/aggregate.csv (one DIR; always replaced)")
    agg.add_argument("--overwrite", action="store_true")

    com = _command(sub, "compare", cmd_compare)
    com.add_argument("dirs", type=Path, nargs="+", metavar="DIR_OR_RUN")
    com.add_argument("--baseline", metavar="KEY=VALUE[,...]", help="the baseline point (default: the first)")
    com.add_argument("--metric", dest="metrics", action="append", metavar="M", help="repeatable (default: headline)")
    com.add_argument("--out", type=Path, metavar="DIR", help="write compare.csv and compare.png/pdf here")
    com.add_argument("--overwrite", action="store_true")

    plo = _command(sub, "plot", cmd_plot)
    plo.add_argument("dirs", type=Path, nargs="+", metavar="DIR")
    plo.add_argument("--out", type=Path, required=True, metavar="DIR")

    pre = _command(sub, "predict", cmd_predict)
    add_run_options(pre, only=("latency", "workers"), required=("latency", "workers"), helps={"workers": "N of N+B"})
    pre.add_argument("--backups", default="0", metavar="B,B,...|A-B", help="backup counts: 0,1,2 or 0-8 (default: 0)")
    pre.add_argument("--json", action="store_true", help="print a JSON list instead of a table")

    cmp = _command(sub, "compare-backups", cmd_compare_backups)
    family = ("workers", "latency", "steps", "seed", "batch_size", "noise_scale", "adapt_every")
    add_run_options(cmp, only=family, required=("workers",), helps={"workers": "P, the number of workers"})
    _file_out(cmp, "DIR")
    return parser


def _file_out(p: argparse.ArgumentParser, metavar: str) -> None:
    p.add_argument("--out", type=Path, required=True, metavar=metavar)
    p.add_argument("--overwrite", action="store_true")


def cmd_simulate(args: argparse.Namespace) -> int:
    """simulate one run

    Simulate one run; write its results to --out.
    """
    from .progress import progress_bar
    from .reports import describe_run
    from .runner import run_to_folder

    if args.resume is not None:
        from .checkpoint import load_config  # imports JAX: only when resuming a training run

        config = load_config(args.resume)
    else:
        config = config_from_namespace(args)
    bar = progress_bar(config.steps, desc=f"{config.strategy} N={config.workers} B={config.backups}", quiet=args.quiet)
    result = run_to_folder(config, args.out, overwrite=args.overwrite, progress=bar, resume=args.resume)
    if not args.quiet:
        print(describe_run(result.summary, args.out))
    failure = {
        Outcome.DIVERGED: f"diverged: {result.summary.get('diverged')} ({args.out})",
        Outcome.STALLED: f"stalled: {result.log.stalled} (results so far in {args.out})",
    }.get(result.outcome)
    if failure:
        print(f"stragglersim {args.command}: {failure}", file=sys.stderr)
        return 1
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """replay a measured trace exactly

    Simulate a run whose worker w's i-th computation takes w's i-th recorded duration.
    """
    args.latency = f"trace:{args.trace}"
    return cmd_simulate(args)


def cmd_sweep(args: argparse.Namespace) -> int:
    """run every combination of a grid of options (any option: a list of values)

    One run per combination in parallel processes, or on a Dask cluster with --scheduler: DIR/runs/NAME/ each,
    DIR/results.csv (one row per run), DIR/aggregate.csv (one row per configuration: mean, std and 95%
    Student-t interval across seeds) and DIR/grid.toml (the grid). Complete runs are skipped, so an
    interrupted sweep resumes; a folder of another grid is refused unless --extend or --overwrite.
    """
    from .grids import grid_from_options
    from .progress import RunCounter
    from .sweeps import run_sweep

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


def cmd_predict(args: argparse.Namespace) -> int:
    """predicted iteration time for each number of backups (order statistics)

    E and std of X_{N:N+B}, the N-th fastest of N+B i.i.d. computations (backup workers with cancellation).
    """
    from .reports import predict, to_json
    from .sweeps import parse_int_list

    backups = parse_int_list(args.backups, "--backups")
    report = predict(args.latency, args.workers, backups, trace_format=args.trace_format, time_scale=args.time_scale)
    print(to_json(report) if args.json else report.text())
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """fit latency families to a trace

    Maximum-likelihood fits ranked by AIC; writes fit.json and fit.png/pdf to --out.
    """
    from .reports import fit

    report = fit(args.trace, trace_format=args.trace_format, time_scale=args.time_scale, out=args.out)
    report.save(args.out, overwrite=args.overwrite)
    print(report.text())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """is the fitted model of a trace good enough for a configuration?

    Compare iteration times of exact replay with a simulation of the fitted model.
    """
    from .reports import validate

    trace = {"trace_format": args.trace_format, "time_scale": args.time_scale}
    report = validate(args.trace, args.workers, args.backups, args.semantics, seed=args.seed, **trace)
    if args.out is not None:
        report.save(args.out, overwrite=args.overwrite)
    print(report.text())
    return 0


def cmd_compare_backups(args: argparse.Namespace) -> int:
    """adaptive-backup against every fixed number of backups

    Time per unit of progress of K-sync for B = 0..P-1 and of adaptive-backup, on the same latency draws;
    writes compare.json and compare.png/pdf.
    """
    from .reports import compare_backups
    from .results import check_out_dir

    names = ("workers", "latency", "trace_format", "time_scale", "steps", "seed", "batch_size", "noise_scale")
    options = {name: getattr(args, name) for name in (*names, "adapt_every")}  # the adaptive-backup run
    config = RunConfig(strategy="adaptive-backup", timing_only=True, **options).validate()
    check_out_dir(args.out, overwrite=args.overwrite)
    report = compare_backups(config, out=args.out)
    report.save(args.out, overwrite=args.overwrite)
    print(report.text())
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    """measure a trace with real JAX workers on this machine

    Start K processes that run real gradient steps at once; record every step.
    """
    from .reports import measure
    from .results import check_out_file

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
    from .reports import import_trace
    from .results import check_out_file

    check_out_file(args.out, overwrite=args.overwrite)
    trace, report = import_trace(args.sources, trace_format=args.trace_format, time_scale=args.time_scale)
    trace.write_csv(args.out)
    print(f"{args.out}: {report.text()}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """run the paper's study and draw every figure

    Experiments on the shipped trace and bundled data; figures, data and report.md.
    """
    from .reproduce import reproduce

    report = reproduce(
        args.out, quick=args.quick, jobs=args.jobs, overwrite=args.overwrite, log=lambda m: print(m, file=sys.stderr)
    )
    print(report.read_text())
    print(f"figures and report: {args.out}")
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    """export a run's timeline as Chrome trace JSON (Perfetto opens it)"""
    from .results import check_out_file
    from .timeline import chrome_trace, parse_window

    window = None if args.updates is None else parse_window(args.updates)
    check_out_file(args.out, overwrite=args.overwrite)
    n = chrome_trace(args.run, args.out, updates=window)
    print(f"{args.out}: {n} trace events; open it in https://ui.perfetto.dev or chrome://tracing")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """figures of run or sweep folders, each alone and overlaid

    A sweep folder gets its iteration time (mean over seeds, 95% t-intervals across seeds), faceted by its
    grid; a run folder its iteration times, timeline and accuracy curve. Several folders are also overlaid.
    """
    from .folder_plots import plot_folders

    for path in plot_folders(args.dirs, args.out):
        print(path)
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    """mean, std and Student-t interval (95 percent) over seeds of each configuration of runs"""
    from .comparison import aggregate_folders

    print(aggregate_folders(args.dirs, out=args.out, overwrite=args.overwrite).text())
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """configurations against a baseline, paired by seed (common random numbers)"""
    from .comparison import compare_runs

    report = compare_runs(args.dirs, baseline=args.baseline, metrics=args.metrics, out=args.out)
    if args.out is not None:
        report.save(args.out, overwrite=args.overwrite)
    print(report.text())
    return 0


def _config_defaults(argv: list[str]) -> dict | None:
    """With ``simulate|replay ... --config FILE``, the file's values become the defaults, so flags win.
    ``--config=FILE`` and abbreviations are read as argparse reads them; a second ``--config`` is an error."""
    if not argv or argv[0] not in ("simulate", "replay"):
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, action="append", default=[])
    given = pre.parse_known_args(argv[1:])[0].config
    if len(given) > 1:
        raise InputError(f"--config given {len(given)} times ({', '.join(map(str, given))}); give one file")
    if not given:
        return None
    values = RunConfig.load(given[0]).to_dict()
    if argv[0] == "replay":
        values.pop("latency", None)
    return values


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(_config_defaults(argv))
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

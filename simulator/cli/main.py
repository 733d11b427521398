"""The command line: parse, call the library, print what it returns, choose the exit status.

The run options are generated from their declarations (``options.py``); the analyses are library
functions returning reports (``reports.py``). Every input problem ends as one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from ..core.config import RunConfig
from ..io.boundary import check_out_writable, explain
from ..io.errors import InputError, RunsFailed, Stopped
from ..io.version import __version__
from ..strategies import SEMANTICS
from . import commands
from .options import add_output_options, add_run_options, add_trace_options, worded


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (and exit status 2), and a long option is never
    guessed from a prefix (``--worker 4`` is an error, not ``--workers 4``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str):
        if message.endswith("required: command"):  # bare `stragglersim`: show what it takes
            self.print_usage(sys.stderr)
            message = "give a command (stragglersim --help lists them)"
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

    sim = _command(sub, "simulate", commands.cmd_simulate)
    add_run_options(sim, defaults=config_defaults)
    add_output_options(sim, single=True)

    rep = _command(sub, "replay", commands.cmd_replay)
    rep.add_argument("trace", type=Path, metavar="TRACE")
    add_run_options(rep, replay=True, defaults=config_defaults)
    add_output_options(rep, single=True)

    imp = _command(sub, "import", commands.cmd_import)
    imp.add_argument("sources", type=Path, nargs="+", metavar="SRC", help="trace files (for chrome: one per worker)")
    add_trace_options(imp, "of SRC")
    _file_out(imp, "trace.csv")

    ops = _command(sub, "import-ops", commands.cmd_import_ops)
    ops.add_argument(
        "sources", type=Path, nargs="+", metavar="SRC", help="Chrome trace JSON files, one per rank, or their folder"
    )
    ops.add_argument("--dp", type=int, required=True, metavar="D", help="data parallel size")
    ops.add_argument("--pp", type=int, required=True, metavar="P", help="pipeline parallel size (stages)")
    ops.add_argument("--tp", type=int, default=1, metavar="T", help="tensor parallel size (default: 1)")
    ops.add_argument("--cp", type=int, default=1, metavar="C", help="context parallel size (default: 1)")
    ops.add_argument(
        "--step-range", default=None, metavar="NAME", help="the range around each step (default: ProfilerStep#N)"
    )
    ops.add_argument(
        "--trust-clocks", action="store_true", help="accept steps that do not overlap in time across ranks (skew)"
    )
    _file_out(ops, "trace.parquet|trace.csv", kind=str)  # str: a trailing slash (a folder) is refused

    fit = _command(sub, "fit", commands.cmd_fit)
    fit.add_argument("trace", type=Path, metavar="TRACE")
    add_trace_options(fit)
    _file_out(fit, "DIR")

    mea = _command(sub, "measure", commands.cmd_measure)
    own = {
        "workers": "processes to start",
        "steps": "gradient steps each",
        "dataset": "digits, mnist1d or teacher-student",
    }
    add_run_options(
        mea, only=("workers", "steps", "model", "dataset", "batch_size"), required=("workers", "steps"), helps=own
    )
    _file_out(mea, "trace.csv")

    val = _command(sub, "validate", commands.cmd_validate)
    val.add_argument("trace", type=Path, metavar="TRACE")
    add_trace_options(val)
    add_run_options(val, only=("workers", "backups", "seed"), required=("workers",), helps={"workers": "N of N+B"})
    val.add_argument("--semantics", default="tf", help=f"{', '.join(SEMANTICS)} (default: tf)")
    val.add_argument("--out", type=Path, default=None, metavar="DIR", help="also write validate.json here")
    val.add_argument("--overwrite", action="store_true", help="replace validate.json in DIR")

    swp = _command(sub, "sweep", commands.cmd_sweep)
    add_run_options(swp, sweep=True)
    add_output_options(swp, single=False)

    tun = _command(sub, "tune", commands.cmd_tune)
    tun.add_argument(
        "--tune",
        action="append",
        required=True,
        metavar="OPTION=V,V,...",
        help="an option to tune and its candidates, e.g. lr=0.01,0.1,1; repeat it for several (crossed)",
    )
    tun.add_argument(
        "--select-by",
        default="accuracy_at_budget",
        metavar="METRIC",
        help="time_to_target (needs --target-accuracy or --target-loss), accuracy_at_budget or loss_at_budget, "
        "on the validation split (default: accuracy_at_budget)",
    )
    add_run_options(tun, sweep=True)
    add_output_options(tun, single=False)

    rpr = _command(sub, "reproduce", commands.cmd_reproduce)
    rpr.add_argument("--quick", action="store_true", help="every figure at toy scale (under 3 minutes)")
    rpr.add_argument(
        "--only",
        default=None,
        metavar="STUDY",
        help="one study: paper (the paper's experiments), staleness-depth (C1), sync-vs-async (C2 and its "
        "mechanisms) or tradeoff-map; report.md then covers every study DIR holds",
    )
    rpr.add_argument("--out", type=Path, required=True, metavar="DIR", help="figures/ regenerates the committed ones")
    rpr.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty DIR (the paper's data/ is redone, the claim studies' runs there resumed; "
        "figures of the same names replaced, other files kept)",
    )
    rpr.add_argument("--jobs", type=int, default=None, metavar="J", help="parallel processes (default: CPU count)")

    tl = _command(sub, "timeline", commands.cmd_timeline)
    tl.add_argument("run", type=Path, metavar="RUN_DIR")
    tl.add_argument(
        "--updates", default=None, metavar="K|A:B", help="only the first K updates, or updates A to B (inclusive)"
    )
    _file_out(tl, "trace.json")

    agg = _command(sub, "aggregate", commands.cmd_aggregate)
    agg.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="sweep folders, run folders or folders of runs")
    agg.add_argument(
        "--out", type=Path, metavar="FILE", help="default: DIR/aggregate.csv (one DIR; derived, rewritten)"
    )
    agg.add_argument("--overwrite", action="store_true", help="replace an existing --out FILE")

    com = _command(sub, "compare", commands.cmd_compare)
    com.add_argument("dirs", type=Path, nargs="+", metavar="DIR_OR_RUN", help="sweep, run or folders of runs")
    com.add_argument("--baseline", metavar="KEY=VALUE[,...]", help="must match one point (default: the first)")
    com.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        metavar="M",
        help="repeatable (default: time_per_*, samples_per_second, ...)",
    )
    com.add_argument("--out", type=Path, metavar="DIR", help="write compare.csv and compare.png/pdf here")
    com.add_argument("--overwrite", action="store_true", help="replace compare.* in --out")
    _figsize(com)

    plo = _command(sub, "plot", commands.cmd_plot)
    plo.add_argument("dirs", type=Path, nargs="+", metavar="RUN_OR_SWEEP", help="run folders or sweep folders")
    plo.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the figures (PNG and PDF)")
    _figsize(plo)

    pre = _command(sub, "predict", commands.cmd_predict)
    add_run_options(pre, only=("latency", "workers"), required=("latency", "workers"), helps={"workers": "N of N+B"})
    pre.add_argument("--backups", default="0", metavar="B,B,...|A-B", help="backup counts: 0,1,2 or 0-8 (default: 0)")
    pre.add_argument("--json", action="store_true", help="print a JSON list instead of a table")

    wif = _command(sub, "whatif", commands.cmd_whatif)
    wif.add_argument(
        "trace",
        type=Path,
        metavar="TRACE",
        help="op-level trace, .parquet or .csv, one row per op: dp_rank, stage, rank, step, optype, start_ts, "
        "duration, seq_id, mc, gmc, mb_id (seconds)",
    )
    wif.add_argument(
        "--meta",
        type=Path,
        metavar="META.yaml",
        help="dp_size, pp_size, tp_size, ... (default: meta-NAME.yaml beside trace-NAME)",
    )
    _file_out(wif, "DIR")
    wif.add_argument("--quiet", action="store_true", help="no progress bar")

    sca = _command(sub, "scale", commands.cmd_scale)
    sca.add_argument("trace", type=Path, metavar="TRACE", help="op-level trace, .parquet or .csv (as whatif reads)")
    sca.add_argument(
        "--meta", type=Path, metavar="META.yaml", help="the job's sizes (default: meta-NAME.yaml beside trace-NAME)"
    )
    sca.add_argument(
        "--dp", required=True, metavar="D,D,...", help="DP sizes of the synthetic jobs, e.g. 8,32,128,512 or 4-8"
    )
    sca.add_argument("--pp", type=int, metavar="P", help="pipeline stages (default: the trace's)")
    sca.add_argument("--microbatches", type=int, metavar="M", help="micro-batches per step (default: the trace's)")
    sca.add_argument("--steps", type=int, default=20, metavar="T", help="steps per synthetic job (default: 20)")
    sca.add_argument("--draws", type=int, default=10, metavar="K", help="synthetic jobs per size (default: 10)")
    sca.add_argument("--seed", type=int, default=0, help="seed of the draws, 0 or more (default: 0)")
    sca.add_argument("--backups", type=int, default=4, metavar="B", help="backup replicas compared, 1..B (default: 4)")
    sca.add_argument(
        "--drop-share", type=float, default=0.01, metavar="F", help="share of slowest workers replaced (default: 0.01)"
    )
    sca.add_argument(
        "--fit-ranks", metavar="dp=RANKS", help="fit on these DP ranks only (dp=0-7): validation against the full job"
    )
    _file_out(sca, "DIR")
    sca.add_argument("--quiet", action="store_true", help="no progress bar")

    cmp = _command(sub, "compare-backups", commands.cmd_compare_backups)
    family = ("workers", "latency", "steps", "seed", "batch_size", "noise_scale", "adapt_every")
    add_run_options(cmp, only=family, required=("workers",), helps={"workers": "P, the number of workers"})
    _file_out(cmp, "DIR")
    return parser


def _figsize(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--figsize",
        choices=("column", "page"),
        default=None,
        help="figures for a paper: 3.4 (column) or 7 (page) inches wide, 8-9 pt text (default: screen size)",
    )


def _file_out(p: argparse.ArgumentParser, metavar: str, kind: type = Path) -> None:
    folder = metavar == "DIR"
    p.add_argument("--out", type=kind, required=True, metavar=metavar, help="folder" if folder else "file to write")
    p.add_argument("--overwrite", action="store_true", help="replace results in DIR" if folder else "replace the file")


def _config_defaults(argv: list[str]) -> dict | None:
    """With ``simulate|replay ... --config FILE``, the file's values become the defaults, so flags win.
    ``--config=FILE`` is read as argparse reads it (no abbreviation); a second ``--config`` is an error."""
    if not argv or argv[0] not in ("simulate", "replay"):
        return None
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
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
    argv_given, argv = argv is not None, list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(_config_defaults(argv))
    except InputError as err:
        print(f"stragglersim: error: {worded(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        return _explained(err, "stragglersim")
    args = parser.parse_args(argv)
    sweeps = args.command in ("sweep", "tune")
    kept = "complete runs are kept; the same command resumes" if sweeps else "nothing was written"
    previous = _on_sigterm(_stop)
    try:
        if getattr(args, "out", None) is not None:
            check_out_writable(args.out)
        return args.func(args)
    except InputError as err:
        print(f"stragglersim {args.command}: error: {worded(err)}", file=sys.stderr)
        return 2
    except RunsFailed as err:
        print(f"stragglersim {args.command}: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"stragglersim {args.command}: interrupted; {_kept(args) or kept}", file=sys.stderr)
        return _stopped(130, argv_given, args.command)
    except Stopped as err:
        print(f"stragglersim {args.command}: stopped by {err}; {_kept(args) or kept}", file=sys.stderr)
        return _stopped(128 + err.signum, argv_given, args.command)
    except Exception as err:
        status = _explained(err, f"stragglersim {args.command}")
        if status == 1 and _kept(args):  # the machine failed (disk full): say how to go on
            print(f"stragglersim {args.command}: {_kept(args)}", file=sys.stderr)
        return status
    finally:
        _on_sigterm(previous)


def _kept(args) -> str:
    """For a run stopped early: where its checkpoint is and the command that continues it, if it has one."""
    if args.command != "simulate" or getattr(args, "out", None) is None:
        return ""
    own, given = Path(f"{args.out}.checkpoint"), getattr(args, "resume", None)
    checkpoint = own if (own / "state.json").is_file() or not given else Path(given)
    if not (checkpoint / "state.json").is_file():
        return ""
    go_on = f"stragglersim simulate --resume {checkpoint} --out {args.out}"
    return f"the checkpoint {checkpoint} is kept; `{go_on}` continues"


def _stopped(status: int, argv_given: bool, command: str) -> int:
    """The exit status of a command stopped by a signal. From the shell (no ``argv`` given), a run that
    loaded JAX ends here: interpreter shutdown with JAX's threads cut short can crash after the message.
    (Not a sweep: its process pool's semaphores are released by the normal shutdown.)"""
    if argv_given or command in ("sweep", "tune") or "jax" not in sys.modules:
        return status
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _stop(signum, frame):
    raise Stopped(signum)


def _on_sigterm(handler):
    """Handle SIGTERM with ``handler`` (in the main thread only: elsewhere Python cannot); returns the old one."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, signal.SIG_DFL if handler is None else handler)


def _explained(err: Exception, prog: str) -> int:
    """A file-system, memory or corrupt-file error as one line (``boundary.explain``); anything else
    is a bug and keeps its traceback."""
    explained = explain(err)
    if explained is None:
        raise err
    status, line = explained
    print(f"{prog}: error: {line}", file=sys.stderr)
    return status

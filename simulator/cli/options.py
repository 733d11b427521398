"""Every run option, declared once: its flag, unit, help and group. The default is RunConfig's.

The command line is generated from these declarations (``cli.py``); the Python API takes the same
names (``stragglersim.simulate(batch_size=64)``). A unit in square brackets is shown in the help.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

from ..core.config import OPTIMIZERS, RunConfig, budget_default
from ..io.errors import InputError
from ..models.catalog import DATASETS, MODELS
from ..strategies import names as strategy_names
from ..strategies import option_specs as strategy_options
from ..studies.grids import NOT_AXES, REPEATABLE

FAMILY = "the strategy family (--workers is then P, the number of workers)"  # argument groups of --help
SYSTEM = "system effects"
TRAINING = "training (without --timing-only)"


@dataclass(frozen=True)
class Option:
    """One RunConfig field on the command line."""

    field: str
    help: str
    metavar: str | None = None
    group: str | None = None
    unit: str = ""  # seconds, bytes, bytes/s, examples, updates ...

    @property
    def flag(self) -> str:
        return flag_of(self.field)


OPTIONS = (
    Option("strategy", f"one of {', '.join(strategy_names())}"),
    Option("workers", "gradients per update (sync, backup); number of workers (others)", "N"),
    Option("backups", "backup workers: N+B run, the first N count", "B"),
    *(  # the strategies' own options, declared with their strategy (strategies/options.py)
        Option(o.field, o.help, o.metavar, None if o.field in ("semantics", "staleness_cutoff") else FAMILY)
        for o in strategy_options()
    ),
    Option(
        "ps_bandwidth",
        "the PS's incoming link, shared by concurrent pushes (default: inf, not modelled)",
        "BYTES/S",
        SYSTEM,
        "bytes/s",
    ),
    Option(
        "ps_service",
        "seconds a server takes to apply one update; updates queue behind each other and a pull waits for "
        "them (default: 0, instantaneous)",
        "SECONDS",
        SYSTEM,
        "seconds",
    ),
    Option("ps_servers", "servers holding an equal shard of the parameters each (default: 1)", "S", SYSTEM),
    Option(
        "fail_slow",
        "fail-slow episodes: mean seconds normal and slow, slowdown factor",
        "normal=S,slow=S,factor=F",
        SYSTEM,
    ),
    Option("fail_at", "worker W is down from DOWN to UP s", "W@DOWN[-UP],...", SYSTEM),
    Option("failures", "random failures per worker", "rate=R,downtime=S", SYSTEM),
    Option("data_cost", "scale computation time with the mini-batch's non-zero inputs", "none|nnz", SYSTEM),
    Option(
        "latency",
        "computation time in seconds, e.g. shifted-exponential:shift=2,rate=0.5, trace:PATH, empirical:PATH",
        "SPEC",
    ),
    Option("speed_factors", "per-worker time multipliers: '1,1,2.5' or a SPEC (default: all 1)", "LIST|SPEC"),
    Option("comm_latency", "fixed cost of each pull and push", "SECONDS", unit="seconds"),
    Option("bandwidth", "link bandwidth", "BYTES/S", unit="bytes/s"),
    Option(
        "param_bytes",
        "bytes per pull and per push (default: the model's size when training, else 0)",
        "BYTES",
        unit="bytes",
    ),
    Option("steps", "parameter updates to simulate", "K", unit="updates"),
    Option("seed", "run seed"),
    Option("timing_only", "simulate timing only, compute no gradients"),
    Option(
        "log_gradients",
        "write gradients.csv (all) or not (none: sync, backup cancel/drop, k-sync, k-batch-sync and async "
        "without a cutoff then take the vectorised fast path)",
        "all|none",
    ),
    Option("model", f"{', '.join(MODELS)}, or your own: package.module:factory (docs/own-model.md)", group=TRAINING),
    Option("dataset", f"{', '.join(DATASETS)}, or your own: package.module:loader", group=TRAINING),
    Option("data_path", "files of mnist (.npz or IDX folder) or cifar10", "PATH", TRAINING),
    Option("dataset_size", "examples of mnist1d / teacher-student (default: 0, their own)", "N", TRAINING, "examples"),
    Option("data_partition", "shared (i.i.d. sampling), sharded or by-work", group=TRAINING),
    Option("batch_size", "per worker", "n", TRAINING, "examples"),
    Option("hidden", "mlp hidden widths", "WIDTHS", TRAINING),
    Option(
        "optimizer",
        f"{', '.join(OPTIMIZERS)} (rmsprop as in the paper's Inception setting: decay 0.9, momentum 0.9, "
        "eps 1), or your own: package.module:factory, called with learning_rate",
        group=TRAINING,
    ),
    Option("lr", "learning rate", group=TRAINING),
    Option("momentum", "for --optimizer momentum", group=TRAINING),
    Option("lr_schedule", "constant or exponential", "NAME", TRAINING),
    Option("lr_decay_rate", "factor per decay", "R", TRAINING),
    Option("lr_decay_steps", "updates per decay", "K", TRAINING, "updates"),
    Option("lr_scaling", "none, linear or sqrt in gradients per update", "RULE", TRAINING),
    Option("eval_every", "updates (50), simulated seconds (10s) or auto", "K|Ts", TRAINING),
    Option("target_accuracy", "test accuracy that ends the run", "FRACTION", TRAINING),
    Option("target_loss", "test loss that ends the run", "LOSS", TRAINING),
    Option(
        "stop_at_target",
        "stop when the target is reached (--no-stop-at-target: run the whole budget; the first crossing is "
        "still reported)",
        group=TRAINING,
    ),
    Option(
        "gradient_quality",
        "measure each update's gradient quality: stale_cosine (against the same mini-batches' gradients at "
        "the parameters it is applied to) and batch_cosine (against a --reference-batch gradient there)",
        group=TRAINING,
    ),
    Option(
        "quality_every",
        "measure gradient quality at every K-th update (implies --gradient-quality)",
        "K",
        TRAINING,
        "updates",
    ),
    Option("until", "stop at this simulated time (a budget; --steps then defaults to none)", "SECONDS", unit="seconds"),
    Option(
        "budget_gradients", "stop once this many gradients were applied (a budget; --steps then defaults to none)", "G"
    ),
    Option(
        "divergence_loss",
        "a training loss above this ends the run as diverged (default: only NaN or inf)",
        "LOSS",
        TRAINING,
    ),
    Option(
        "validation_split",
        "carve this fraction of the training set out as a validation set, evaluated "
        "instead of the test set (what tune selects on)",
        "FRACTION",
        TRAINING,
    ),
    Option(
        "checkpoint_every",
        "save a checkpoint to DIR.checkpoint every K updates or Ts simulated seconds (a multiple of --eval-every)",
        "K|Ts",
        TRAINING,
    ),
    Option(
        "sources",
        "FIELD=sha256:HEX of the source file of each import path (a run records it; a run given it refuses a "
        "changed file)",
        "TEXT",
        TRAINING,
    ),
    Option(
        "reference_batch",
        "examples of batch_cosine's reference gradient (0: stale measures only)",
        "n",
        TRAINING,
        "examples",
    ),
)
TRACE_FIELDS = ("trace_format", "time_scale")  # --format and --time-scale: add_trace_options


class Once(argparse.Action):
    """Store the value; an option given a second time is an error (not the last one silently winning)."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_given", set())
        if self.dest in given:
            parser.error(f"{option_string} given twice; give it once" + _repeat_hint(self.dest))
        given.add(self.dest)
        setattr(namespace, self.dest, values)


def _repeat_hint(dest: str) -> str:
    return "" if dest in REPEATABLE else " (a sweep takes a list: A,B,C)"


def add_run_options(
    p: argparse.ArgumentParser,
    *,
    replay: bool = False,
    sweep: bool = False,
    defaults=None,
    only=(),
    required=(),
    helps: dict[str, str] | None = None,
) -> None:
    """The options of one run, generated from ``OPTIONS`` (``replay`` takes its latency from the
    trace; ``sweep`` takes lists for strategy, workers, backups and seeds). ``defaults``: values
    that replace RunConfig's defaults (from ``--config``); ``only``: just these fields (in the
    order declared, ungrouped), ``required`` of them without a default, ``helps`` a command's own
    help for some of them."""
    declared = {f.name: f for f in fields(RunConfig)}
    base = {**{f.name: f.default for f in fields(RunConfig)}, **(defaults or {})}
    groups = {None: p}
    for option in OPTIONS:
        if (replay and option.field == "latency") or (sweep and option.field in NOT_AXES):
            continue
        if only:
            if option.field in only:
                if helps and option.field in helps:
                    option = Option(option.field, helps[option.field], option.metavar, option.group, option.unit)
                _add(p, option, declared[option.field].type, base.get(option.field), required=option.field in required)
                if option.field == "latency":
                    add_trace_options(p, "of a trace:/empirical: latency file")
            continue
        target = groups.get(option.group) or groups.setdefault(option.group, p.add_argument_group(option.group))
        default = base.get(option.field)
        if replay and option.field == "steps":
            default = defaults.get("steps") if defaults else None
        if sweep:
            _add_axis(target, option, declared[option.field].type, default)
            continue
        _add(target, option, declared[option.field].type, default, replay=replay)
        if option.field == "latency":
            add_trace_options(p, "of a trace:/empirical: latency file", defaults)
    if replay:
        add_trace_options(p, defaults=defaults)
    if sweep:
        p.add_argument(
            "--total-workers",
            default=None,
            action=Once,
            metavar="P,P,...",
            help="hold N + B = P: with --backups, N = P - B; with --workers, B = P - N",
        )
        p.add_argument("--extend", action="store_true", help="add this grid's runs to the sweep in --out")
        p.add_argument(
            "--grid",
            type=Path,
            default=None,
            metavar="study.toml",
            help="the grid from a TOML file (a list is an axis, a value fixes the option); flags given here win",
        )
        p.add_argument("--jobs", type=int, default=None, metavar="J", help="parallel processes (default: CPU count)")
        p.add_argument(
            "--scheduler",
            default=None,
            metavar="ADDRESS",
            help="run on a Dask cluster: tcp://HOST:PORT of a running `dask scheduler`, or local:K for a "
            "LocalCluster of K workers (needs the cluster extra: pip install '.[cluster]')",
        )


def _add(target, option: Option, kind: str, default, *, replay: bool = False, required: bool = False) -> None:
    shown = option.help
    if required:
        default = None
    elif "(default" not in shown and default is not None and default != "" and kind != "bool":
        unit = f" {option.unit}" if option.unit in ("seconds", "bytes", "bytes/s") else ""
        shown += f" (default: {default}{unit})"
    elif option.field == "steps" and replay:
        shown += " (default: until the trace is used up)"
    if option.field == "stop_at_target":  # --stop-at-target / --no-stop-at-target
        target.add_argument(option.flag, action=argparse.BooleanOptionalAction, default=default, help=shown)
    elif kind == "bool":
        target.add_argument(option.flag, action="store_true", default=bool(default), help=shown)
    else:
        convert = int if kind.startswith("int") else float if kind.startswith("float") else str
        extra = {"required": True} if required else {"default": default}
        target.add_argument(option.flag, type=convert, action=Once, metavar=option.metavar, help=shown, **extra)


def _add_axis(target, option: Option, kind: str, default) -> None:
    """A sweep's option: a list of values (repeated, for values that hold commas), or a flag."""
    shown = option.help.split(" (default")[0]
    if option.field == "stop_at_target":  # on by default: --no-stop-at-target turns it off
        target.add_argument(option.flag, action=argparse.BooleanOptionalAction, default=None, help=shown)
        return
    if kind == "bool":
        target.add_argument(option.flag, action="store_true", default=None, help=shown)
        return
    if option.field in REPEATABLE:
        text = f"{shown}; repeat the option for several values"
        target.add_argument(option.flag, action="append", default=None, metavar=option.metavar, help=text)
        return
    ranges = " or range A-B" if kind.startswith("int") else ""
    flag = "--seeds" if option.field == "seed" else option.flag
    metavar = f"{option.metavar or option.field.upper()},..."
    unit = f" {option.unit}" if option.unit in ("seconds", "bytes", "bytes/s") else ""
    if kind.endswith("None"):
        shown += " (none: not set)"
    text = f"{shown}: one value or a list{ranges} (default: {default}{unit})" if default not in (None, "") else shown
    target.add_argument(flag, dest=option.field, action=Once, default=None, metavar=metavar, help=text)


def add_trace_options(p: argparse.ArgumentParser, what: str = "of TRACE", defaults=None) -> None:
    defaults = defaults or {}
    p.add_argument(
        "--format",
        dest="trace_format",
        default=defaults.get("trace_format", "csv"),
        metavar="F",
        help=f"layout {what}: csv (worker,step,duration[,start]), pai, chrome (default: csv)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=defaults.get("time_scale", 1.0),
        metavar="X",
        help="seconds per unit of the trace's times (PAI times are normalised; default: 1)",
    )


def add_output_options(p: argparse.ArgumentParser, *, single: bool) -> None:
    """``--out``, ``--overwrite``, ``--quiet`` and, for single runs, ``--config`` and ``--resume``."""
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the results")
    p.add_argument("--overwrite", action="store_true", help="replace results already in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no printed summary")
    if single:
        p.add_argument(
            "--config",
            type=Path,
            default=None,
            metavar="run.toml",
            help="read the options from a TOML file (the keys of config.toml); flags override it",
        )
        p.add_argument(
            "--resume",
            type=Path,
            default=None,
            metavar="CHECKPOINT",
            help="continue a run from its checkpoint folder (its configuration; --out says where)",
        )


def config_from_namespace(args: argparse.Namespace) -> RunConfig:
    """The RunConfig whose every field comes from the option of the same name (validated where
    the run is assembled, ``assemble.assemble``)."""
    values = {f.name: getattr(args, f.name) for f in fields(RunConfig)}
    if "steps" not in getattr(args, "_given", ()) and values["steps"] == RunConfig.steps:
        rest = budget_default({k: v for k, v in values.items() if k != "steps"})
        values = {"steps": values["steps"], **rest}  # a budget without --steps: steps unset
    return RunConfig(**values)


FLAGS = {"trace_format": "--format"}  # the fields whose flag is not --field-name


def flag_of(field: str, *, negated: bool = False) -> str:
    """The command line's option for a RunConfig field (or a command's parameter): the one place
    that turns a field's name into a flag. ``negated``: the field given as false (``--no-NAME``)."""
    flag = FLAGS.get(field, "--" + field.replace("_", "-"))
    return "--no-" + flag[2:] if negated else flag


def worded(err: InputError) -> str:
    """An error of the library as the command line says it: its fields named by their flags."""
    return err.worded(lambda name, negated: flag_of(name, negated=negated))


def given_options(args: argparse.Namespace) -> dict:
    """The run options given on the command line (and ``config``, the file of ``--config``):
    those recorded by ``Once`` and those whose value differs from RunConfig's default (flags)."""
    given = set(getattr(args, "_given", ()))
    given |= {f.name for f in fields(RunConfig) if hasattr(args, f.name) and getattr(args, f.name) != f.default}
    values = {name: getattr(args, name) for name in sorted(given) if hasattr(args, name)}
    if getattr(args, "config", None) is not None:
        values["config"] = args.config
    return values

"""The command line: parse, build the config, call the library, write files.

Every input problem ends as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from models.catalog import DATASETS, MODELS
from simulator import __version__
from simulator.config import OPTIMIZERS, SEMANTICS, STRATEGIES, RunConfig
from simulator.errors import InputError, SimulationStalled


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (and exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stragglersim", description="Discrete-event simulation of distributed SGD with stragglers.")
    parser.add_argument("--version", action="version", version=f"stragglersim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = RunConfig()
    sim = sub.add_parser(
        "simulate", help="simulate one run", description="Simulate one run and write its results to --out."
    )
    sim.add_argument("--strategy", default=d.strategy, help=f"one of {', '.join(STRATEGIES)} (default: {d.strategy})")
    sim.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        metavar="N",
        help=f"gradients per update (sync, backup); number of workers (async) (default: {d.workers})",
    )
    sim.add_argument(
        "--backups", type=int, default=d.backups, metavar="B", help="backup workers: N+B run, the first N count"
    )
    sim.add_argument(
        "--semantics", default=None, help=f"late workers under backup: {', '.join(SEMANTICS)} (default: tf)"
    )
    sim.add_argument(
        "--staleness-cutoff", type=int, default=None, metavar="T", help="async: drop gradients with staleness > T"
    )
    sim.add_argument(
        "--latency",
        default=d.latency,
        metavar="SPEC",
        help=f"computation time in seconds, e.g. shifted-exponential:shift=2,rate=0.5 (default: {d.latency})",
    )
    sim.add_argument(
        "--speed-factors",
        default=d.speed_factors,
        metavar="LIST|SPEC",
        help="per-worker time multipliers: '1,1,2.5' or a SPEC to draw them from (default: all 1)",
    )
    sim.add_argument(
        "--comm-latency", type=float, default=d.comm_latency, metavar="SECONDS", help="fixed cost of each pull and push"
    )
    sim.add_argument(
        "--bandwidth", type=float, default=d.bandwidth, metavar="BYTES/S", help="link bandwidth (default: inf)"
    )
    sim.add_argument(
        "--param-bytes",
        type=float,
        default=None,
        metavar="BYTES",
        help="bytes per pull and per push (default: the model's size when training, else 0)",
    )
    sim.add_argument(
        "--steps", type=int, default=d.steps, metavar="K", help=f"parameter updates to simulate (default: {d.steps})"
    )
    sim.add_argument("--seed", type=int, default=d.seed, help="run seed (default: 0)")
    sim.add_argument("--timing-only", action="store_true", help="simulate timing only, compute no gradients")
    sim.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the results")
    sim.add_argument("--overwrite", action="store_true", help="replace results already in DIR")
    sim.add_argument("--quiet", action="store_true", help="no progress bar, no printed summary")
    t = sim.add_argument_group("training (without --timing-only)")
    t.add_argument("--model", default=d.model, help=f"{', '.join(MODELS)} (default: {d.model})")
    t.add_argument("--dataset", default=d.dataset, help=f"{', '.join(DATASETS)} (default: {d.dataset})")
    t.add_argument(
        "--data-path", default=d.data_path, metavar="PATH", help="files of mnist (.npz or IDX folder) or cifar10"
    )
    t.add_argument(
        "--dataset-size", type=int, default=d.dataset_size, metavar="N", help="examples of mnist1d / teacher-student"
    )
    t.add_argument(
        "--data-partition", default=d.data_partition, help="shared (i.i.d. sampling) or sharded (default: shared)"
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
    t.add_argument("--lr-schedule", default=d.lr_schedule, help="constant or exponential (default: constant)")
    t.add_argument("--lr-decay-rate", type=float, default=d.lr_decay_rate, help=f"(default: {d.lr_decay_rate})")
    t.add_argument(
        "--lr-decay-steps", type=int, default=d.lr_decay_steps, help=f"updates per decay (default: {d.lr_decay_steps})"
    )
    t.add_argument(
        "--lr-scaling", default=d.lr_scaling, help="none, linear or sqrt in gradients per update (default: none)"
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
    t.add_argument(
        "--reference-batch", type=int, default=d.reference_batch, metavar="n", help="examples of that gradient"
    )
    sim.set_defaults(func=cmd_simulate)
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Every RunConfig field comes from the option of the same name."""
    return RunConfig(**{f.name: getattr(args, f.name) for f in fields(RunConfig)}).validate()


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulator.progress import NullProgress, progress_bar
    from simulator.results import check_out_dir, write_run

    config = config_from_args(args)
    check_out_dir(args.out, overwrite=args.overwrite)
    bar = progress_bar(config.steps, desc=f"{config.strategy} N={config.workers} B={config.backups}", quiet=args.quiet)
    tables = {}
    try:
        if config.timing_only:
            from simulator.engine import Simulation

            log = Simulation(config, progress=bar).run()
            summary = log.summary(config)
        else:
            from simulator.trainer import TrainingResult, train

            config, log, result = train(config, progress=bar)
            summary = {**log.summary(config), **result.summary}
            tables["metrics.csv"] = (TrainingResult.METRICS_FIELDS, result.metric_lines())
            tables["training.csv"] = (TrainingResult.STEPS_FIELDS, result.step_lines())
    finally:
        bar.close()
    if not isinstance(bar, NullProgress) and len(log.gradients) > 200_000:
        print(f"writing {len(log.gradients)} gradient records to {args.out} ...", file=sys.stderr)
    write_run(args.out, config, log, summary, tables=tables, overwrite=args.overwrite)
    if not args.quiet:
        print(describe(summary, args.out))
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
        f"{s['gradients_dropped']} dropped, {s['gradients_cancelled']} cancelled; "
        f"{s['repeat_contributions']} repeat contributions",
    ]
    if s["mean_staleness"] is not None and s["strategy"] == "async":
        lines.append(f"  staleness: mean {s['mean_staleness']:.4g}, max {s['max_staleness']}")
    if "model" in s:
        accuracy = f", test accuracy {s['final_test_accuracy']:.4f}" if s["final_test_accuracy"] is not None else ""
        lines.append(
            f"  {s['model']} on {s['dataset']} ({s['device']}): test loss {s['final_test_loss']:.4g}{accuracy}"
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as err:
        print(f"stragglersim {args.command}: error: {err}", file=sys.stderr)
        return 2
    except SimulationStalled as err:
        print(f"stragglersim {args.command}: stalled: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"stragglersim {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The command line: parse, build the config, call the library, write files.

Every input problem ends as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulator import __version__
from simulator.config import SEMANTICS, STRATEGIES, RunConfig
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
        "--param-bytes", type=float, default=d.param_bytes, metavar="BYTES", help="bytes per pull and per push"
    )
    sim.add_argument(
        "--steps", type=int, default=d.steps, metavar="K", help=f"parameter updates to simulate (default: {d.steps})"
    )
    sim.add_argument("--seed", type=int, default=d.seed, help="run seed (default: 0)")
    sim.add_argument("--timing-only", action="store_true", help="simulate timing only, compute no gradients")
    sim.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the results")
    sim.add_argument("--overwrite", action="store_true", help="replace results already in DIR")
    sim.add_argument("--quiet", action="store_true", help="no progress bar, no printed summary")
    sim.set_defaults(func=cmd_simulate)
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        strategy=args.strategy,
        workers=args.workers,
        backups=args.backups,
        semantics=args.semantics,
        staleness_cutoff=args.staleness_cutoff,
        latency=args.latency,
        speed_factors=args.speed_factors,
        comm_latency=args.comm_latency,
        bandwidth=args.bandwidth,
        param_bytes=args.param_bytes,
        steps=args.steps,
        seed=args.seed,
        timing_only=args.timing_only,
    ).validate()


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulator.engine import Simulation
    from simulator.progress import NullProgress, progress_bar
    from simulator.results import check_out_dir, write_run

    config = config_from_args(args)
    check_out_dir(args.out, overwrite=args.overwrite)
    bar = progress_bar(config.steps, desc=f"{config.strategy} N={config.workers} B={config.backups}", quiet=args.quiet)
    try:
        log = Simulation(config, progress=bar).run()
    finally:
        bar.close()
    summary = log.summary(config)
    if not isinstance(bar, NullProgress) and len(log.gradients) > 200_000:
        print(f"writing {len(log.gradients)} gradient records to {args.out} ...", file=sys.stderr)
    write_run(args.out, config, log, summary, overwrite=args.overwrite)
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

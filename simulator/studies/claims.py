"""The paper's two claims, measured by regime (``reproduce --only staleness-depth|sync-vs-async|tradeoff-map``).

- **C1** (staleness hurts, more so in deeper models): async SGD with P workers at an equal number of
  applied gradients, MLPs of several depths on MNIST-1D (:func:`staleness_depth`).
- **C2** (sync with a few backups beats async in time to a target and in final accuracy):
  sync + backups against async, softsync and async with a staleness cutoff, at equal simulated time
  (:func:`sync_vs_async`), with the candidate mechanisms switched on one at a time: the parameter
  server's capacity (``--ps-service``) and momentum.
- **The map** (:func:`tradeoff_map`): over P and depth, which of sync + backups and async reaches the
  target first, by how much, and where the two cannot be told apart.

Every cell's learning rate (and for sync + backups, B) is tuned on a validation split
(:mod:`cells`); the numbers reported are the winners' runs on the test set, over several seeds. The
studies never choose anything by the claim's outcome: grids, budgets and targets are declared in
:class:`ClaimScale` before any run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.config import RunConfig
from ..io.results import write_json
from ..latency import parse_latency
from .aggregation import interval
from .cells import Cell, Tuned, run_cells


@dataclass(frozen=True)
class ClaimScale:
    """How big each claim study is (the full scale is the default; ``QUICK_CLAIMS`` is toy scale)."""

    width: int = 128  # hidden units per layer
    depths: tuple[int, ...] = (1, 3, 6)  # hidden layers
    dataset_size: int = 0  # MNIST-1D examples (0: its own 20,000, 16,000 of them for training)
    tune_seeds: tuple[int, ...] = (0,)  # seeds of the candidates' validation runs
    seeds: tuple[int, ...] = (0, 1, 2)  # seeds of the winners' test runs
    quality_every: int | None = 25  # stale_cosine measured every this many updates
    # C1: async, equal applied gradients
    c1_workers: tuple[int, ...] = (1, 4, 16, 64, 128)
    c1_gradients: int = 6000
    async_lrs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
    # C2: equal simulated time, async's time for c2_gradients gradients (without a PS service time)
    c2_totals: tuple[int, ...] = (52, 104)
    c2_depths: tuple[int, ...] = (3, 6)
    c2_gradients: int = 8000
    c2_target: float = 0.7
    c2_async_lrs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)  # P >= 52: C1's best at P = 64 are <= 0.03
    backup_fractions: tuple[float, ...] = (0.04, 0.08)  # B candidates: round(P x f), at least 1
    sync_lrs: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0)  # N x 32 examples per update: larger steps
    softsync_lrs: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)  # P/n gradients per update, staleness ~ n
    softsync_n: int = 4
    loads: tuple[float, ...] = (1.0, 2.0)  # PS service time as async's offered load P s / E[X]
    momentum: float = 0.9  # the momentum mechanism (its learning rates: the grids x (1 - momentum))
    long_budget: float = 4.0  # the horizon: the same cell with this many times the simulated time
    # the map: time to target, sync + backups (B = P / 16, at least 1) against async
    map_workers: tuple[int, ...] = (8, 16, 32, 64, 128)
    map_depths: tuple[int, ...] = (1, 3, 6)
    map_gradients: int = 8000
    map_targets: tuple[float, ...] = (0.55, 0.7, 0.7)  # per depth: ~90% of sequential SGD's (0.63, 0.81, 0.81)
    map_async_lrs: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1)
    map_momentum_depths: tuple[int, ...] = (3,)  # rows again with momentum (its rates: the grids x 0.1)


QUICK_CLAIMS = ClaimScale(  # every figure at toy scale: one learning rate per strategy (nothing tuned), no quality
    width=32,
    depths=(1, 3),
    dataset_size=2000,
    seeds=(0, 1),
    quality_every=None,
    c1_workers=(1, 16),
    c1_gradients=400,
    async_lrs=(0.03,),
    c2_async_lrs=(0.03,),
    map_async_lrs=(0.03,),
    c2_totals=(12,),
    c2_depths=(3,),
    c2_gradients=600,
    c2_target=0.3,
    backup_fractions=(0.1,),
    sync_lrs=(0.3,),
    softsync_lrs=(0.1,),
    loads=(2.0,),
    long_budget=2.0,
    map_workers=(4, 16),
    map_depths=(1, 3),
    map_gradients=600,
    map_targets=(0.3, 0.3),
    map_momentum_depths=(3,),
)


def base_config(scale: ClaimScale, latency: str, depth: int, **fields) -> RunConfig:
    """A claim study's run: an MLP of ``depth`` hidden layers on MNIST-1D under ``latency``."""
    fields.setdefault("quality_every", scale.quality_every)
    fields.setdefault("strategy", "async")  # not RunConfig's backup, whose semantics would stay on the others
    return RunConfig(
        dataset="mnist1d",
        dataset_size=scale.dataset_size,
        model="mlp",
        hidden=",".join([str(scale.width)] * depth),
        latency=latency,
        steps=None,
        eval_every="auto",
        reference_batch=0,  # staleness alone: the fresh gradients of the same mini-batches
        **fields,
    )


def backups_for(total: int, fractions: tuple[float, ...]) -> list[int]:
    """B candidates at P = ``total``: round(P x f), at least 1 and below P, each once."""
    return sorted({min(total - 1, max(1, round(total * f))) for f in fractions})


def staleness_depth(out: Path, scale: ClaimScale, latency: str, *, jobs=None, quiet=False, log=print) -> dict:
    """C1: each (depth, P) cell's tuned async run at ``c1_gradients`` applied gradients."""
    cells = [
        Cell(
            {"depth": depth, "workers": p},
            tuple(
                base_config(
                    scale, latency, depth, strategy="async", workers=p, lr=lr, budget_gradients=scale.c1_gradients
                )
                for lr in scale.async_lrs
            ),
        )
        for depth in scale.depths
        for p in scale.c1_workers
    ]
    tuned = run_cells(cells, out, select_by="accuracy_at_budget", **_tuning(scale, jobs, quiet, log))
    rows = [
        {
            **t.cell.key,
            "lr": t.winner.lr,
            "lr_at_edge": t.at_edge,
            **_stat(t, "mean_last3_accuracy", "accuracy"),
            **_stat(t, "mean_staleness", "staleness"),
            **_stat(t, "stale_cosine_mean", "stale_cosine"),
            "diverged": t.diverged,
            "seeds": len(t.finals),
        }
        for t in tuned
    ]
    facts = {"rows": rows, "gradients": scale.c1_gradients, "latency": latency, **_setup(scale, scale.async_lrs)}
    facts["drops"] = _drops(rows, scale)
    write_json(out / "facts.json", facts)
    return facts


def _drops(rows: list[dict], scale: ClaimScale) -> list[dict]:
    """Per depth: accuracy at the fewest workers minus at the most, with whether their intervals overlap."""
    out = []
    for depth in scale.depths:
        mine = [r for r in rows if r["depth"] == depth]
        first, last = mine[0], mine[-1]
        out.append(
            {
                "depth": depth,
                "from_workers": first["workers"],
                "to_workers": last["workers"],
                "drop": first["accuracy"] - last["accuracy"],
                "separated": _apart(first, last, "accuracy"),
            }
        )
    return out


def _apart(a: dict, b: dict, name: str) -> bool:
    """Whether two rows' intervals of ``name`` do not overlap (False when either has none)."""
    lo_a, hi_a, lo_b, hi_b = a[f"{name}_low"], a[f"{name}_high"], b[f"{name}_low"], b[f"{name}_high"]
    if None in (lo_a, hi_a, lo_b, hi_b):
        return False
    return hi_a < lo_b or hi_b < lo_a


def c2_strategies(scale: ClaimScale, total: int, base: RunConfig, lr_factor: float = 1.0) -> dict[str, tuple]:
    """C2's strategies at P = ``total`` (label -> candidates), over ``base`` (latency, budget, model)."""

    def grid(lrs):
        return [_times(lr, lr_factor) for lr in lrs]

    backup = tuple(
        replace(base, strategy="backup", workers=total - b, backups=b, semantics="tf", lr=lr)
        for b in backups_for(total, scale.backup_fractions)
        for lr in grid(scale.sync_lrs)
    )
    return {
        "sync + backups": backup,
        "async": tuple(replace(base, strategy="async", workers=total, lr=lr) for lr in grid(scale.c2_async_lrs)),
        "softsync": tuple(
            replace(base, strategy="softsync", workers=total, softsync_n=scale.softsync_n, lr=lr)
            for lr in grid(scale.softsync_lrs)
        ),
        "async, staleness <= P": tuple(
            replace(base, strategy="async", workers=total, staleness_cutoff=total, lr=lr)
            for lr in grid(scale.c2_async_lrs)
        ),
    }


def budget_seconds(latency: str, workers: int, gradients: int) -> float:
    """The simulated time in which async SGD with ``workers`` workers computes ``gradients`` gradients
    on average (``gradients`` x E[X] / P, without transfer or service times)."""
    return gradients * parse_latency(latency).mean / workers


def sync_vs_async(out: Path, scale: ClaimScale, latency: str, *, jobs=None, quiet=False, log=print) -> dict:
    """C2: every strategy tuned at each (P, depth), equal simulated time; then the mechanisms, one at a time,
    at the first P and depth: the PS's service time at each offered load, momentum, and a longer budget."""
    cells, where = [], []
    for total in scale.c2_totals:
        until = budget_seconds(latency, total, scale.c2_gradients)
        for depth in scale.c2_depths:
            base = base_config(
                scale, latency, depth, until=until, target_accuracy=scale.c2_target, stop_at_target=False
            )
            for label, candidates in c2_strategies(scale, total, base).items():
                cells.append(
                    Cell({"mechanism": "none", "workers": total, "depth": depth, "strategy": label}, candidates)
                )
                where.append(until)
    total, depth = scale.c2_totals[0], scale.c2_depths[0]
    until = budget_seconds(latency, total, scale.c2_gradients)
    base = base_config(scale, latency, depth, until=until, target_accuracy=scale.c2_target, stop_at_target=False)
    service = parse_latency(latency).mean / total
    mechanisms = {f"PS service, load {load:g}": (replace(base, ps_service=load * service), 1.0) for load in scale.loads}
    momentum = replace(base, optimizer="momentum", momentum=scale.momentum)
    mechanisms[f"momentum {scale.momentum:g}"] = (momentum, 1 - scale.momentum)
    mechanisms[f"budget x{scale.long_budget:g}"] = (replace(base, until=until * scale.long_budget), 1.0)
    for name, (mechanism_base, factor) in mechanisms.items():
        for label, candidates in list(c2_strategies(scale, total, mechanism_base, factor).items())[:2]:
            cells.append(Cell({"mechanism": name, "workers": total, "depth": depth, "strategy": label}, candidates))
            where.append(mechanism_base.until)
    tuned = run_cells(cells, out, select_by="accuracy_at_budget", **_tuning(scale, jobs, quiet, log))
    rows = [_c2_row(t, until) for t, until in zip(tuned, where, strict=True)]
    facts = {"rows": rows, "target": scale.c2_target, "gradients": scale.c2_gradients, "latency": latency}
    facts |= _setup(scale, scale.c2_async_lrs, scale.sync_lrs, scale.softsync_lrs)
    write_json(out / "facts.json", facts)
    return facts


def _c2_row(t: Tuned, until: float) -> dict:
    w = t.winner
    return {
        **t.cell.key,
        "backups": w.backups if w.strategy == "backup" else None,
        "lr": w.lr,
        "lr_at_edge": t.at_edge,
        "until": until,
        **_stat(t, "accuracy_at_budget", "accuracy"),
        **_stat(t, "time_to_target_interpolated", "time_to_target"),
        "reached": len(t.values("time_to_target_interpolated")),
        **_stat(t, "stale_cosine_mean", "stale_cosine"),
        **_stat(t, "time_per_update", "time_per_update"),
        "diverged": t.diverged,
        "seeds": len(t.finals),
    }


def tradeoff_map(out: Path, scale: ClaimScale, latency: str, *, jobs=None, quiet=False, log=print) -> dict:
    """The map: at each (P, depth), sync + backups (B = P / 16) and async tuned for time to target; its rows
    are the depths with plain SGD, then ``map_momentum_depths`` with momentum (the mechanism C2 finds)."""
    cells = []
    plain = [(depth, target, "sgd") for depth, target in zip(scale.map_depths, scale.map_targets, strict=True)]
    targets = dict(zip(scale.map_depths, scale.map_targets, strict=True))
    with_momentum = [(depth, targets[depth], f"momentum {scale.momentum:g}") for depth in scale.map_momentum_depths]
    for depth, target, optimizer in plain + with_momentum:
        factor = 1.0 if optimizer == "sgd" else 1 - scale.momentum
        for total in scale.map_workers:
            until = budget_seconds(latency, total, scale.map_gradients)
            base = base_config(scale, latency, depth, until=until, target_accuracy=target, quality_every=None)
            if optimizer != "sgd":
                base = replace(base, optimizer="momentum", momentum=scale.momentum)
            b = max(1, round(total / 16))
            strategies = {
                "sync + backups": tuple(
                    replace(
                        base, strategy="backup", workers=total - b, backups=b, semantics="tf", lr=_times(lr, factor)
                    )
                    for lr in scale.sync_lrs
                ),
                "async": tuple(
                    replace(base, strategy="async", workers=total, lr=_times(lr, factor)) for lr in scale.map_async_lrs
                ),
            }
            for label, candidates in strategies.items():
                key = {"depth": depth, "optimizer": optimizer, "workers": total, "strategy": label, "target": target}
                cells.append(Cell(key, candidates))
    tuned = run_cells(cells, out, select_by="time_to_target", **_tuning(scale, jobs, quiet, log))
    rows = [
        {
            **t.cell.key,
            "lr": t.winner.lr,
            "lr_at_edge": t.at_edge,
            **_stat(t, "time_to_target_interpolated", "time_to_target"),
            "reached": len(t.values("time_to_target_interpolated")),
            "seeds": len(t.finals),
            "diverged": t.diverged,
        }
        for t in tuned
    ]
    facts = {
        "rows": rows,
        "cells": map_cells(rows),
        "latency": latency,
        **_setup(scale, scale.map_async_lrs, scale.sync_lrs),
    }
    write_json(out / "facts.json", facts)
    return facts


def _times(lr: float, factor: float) -> float:
    """``lr`` x ``factor``, rounded to 12 digits (0.3 x 0.1 is 0.03, not 0.030000000000000002)."""
    return round(lr * factor, 12)


def map_cells(rows: list[dict]) -> list[dict]:
    """Per (depth, optimizer, P): the winner (every seed reached the target, the lowest mean time), the
    speed-up over the runner-up (its mean time over the winner's; none when it missed the target) and
    whether the two intervals overlap (a tie)."""
    out = []
    keys = list(dict.fromkeys((r["depth"], r.get("optimizer", "sgd"), r["workers"]) for r in rows))
    for depth, optimizer, workers in keys:
        mine = [r for r in rows if (r["depth"], r.get("optimizer", "sgd"), r["workers"]) == (depth, optimizer, workers)]
        done = sorted((r for r in mine if r["reached"] == r["seeds"]), key=lambda r: r["time_to_target"])
        cell = {"depth": depth, "optimizer": optimizer, "workers": workers, "winner": None, "speedup": None}
        cell["tie"] = False
        if done:
            first = done[0]
            cell["winner"] = first["strategy"]
            if len(done) > 1:
                cell["speedup"] = done[1]["time_to_target"] / first["time_to_target"]
                cell["tie"] = not _apart(first, done[1], "time_to_target")
        out.append(cell)
    return out


def _setup(scale: ClaimScale, *grids: tuple[float, ...]) -> dict:
    """What the report says of a study's setup: seeds, model width, and whether anything was tuned."""
    return {"seeds": list(scale.seeds), "width": scale.width, "tuned": any(len(g) > 1 for g in grids)}


def _tuning(scale: ClaimScale, jobs, quiet: bool, log: Callable) -> dict:
    return {"tune_seeds": scale.tune_seeds, "seeds": scale.seeds, "jobs": jobs, "quiet": quiet, "log": log}


def _stat(t: Tuned, key: str, name: str) -> dict:
    """``name``: the mean over the final runs of ``key``, with the 95% Student-t interval (None where
    too few seeds have it), cut at the bounds of what ``name`` can be (``BOUNDS``)."""
    mean, _, low, high = interval(t.values(key))
    floor, ceiling = BOUNDS.get(name, (-math.inf, math.inf))  # an interval past what is possible is cut there
    low, high = max(low, floor), min(high, ceiling)
    clean = [None if v != v else v for v in (mean, low, high)]  # NaN -> None (JSON)
    return {name: clean[0], f"{name}_low": clean[1], f"{name}_high": clean[2]}


BOUNDS = {"accuracy": (0.0, 1.0), "time_to_target": (0.0, math.inf), "staleness": (0.0, math.inf)}

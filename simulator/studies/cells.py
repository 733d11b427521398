"""Tuned cells: the unit of the claim studies (``reproduce --only ...``).

A *cell* is one question of a study ("async, P = 16, depth 3") with its *candidates*, the runs that
differ only in what is tuned (the learning rate; for sync with backups also B). Each candidate runs
on the ``tune_seeds`` holding out a validation split of the training set; the best mean of
``select_by`` over those seeds wins (scored as :mod:`selection` scores a run: a diverged run, or one
that missed the target, is the worst value); the winner then runs on the whole training set with
every seed of ``seeds``, evaluated on the test set, which the selection never read.

A study folder holds ``candidates/`` and ``final/`` (two sweeps, resumable as any sweep) and
``cells.csv``: per cell, the winner, each candidate's validation score, and the final runs' names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.config import RunConfig
from ..io.progress import RunCounter
from ..io.results import write_results
from .grids import digest
from .selection import LOWER_IS_BETTER, score
from .sweeps import run_sweep


@dataclass(frozen=True)
class Cell:
    """One question of a study: ``key`` names it (column -> value), ``candidates`` are its runs
    (seed and validation split left at their defaults), ``label`` what to call the winner."""

    key: dict
    candidates: tuple[RunConfig, ...]


@dataclass
class Tuned:
    """A cell's outcome: the winning candidate, every candidate's validation score, and the winner's
    final runs' summaries (one per seed, on the test set)."""

    cell: Cell
    winner: RunConfig
    scores: list[float]
    finals: list[dict]

    def values(self, key: str) -> list[float]:
        """``key`` of each final run that has it finite and did not diverge."""
        out = []
        for summary in self.finals:
            value = summary.get(key)
            if not summary.get("diverged") and isinstance(value, int | float) and math.isfinite(value):
                out.append(float(value))
        return out

    @property
    def at_edge(self) -> bool:
        """Whether the winner's learning rate is the smallest or largest of its cell's (more than one), and
        the winner scored (where no candidate did, the first wins by default: no edge is shown)."""
        rates = {c.lr for c in self.cell.candidates}
        scored = math.isfinite(self.scores[self.cell.candidates.index(self.winner)]) if self.scores else False
        return scored and len(rates) > 1 and self.winner.lr in (min(rates), max(rates))

    @property
    def diverged(self) -> int:
        return sum(bool(s.get("diverged")) for s in self.finals)


def run_cells(
    cells: list[Cell],
    folder: Path,
    *,
    select_by: str,
    tune_seeds: tuple[int, ...],
    seeds: tuple[int, ...],
    validation_split: float = 0.1,
    jobs: int | None = None,
    quiet: bool = False,
    log: Callable[[str], object] = lambda message: None,
) -> list[Tuned]:
    """Tune every cell (see the module's docstring) and run its winner; the outcomes, in order."""
    folder = Path(folder)
    contested = [c for c in cells if len(c.candidates) > 1]  # a lone candidate wins without a run
    trials = [
        replace(c, seed=s, validation_split=validation_split).validate() for c in _all(contested) for s in tune_seeds
    ]
    summaries = _sweep(trials, folder / "candidates", jobs, quiet, log) if trials else {}
    lower = LOWER_IS_BETTER[select_by]
    winners, all_scores = [], []
    for cell in cells:
        scores = []
        for candidate in cell.candidates if len(cell.candidates) > 1 else ():
            runs = [
                summaries[digest(replace(candidate, seed=s, validation_split=validation_split))] for s in tune_seeds
            ]
            scores.append(math.fsum(score(r, select_by) for r in runs) / len(runs))
        sign = 1 if lower else -1
        best = min(range(len(scores)), key=lambda i: (sign * scores[i], i)) if scores else 0  # the first of equals
        winners.append(cell.candidates[best])
        all_scores.append(scores)
    finals = [replace(w, seed=s).validate() for w in winners for s in seeds]
    tested = _sweep(finals, folder / "final", jobs, quiet, log)
    out = [
        Tuned(cell, winner, scores, [tested[digest(replace(winner, seed=s))] for s in seeds])
        for cell, winner, scores in zip(cells, winners, all_scores, strict=True)
    ]
    write_results([_row(t, select_by) for t in out], folder / "cells.csv")
    return out


def _all(cells: list[Cell]) -> list[RunConfig]:
    """Every candidate once (cells may share one), in order."""
    seen: dict[str, RunConfig] = {}
    for cell in cells:
        for c in cell.candidates:
            seen.setdefault(digest(c), c)
    return list(seen.values())


def _sweep(configs: list[RunConfig], folder: Path, jobs, quiet: bool, log) -> dict[str, dict]:
    """Run ``configs`` as a sweep into ``folder`` (resumed if it holds them); digest -> summary row."""
    counter = RunCounter(desc=f"{folder.parent.name}: {folder.name}", quiet=quiet)
    try:
        rows = run_sweep(configs, folder, jobs=jobs, counter=counter, log=log, extend=True)
    finally:
        counter.close()
    return {row["run"].rsplit("-", 1)[-1]: row for row in rows}


def _row(t: Tuned, select_by: str) -> dict:
    row = dict(t.cell.key)
    tuned = [n for n in ("lr", "backups") if len({getattr(c, n) for c in t.cell.candidates}) > 1] or ["lr"]
    row |= {f"winner_{n}": getattr(t.winner, n) for n in tuned}
    for candidate, value in zip(t.cell.candidates, t.scores, strict=False):  # a lone candidate: no score
        name = ",".join(f"{n}={getattr(candidate, n):g}" for n in tuned)
        row[f"validation_{select_by}[{name}]"] = value if math.isfinite(value) else None
    row["final_runs"] = len(t.finals)
    row["final_diverged"] = t.diverged
    return row

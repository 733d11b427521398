"""Flat records of what happened: one per gradient computation, one per update.

Every computation ends with exactly one fate:

- ``applied``: averaged into update ``update``;
- ``dropped_late``: (sync/backup) arrived after its step's update had been applied;
- ``dropped_stale``: (async) staleness above the cutoff;
- ``cancelled``: abandoned unfinished (``cancel`` semantics);
- ``failed``: lost when its worker failed;
- ``unfinished``: still in flight when the run reached its last update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


APPLIED = "applied"
DROPPED_LATE = "dropped_late"
DROPPED_STALE = "dropped_stale"
CANCELLED = "cancelled"
FAILED = "failed"
UNFINISHED = "unfinished"
PENDING = "pending"  # accepted by the PS, waiting for its update; never a final fate
FATES = (APPLIED, DROPPED_LATE, DROPPED_STALE, CANCELLED, FAILED, UNFINISHED)


@dataclass(slots=True)
class Gradient:
    """One gradient computation. Times in seconds of simulated time.

    Attributes:
        id: position in the run's gradient log.
        worker: worker index.
        index: the worker's computation count d (its d-th draw, from 0).
        version: parameter version read at pull.
        step: the step it was computed for (the token's step under ``tf``; else ``version``).
        start, end: when the computation started and finished (``end`` = cancel time when
            cancelled). The pull began one pull time before ``start``; the gradient reaches
            the PS one push time after ``end`` (both are constants of the run).
        fate: see the module docstring.
        update: the update it went into (applied only).
        staleness: PS version at apply (or drop) minus ``version``.
    """

    id: int
    worker: int
    index: int
    version: int
    step: int
    start: float
    end: float
    fate: str = UNFINISHED
    update: int | None = None
    staleness: int | None = None

    FIELDS = ("id", "worker", "index", "version", "step", "start", "end", "fate", "update", "staleness")


@dataclass(slots=True)
class Update:
    """Parameter update ``index`` (producing version ``index``) at simulated ``time`` (s)."""

    index: int
    time: float
    gradients: tuple[Gradient, ...]

    @property
    def repeat_contributions(self) -> int:
        """Gradients beyond a worker's first in this update (possible under ``tf``)."""
        return len(self.gradients) - len({g.worker for g in self.gradients})

    FIELDS = (
        "update",
        "time",
        "iteration_time",
        "gradients",
        "workers",
        "repeat_contributions",
        "mean_staleness",
        "max_staleness",
    )

    def csv_line(self, previous_time: float) -> str:
        """This update as a line of ``updates.csv``."""
        gs = self.gradients
        if len(gs) == 1:
            workers, stale_mean, stale_max = 1, float(gs[0].staleness), gs[0].staleness
        else:
            stale = [g.staleness for g in gs]
            workers, stale_mean, stale_max = len({g.worker for g in gs}), sum(stale) / len(stale), max(stale)
        n = len(gs)
        return update_row(self.index, self.time, previous_time, n, workers, n - workers, stale_mean, stale_max)


# The rows of updates.csv and gradients.csv are encoded here only: every log writes through these.
# Floats are written with repr, so they read back exactly; a missing value is an empty cell.


def update_row(
    index: int,
    time: float,
    previous_time: float,
    gradients: int,
    workers: int,
    repeats: int,
    mean_staleness: float,
    max_staleness: int,
) -> str:
    """One line of ``updates.csv`` (the columns of ``Update.FIELDS``; times in seconds)."""
    interval = time - previous_time
    return f"{index},{time!r},{interval!r},{gradients},{workers},{repeats},{mean_staleness!r},{max_staleness}\n"


def gradient_row(g: Gradient) -> str:
    """One line of ``gradients.csv`` (the columns of ``Gradient.FIELDS``)."""
    update = "" if g.update is None else g.update
    staleness = "" if g.staleness is None else g.staleness
    return f"{g.id},{g.worker},{g.index},{g.version},{g.step},{g.start!r},{g.end!r},{g.fate},{update},{staleness}\n"


@dataclass
class EventLog:
    """Everything a run recorded, in event order."""

    gradients: list[Gradient] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    exhausted: bool = False  # the run ended because a replayed trace was used up
    stalled: str | None = None  # why the run could not progress, if it could not
    budget_spent: str | None = None  # the budget that ended the run: "until" or "gradients"

    def new_gradient(self, worker: int, index: int, version: int, step: int, start: float, end: float) -> Gradient:
        g = Gradient(len(self.gradients), worker, index, version, step, start, end)
        self.gradients.append(g)
        return g

    def fate_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(FATES, 0)
        for g in self.gradients:
            counts[g.fate] += 1
        return counts

    def staleness_stats(self) -> tuple[float, int, int]:
        """(sum, count, max) of the staleness of applied gradients."""
        applied = [g.staleness for g in self.gradients if g.fate == APPLIED]
        return float(sum(applied)), len(applied), max(applied, default=0)

    def repeat_contributions(self) -> int:
        return sum(u.repeat_contributions for u in self.updates)

    def add_update(self, update: Update) -> None:
        self.updates.append(update)

    def iteration_times(self) -> np.ndarray:
        """Seconds between consecutive updates (the first measured from time 0)."""
        import numpy as np  # here, not at import: the command line starts without NumPy (150 ms of its 0.4 s)

        with np.errstate(invalid="ignore"):  # inf - inf after an overflowed clock: nan, written as such
            return np.diff([0.0] + [u.time for u in self.updates])

    def gradient_lines(self):
        return map(gradient_row, self.gradients)

    def update_lines(self):
        previous = 0.0
        for u in self.updates:
            yield u.csv_line(previous)
            previous = u.time

    def summary(self, config) -> dict:
        """The run's headline numbers (the keys of ``summary.json``)."""
        counts = self.fate_counts()
        stale_sum, stale_count, stale_max = self.staleness_stats()
        updates = len(self.updates)
        sim_time = self.updates[-1].time if self.updates else 0.0
        dt = self.iteration_times()
        return {
            "strategy": config.strategy,
            "semantics": config.semantics,
            "workers": config.workers,
            "backups": config.backups,
            "total_workers": config.total_workers,
            "staleness_cutoff": config.staleness_cutoff,
            "latency": config.latency,
            "updates": updates,
            "sim_time": sim_time,
            "mean_iteration_time": sim_time / updates if updates else None,
            "std_iteration_time": float(dt.std(ddof=1)) if updates > 1 else None,
            "time_per_update": sim_time / updates if updates else None,
            "time_per_gradient": sim_time / counts[APPLIED] if counts[APPLIED] else None,
            "samples_per_second": counts[APPLIED] * config.batch_size / sim_time if sim_time > 0 else None,
            "gradients_computed": sum(counts[f] for f in FATES if f != UNFINISHED),
            "gradients_applied": counts[APPLIED],
            "gradients_dropped": counts[DROPPED_LATE] + counts[DROPPED_STALE],
            "gradients_dropped_late": counts[DROPPED_LATE],
            "gradients_dropped_stale": counts[DROPPED_STALE],
            "gradients_cancelled": counts[CANCELLED],
            "gradients_failed": counts[FAILED],
            "gradients_unfinished": counts[UNFINISHED],
            "repeat_contributions": self.repeat_contributions(),
            "mean_staleness": stale_sum / stale_count if stale_count else None,
            "max_staleness": stale_max if stale_count else None,
            "seed": config.seed,
            "trace_exhausted": self.exhausted,
            "stalled": self.stalled,
        } | (self._budget(config, sim_time) if config.budgeted else {})

    def _budget(self, config, sim_time: float) -> dict:
        """The budget of a budgeted run: its limits, which one ended it, and the simulated time
        at its end (``until`` where the time ran out, else the last update's)."""
        end = config.until if self.budget_spent == "until" else sim_time
        return {
            "until": config.until,
            "budget_gradients": config.budget_gradients,
            "budget_spent": self.budget_spent,
            "end_time": end,
        }


FINAL = (APPLIED, DROPPED_LATE, DROPPED_STALE, CANCELLED, FAILED)


class CompactLog(EventLog):
    """An event log that keeps no finished gradient records (``--log-gradients none``).

    Finished records are folded into counters and updates keep only their numbers, so memory
    does not grow with the number of gradients. A fold runs once the list holds more than
    ``2 * limit`` records and more than twice those live after the previous fold: with more
    than ``limit`` computations in flight (many workers) every fold visits at most twice the
    records created since the last one, so the work stays linear in the gradients created.
    """

    def __init__(self, limit: int = 4096):
        super().__init__()
        self.created, self.live = 0, 0  # records created; records live after the last fold
        self.limit = limit  # sets fold_at
        self.visited = 0  # records visited by folds, so far (a test checks the fold is linear)
        self.counts = dict.fromkeys(FATES, 0)
        self.stale = [0.0, 0, 0]  # sum, count, max over folded applied gradients
        self.rows: list[tuple] = []  # per update: (gradients, workers, repeats, mean, max staleness)

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, limit: int) -> None:
        self._limit = limit
        self.fold_at = 2 * max(limit, self.live)  # fold once the list holds more records than this

    def new_gradient(self, worker, index, version, step, start, end) -> Gradient:
        g = Gradient(self.created, worker, index, version, step, start, end)
        self.created += 1
        self.gradients.append(g)
        if len(self.gradients) > self.fold_at:
            self.fold()
        return g

    def fold(self) -> None:
        """Count the finished records and drop them (in place: workers hold the list)."""
        gradients, kept, applied = self.gradients, [], []
        counts = self.counts
        for g in gradients:
            fate = g.fate
            if fate == APPLIED:
                applied.append(g.staleness)
            elif fate in FINAL:
                counts[fate] += 1
            else:
                kept.append(g)
        if applied:
            stale = self.stale
            counts[APPLIED] += len(applied)
            stale[0] += sum(applied)  # integers: the float sum is exact, in any order
            stale[1] += len(applied)
            stale[2] = max(stale[2], max(applied))
        self.visited += len(gradients)
        gradients[:] = kept
        self.live = len(kept)
        self.limit = self._limit

    def add_update(self, update: Update) -> None:
        gs = update.gradients
        stale = [g.staleness for g in gs]
        workers = len({g.worker for g in gs})
        self.rows.append((len(gs), workers, len(gs) - workers, sum(stale) / len(stale), max(stale)))
        self.updates.append(Update(update.index, update.time, ()))

    def fate_counts(self) -> dict[str, int]:
        self.fold()
        counts = dict(self.counts)
        for g in self.gradients:
            counts[g.fate] += 1
        return counts

    def staleness_stats(self) -> tuple[float, int, int]:
        self.fold()
        return self.stale[0], self.stale[1], self.stale[2]

    def repeat_contributions(self) -> int:
        return sum(r[2] for r in self.rows)

    def update_lines(self):
        previous = 0.0
        for u, (n, workers, repeats, mean, top) in zip(self.updates, self.rows, strict=True):
            yield update_row(u.index, u.time, previous, n, workers, repeats, mean, top)
            previous = u.time

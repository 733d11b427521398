"""What the fast path's recursions share (:mod:`barrier_recursion`, :mod:`queue_recursions`): which one times a
configuration, the workers' streams, and the log they return. Apart from the fast path so that
the memory estimate (:mod:`limits`) can ask without importing it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..io.records import APPLIED, FATES, EventLog, Update, update_row
from ..strategies import get
from .streams import Stream, stream

CHUNK = 1 << 24  # draws held at once (128 MB per float64 buffer): memory does not grow with steps


def recursion(config) -> str | None:
    """The closed recursion that times ``config`` ("barrier", "drop", "batch", "arrival"), or None:
    its strategy says (``Strategy.recursion``)."""
    return get(config.strategy).recursion(config)


class Tie(Exception):
    """Two events at the same instant whose order the recursion cannot know (atoms of the
    latency): the run goes to the event engine instead."""


def streams(seed: int, p: int) -> list[np.random.Generator]:
    """The engine's latency streams of workers 0 .. p - 1."""
    return [stream(seed, Stream.LATENCY, w) for w in range(p)]


class _Updates(Sequence):
    """Update records made on demand from the update times (no million objects up front)."""

    def __init__(self, times: np.ndarray):
        self.times = times

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self.times))[i]
        return Update(i + 1, float(self.times[i]), ())


class CountsLog(EventLog):
    """The log of a fast-path run without per-gradient records: update times, fate counts and
    per-update rows.

    Args:
        times: update times (s), shape (steps,).
        counts: computations per fate (missing fates: 0).
        per_update: gradients per update.
        workers: distinct workers per update (default ``per_update``), int or shape (steps,).
        staleness: each update's applied staleness (one gradient per update), shape (steps,);
            None where every applied gradient is fresh.
    """

    def __init__(self, times: np.ndarray, counts: dict, *, per_update: int, workers=None, staleness=None):
        super().__init__()
        self.times, self.counts, self.per_update = times, {**dict.fromkeys(FATES, 0), **counts}, per_update
        self.workers = per_update if workers is None else workers
        self.staleness = staleness
        self.updates = _Updates(times)

    def iteration_times(self) -> np.ndarray:
        return np.diff(np.concatenate([[0.0], self.times]))

    def fate_counts(self) -> dict[str, int]:
        return dict(self.counts)

    def staleness_stats(self) -> tuple[float, int, int]:
        applied = self.counts[APPLIED]
        if self.staleness is None:
            return 0.0, applied, 0  # every applied gradient is fresh
        return float(self.staleness.sum()), applied, int(self.staleness.max(initial=0))

    def repeat_contributions(self) -> int:
        return int(np.sum(self.per_update - np.asarray(self.workers))) if len(self.times) else 0

    def update_lines(self):
        n, steps = self.per_update, len(self.times)
        workers = np.broadcast_to(self.workers, steps).tolist()
        stale = [0] * steps if self.staleness is None else self.staleness.tolist()
        previous = 0.0
        for i, (t, k, s) in enumerate(zip(self.times.tolist(), workers, stale, strict=True), start=1):
            yield update_row(i, t, previous, n, k, n - k, float(s), s)
            previous = t

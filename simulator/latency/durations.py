"""A worker's stream of computation times: drawn i.i.d. from a latency model, or replayed.

The engine's hot path calls ``next`` (a C-level iterator over blocks of draws); calling the
stream itself gives the same values and counts them in ``drawn``.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..io.errors import TraceExhausted


def _blocks(model, rng: np.random.Generator, factor: float, block: int):
    """Blocks of computation times, drawn as needed: 128 first, then ``block`` at a time, so
    that a run of many workers with few computations each holds in memory about what it uses
    (a drawn time costs 32 bytes as a Python float in a list)."""
    yield (model.sample(rng, min(128, block)) * factor).tolist()
    while True:
        yield (model.sample(rng, block) * factor).tolist()


class DurationStream:
    """Worker w's computation times (seconds): call it for the next one.

    Draws are made in growing blocks for speed; the inverse-transform sampling of
    :class:`~stragglersim.latency.LatencyModel` makes the d-th value independent of the block size. ``next`` hands
    out the same values without counting them in ``drawn`` (the engine's hot path counts).
    """

    __slots__ = ("next", "drawn")

    def __init__(self, model, rng: np.random.Generator, factor: float = 1.0, block: int = 1024):
        self.next = itertools.chain.from_iterable(_blocks(model, rng, factor, block)).__next__
        self.drawn = 0  # calls so far

    def __call__(self) -> float:
        self.drawn += 1
        return self.next()


class ReplayStream:
    """A worker's recorded durations, in order; raises TraceExhausted past the end."""

    __slots__ = ("next", "drawn")

    def __init__(self, durations: np.ndarray, factor: float):
        values = (np.asarray(durations, dtype=float) * factor).tolist()
        self.next = itertools.chain(values, _used_up(len(values))).__next__
        self.drawn = 0  # calls so far

    def __call__(self) -> float:
        value = self.next()
        self.drawn += 1
        return value


def _used_up(n: int):
    """An iterator that raises TraceExhausted when asked for a value."""
    raise TraceExhausted(f"worker's trace used up after {n} computations")
    yield

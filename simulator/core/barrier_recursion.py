"""The barrier recursion: every update restarts all P workers, so update k comes at T_{k-1} + pull +
X_{N:P}(k) + push, with X_{N:P}(k) the N-th smallest of the workers' k-th draws (a row-wise order
statistic, drawn a chunk of updates at a time)."""

from __future__ import annotations

import numpy as np

from ..io.records import APPLIED, CANCELLED, EventLog, Gradient, Update
from ..latency import LatencyModel
from ..latency.empirical import Empirical
from ..latency.models import Constant, ScipyLatency, Straggler
from ..strategies import get
from .assemble import RunInputs
from .recursions import CHUNK, CountsLog, Tie, streams


def continuous(model: LatencyModel) -> bool:
    """Whether ``model`` has no atoms, so that two events never share an instant (the order of
    simultaneous events decides fates and draws under drop, batch and async)."""
    if isinstance(model, Straggler):
        return continuous(model.base)
    return isinstance(model, ScipyLatency)


def monotone(model: LatencyModel) -> bool:
    """Whether ``model.transform`` is one non-decreasing function of one uniform (inverse
    transform sampling), so that the N-th smallest draw is the draw of the N-th smallest uniform."""
    return model.n_uniforms == 1 and isinstance(model, ScipyLatency | Constant | Empirical)


def barrier(inputs: RunInputs, records: bool) -> EventLog:
    """Update k at T_{k-1} + pull + X_{N:P}(k) + push; the draws made a chunk of updates at a
    time, each worker's from its own stream in one call."""
    config, cluster = inputs.config, inputs.cluster
    model, factors = cluster.model, cluster.factors
    n, p, steps = get(config.strategy).fast_path(config) or config.workers, config.total_workers, config.steps
    nu = model.n_uniforms
    rngs = streams(config.seed, p)
    uniform_first = not records and monotone(model) and bool(np.all(factors == factors[0]))
    width = max(1, min(steps, CHUNK // (p * nu)))  # updates per chunk
    u = np.empty((p, width, nu))
    rows = np.empty((width, p)) if uniform_first else None
    times = np.empty(steps)
    log = EventLog()
    done, clock = 0, 0.0
    while done < steps:
        k = min(width, steps - done)
        for w, rng in enumerate(rngs):  # model.sample(rng, k) is model.transform(rng.random((k, nu)))
            rng.random(out=u[w, :k])
        if uniform_first:  # transform the N-th smallest uniform of each update only
            rows[:k] = u[:, :k, 0].T
            rows[:k].partition(n - 1, axis=1)
            nth = model.transform(rows[:k, n - 1 : n]) * factors[0]
        else:
            draws = _transform(model, u[:, :k], factors).T
            nth = np.partition(draws, n - 1, axis=1)[:, n - 1]
        # T_k = T_{k-1} + (pull + X + push), added in the engine's order
        chunk = np.cumsum(np.concatenate([[clock], cluster.pull_time + nth + cluster.push_time]))[1:]
        if records:
            starts = np.concatenate([[clock], chunk[:-1]]) + cluster.pull_time
            _record(log, draws, n, starts, chunk, first=done)
        times[done : done + k] = chunk
        clock, done = float(chunk[-1]), done + k
    if records:
        return log
    return CountsLog(times, {APPLIED: n * steps, CANCELLED: (p - n) * steps}, per_update=n)


def _transform(model: LatencyModel, u: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Each worker's draws, shape (P, k), from its uniforms (P, k, nu): transformed a block of
    workers at a time, so the transform's temporaries stay small."""
    p, k, nu = u.shape
    out = np.empty((p, k))
    step = max(1, (1 << 20) // (k * nu))
    for a in range(0, p, step):
        b = min(p, a + step)
        out[a:b] = model.transform(u[a:b].reshape((b - a) * k, nu)).reshape(b - a, k) * factors[a:b, None]
    return out


def _record(log: EventLog, draws: np.ndarray, n: int, starts: np.ndarray, times: np.ndarray, first: int) -> None:
    """Gradient and update records of a chunk: the N fastest applied, the rest cancelled at the
    update. Which of two equal times arrives first is the order of the engine's events, which
    the draws alone do not tell: a tie at the N-th place raises :class:`Tie`."""
    order = np.argsort(draws, axis=1, kind="stable")
    if n < draws.shape[1]:
        ranked = np.take_along_axis(draws, order[:, n - 1 : n + 1], axis=1)
        if np.any(ranked[:, 0] == ranked[:, 1]):
            raise Tie
    for row in range(len(draws)):
        i = first + row
        applied = set(order[row, :n].tolist())
        start, end = float(starts[row]), float(times[row])
        gs = []
        for w in range(draws.shape[1]):
            if w in applied:
                g = Gradient(len(log.gradients), w, i, i, i, start, start + float(draws[row, w]), APPLIED, i + 1, 0)
                gs.append(g)
            else:
                # abandoned at the update: computing until then, or done and still pushing
                g = Gradient(len(log.gradients), w, i, i, i, start, min(start + float(draws[row, w]), end), CANCELLED)
            log.gradients.append(g)
        log.updates.append(Update(i + 1, end, tuple(gs)))

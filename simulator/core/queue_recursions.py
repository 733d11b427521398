"""The fast path's recursions where workers do not all restart together: ``backup`` with
``drop``, ``k-batch-sync`` and ``async`` without a cutoff (see :mod:`fastpath`).

Each worker draws its computation times from its own stream, in order, one per computation it
begins, exactly as in the event engine; :class:`Lookahead` holds the next few of every worker's
draws. A computation begun at time s arrives at s + (pull + x + push), the engine's sum. The
order of simultaneous events decides fates here, so a tie raises :class:`~recursions.Tie` (the
run then goes to the engine); continuous latencies never tie.
"""

from __future__ import annotations

import numpy as np

from ..io.records import APPLIED, CANCELLED, DROPPED_LATE, UNFINISHED
from .assemble import RunInputs
from .recursions import CHUNK, CountsLog, Tie, streams


class Lookahead:
    """The next draws of each of P workers' streams (seconds, speed factors applied).

    ``peek(m)`` shows each worker's next m draws, shape (P, m); ``take(counts)`` consumes
    ``counts[w]`` of worker w's. Rows running short are refilled from their streams, the short
    ones together in one vectorised transform.
    """

    def __init__(self, inputs: RunInputs):
        config, cluster = inputs.config, inputs.cluster
        p = config.total_workers
        self.model, self.factors, self.rngs = cluster.model, cluster.factors, streams(config.seed, p)
        self.width = int(np.clip(CHUNK // (8 * p), 4, 1024))
        self.values = np.empty((p, self.width))
        self.pos, self.end = np.zeros(p, dtype=np.int64), np.zeros(p, dtype=np.int64)
        self.rows = np.arange(p)[:, None]

    def peek(self, m: int) -> np.ndarray:
        short = np.flatnonzero(self.end - self.pos < m)
        if short.size:
            self._refill(short, m)
        return self.values[self.rows, self.pos[:, None] + np.arange(m)]

    def take(self, counts) -> None:
        self.pos += counts

    def _refill(self, short: np.ndarray, m: int) -> None:
        if m > self.width:
            self.width = max(m, 2 * self.width)
            self.values = np.concatenate([self.values, np.empty_like(self.values)], axis=1)[:, : self.width]
        keep = self.end[short] - self.pos[short]
        need = self.width - keep
        nu = self.model.n_uniforms
        u = np.concatenate([self.rngs[w].random((k, nu)) for w, k in zip(short.tolist(), need.tolist(), strict=True)])
        fresh = self.model.transform(u) * np.repeat(self.factors[short], need)
        at = 0
        for w, kept, k in zip(short.tolist(), keep.tolist(), need.tolist(), strict=True):
            row = self.values[w]
            row[:kept] = row[self.pos[w] : self.end[w]].copy()
            row[kept : kept + k] = fresh[at : at + k]
            at += k
        self.pos[short], self.end[short] = 0, self.width


def drop(inputs: RunInputs) -> CountsLog:
    """``backup`` with ``drop``: f_w is when worker w next begins (its last update, or the
    arrival of its late gradient, dropped on arrival). Update k is the N-th smallest candidate
    arrival c_w = f_w + (pull + x_w + push); workers with f_w < T_k have begun (one draw each);
    the first N are applied and restart at T_k, the other starters at c_w."""
    config, cluster = inputs.config, inputs.cluster
    n, p, steps = config.workers, config.total_workers, config.steps
    pull, push = cluster.pull_time, cluster.push_time
    ahead, f = Lookahead(inputs), np.zeros(p)
    times, begun = np.empty(steps), 0
    for k in range(steps):
        c = f + (pull + ahead.peek(1)[:, 0] + push)
        t = np.partition(c, n - 1)[n - 1]
        started = f < t
        if np.any(f == t):
            raise Tie
        ahead.take(started)
        begun += int(started.sum())
        f = np.where(c <= t, t, np.where(started, c, f))
        times[k] = t
    late = p - n  # at the end each worker not in the last update has one gradient in flight
    counts = {APPLIED: n * steps, DROPPED_LATE: begun - n * steps - late, UNFINISHED: late}
    return CountsLog(times, counts, per_update=n)


def batch(inputs: RunInputs) -> CountsLog:
    """``k-batch-sync``: from T_{k-1} every worker computes back to back; update k is the K-th
    smallest of all their arrivals; every worker but the last to arrive is then cancelled, so
    worker w has used (arrivals before T_k) + 1 draws."""
    config, cluster = inputs.config, inputs.cluster
    k_, p, steps = config.k, config.total_workers, config.steps
    pull, push = cluster.pull_time, cluster.push_time
    ahead, t = Lookahead(inputs), 0.0
    times, workers = np.empty(steps), np.empty(steps, dtype=np.int64)
    m = -(-k_ // p) + 1
    for i in range(steps):
        while True:
            steps_ = pull + ahead.peek(m) + push
            arrivals = np.cumsum(np.concatenate([np.full((p, 1), t), steps_], axis=1), axis=1)[:, 1:]
            new = np.partition(arrivals.ravel(), k_ - 1)[k_ - 1]
            if np.all(arrivals[:, -1] >= new):  # every worker's arrivals before T_k are in view
                break
            m *= 2
        if np.count_nonzero(arrivals == new) > 1:
            raise Tie
        ahead.take((arrivals < new).sum(axis=1) + 1)
        workers[i] = np.count_nonzero(arrivals[:, 0] <= new)
        times[i], t = new, float(new)
    counts = {APPLIED: k_ * steps, CANCELLED: (p - 1) * steps}
    return CountsLog(times, counts, per_update=k_, workers=workers)


def async_(inputs: RunInputs) -> CountsLog:
    """``async`` without a cutoff: each worker restarts at its own arrivals, so the update
    times are its P arrival sequences merged. A gradient applied as update u by a worker whose
    previous gradient was update u' (0 for its first) read version u' and has staleness
    u - 1 - u'. Merged a round at a time: arrivals up to the smallest of the workers' last
    drawn ones are final."""
    config, cluster = inputs.config, inputs.cluster
    p, steps = config.total_workers, config.steps
    pull, push = cluster.pull_time, cluster.push_time
    ahead, last, prev = Lookahead(inputs), np.zeros(p), np.zeros(p, dtype=np.int64)
    times, staleness = np.empty(steps), np.empty(steps, dtype=np.int64)
    pool_t, pool_w = np.empty(0), np.empty(0, dtype=np.int64)
    m = max(1, min(ahead.width, (1 << 16) // p))
    owner = np.repeat(np.arange(p), m)
    done = 0
    while done < steps:
        steps_ = pull + ahead.peek(m) + push
        ahead.take(m)
        arrivals = np.cumsum(np.concatenate([last[:, None], steps_], axis=1), axis=1)[:, 1:]
        last = arrivals[:, -1].copy()
        t, w = np.concatenate([pool_t, arrivals.ravel()]), np.concatenate([pool_w, owner])
        final = t <= last.min()
        pool_t, pool_w = t[~final], w[~final]
        order = np.argsort(t[final], kind="stable")
        t, w = t[final][order][: steps - done], w[final][order][: steps - done]
        if np.any(np.diff(t) == 0):
            raise Tie
        u = done + 1 + np.arange(len(t))
        by = np.argsort(w, kind="stable")  # grouped by worker, in time order within
        wb, ub = w[by], u[by]
        first = np.concatenate([[True], wb[1:] != wb[:-1]])
        before = np.concatenate([[0], ub[:-1]])
        before[first] = prev[wb[first]]
        staleness[done + by] = ub - 1 - before
        ends = np.concatenate([wb[1:] != wb[:-1], [True]])
        prev[wb[ends]] = ub[ends]
        times[done : done + len(t)] = t
        done += len(t)
    counts = {APPLIED: steps, UNFINISHED: p - 1}  # the others' computations in flight at the end
    return CountsLog(times, counts, per_update=1, staleness=staleness)


QUEUES = {"drop": drop, "batch": batch, "arrival": async_}  # the recursion -> its function

"""A vectorised fast path for barrier strategies with i.i.d. latencies (timing only).

When every update starts all P workers afresh and waits for the first N (the strategies whose
``fast_path`` gives N: ``sync``; ``backup`` with ``cancel``; ``k-sync``) and nothing couples the
workers (no failures, fail-slow episodes, shared PS link or data-dependent cost), update k takes
pull + X_{N:P}(k) + push, where X_{N:P}(k) is the N-th smallest of the workers' k-th draws. With
the same per-worker streams as the event engine (common random numbers) the fast path gives the
same update times, to rounding, with NumPy's ``partition`` instead of a million SimPy events.
"""

from __future__ import annotations

import numpy as np

from .assemble import RunInputs, inputs_of
from .config import RunConfig
from .latency import LatencyModel
from .records import APPLIED, CANCELLED, FATES, EventLog, Gradient, Update, update_row
from .strategies import get
from .streams import Stream, stream

CHUNK = 256  # updates drawn at a time


def applies(run: RunInputs | RunConfig) -> bool:
    """Whether ``run`` can take the fast path (and gives the same result there)."""
    config = run.config if isinstance(run, RunInputs) else run
    barrier = get(config.strategy).fast_path(config) is not None
    quiet = not (config.fail_slow or config.fail_at or config.failures or config.data_cost != "none")
    if not (config.timing_only and barrier and quiet and config.steps is not None):
        return False
    cluster = inputs_of(run).cluster
    if cluster.link_time > 0:
        return False
    # i.i.d. draws of one model: not a per-worker trace, which overrides stream_for
    return type(cluster.model).stream_for is LatencyModel.stream_for


def fast_simulate(run: RunInputs | RunConfig, *, records: bool = True) -> EventLog:
    """The update times (and, with ``records``, the event log) of a barrier run, vectorised."""
    inputs = inputs_of(run)
    config, cluster = inputs.config, inputs.cluster
    n = get(config.strategy).fast_path(config)
    p = config.total_workers
    rngs = [stream(config.seed, Stream.LATENCY, w) for w in range(p)]  # the engine's streams, in order
    times = np.empty(config.steps)
    log = EventLog()
    done, clock = 0, 0.0
    while done < config.steps:  # in chunks: memory does not grow with the number of updates
        k = min(CHUNK, config.steps - done)
        # model.sample(rng, k) is transform(rng.random((k, n_uniforms))): draw every worker's
        # uniforms from its own stream, then transform them all in one vectorised call.
        nu = cluster.model.n_uniforms
        u = np.stack([rng.random((k, nu)) for rng in rngs])  # (p, k, nu)
        draws = (cluster.model.transform(u.reshape(p * k, nu)).reshape(p, k) * cluster.factors[:, None]).T
        nth = np.partition(draws, n - 1, axis=1)[:, n - 1]
        chunk_times = clock + np.cumsum(cluster.pull_time + nth + cluster.push_time)
        if records:
            starts = np.concatenate([[clock], chunk_times[:-1]]) + cluster.pull_time
            _record(log, draws, n, starts, chunk_times, first=done)
        times[done : done + k] = chunk_times
        clock, done = float(chunk_times[-1]), done + k
    return log if records else CountsLog(times, applied=n, total=p)


def _record(log: EventLog, draws: np.ndarray, n: int, starts: np.ndarray, times: np.ndarray, first: int) -> None:
    """Gradient and update records of a chunk: the N fastest applied (ties: the lower worker
    first), the rest cancelled at the update."""
    order = np.argsort(draws, axis=1, kind="stable")
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
                g = Gradient(len(log.gradients), w, i, i, i, start, end, CANCELLED)
            log.gradients.append(g)
        log.updates.append(Update(i + 1, end, tuple(gs)))


class CountsLog(EventLog):
    """The log of a fast-path run without per-gradient records: update times and fate counts."""

    def __init__(self, times: np.ndarray, *, applied: int, total: int):
        super().__init__()
        self.times, self.per_update, self.total = times, applied, total
        self.updates = [Update(i + 1, float(t), ()) for i, t in enumerate(times)]

    def iteration_times(self) -> np.ndarray:
        return np.diff(np.concatenate([[0.0], self.times]))

    def fate_counts(self) -> dict[str, int]:
        k = len(self.times)
        return {**dict.fromkeys(FATES, 0), APPLIED: self.per_update * k, CANCELLED: (self.total - self.per_update) * k}

    def staleness_stats(self) -> tuple[float, int, int]:
        return 0.0, self.per_update * len(self.times), 0  # every applied gradient is fresh under a barrier

    def repeat_contributions(self) -> int:
        return 0

    def update_lines(self):
        n = self.per_update
        previous = 0.0
        for i, t in enumerate(self.times.tolist(), start=1):
            yield update_row(i, t, previous, n, n, 0, 0.0, 0)
            previous = t

"""The rest of the strategy family: partial barriers, bounded staleness, deadlines.

References:
    Zhang, Gupta, Lian, Liu 2016 (arXiv 1511.05950): n-softsync;
    Dutta, Joshi, Ghosh, Dube, Nagpurkar 2018 (arXiv 1803.01113), §3: K-sync, K-batch-sync,
    K-async, K-batch-async;
    Ho et al. 2013, "More effective distributed ML via a stale synchronous parallel parameter
    server": SSP.
"""

from __future__ import annotations

from .records import DROPPED_LATE
from .strategies import CancelAtUpdate, FirstN, Strategy, cancellable, restart_at_once, wait_for_update

STRATEGIES = ("softsync", "k-sync", "k-batch-sync", "k-async", "k-batch-async", "ssp", "deadline", "adaptive-backup")


class KBatchAsync(Strategy):
    """K mini-batches from anyone, stale or not: every worker pushes, pulls and restarts at once.

    Time per update = K·E[X]/P for any distribution (renewal theory). n-softsync with λ
    workers is this with K = max(1, floor(λ/n)).
    """

    stale = True

    worker = staticmethod(restart_at_once)

    def __init__(self, workers: int, k: int):
        self.n_workers, self.per_update, self.ready = workers, k, FirstN(k)


def softsync(workers: int, n: int) -> KBatchAsync:
    """n-softsync: update after c = max(1, floor(λ/n)) gradients, whatever their staleness."""
    return KBatchAsync(workers, max(1, workers // n))


class KAsync(Strategy):
    """Wait for K gradients, possibly stale; only those K workers pull and restart, the others
    carry on with what they were computing."""

    stale = True

    worker = staticmethod(wait_for_update)

    def __init__(self, workers: int, k: int):
        self.n_workers, self.per_update, self.ready = workers, k, FirstN(k)


def k_sync(workers: int, k: int) -> CancelAtUpdate:
    """K-sync: the first K of P at the current parameters; the rest are cancelled, all restart."""
    return CancelAtUpdate(k, workers - k)


class KBatchSync(CancelAtUpdate):
    """K-batch-sync: the first K mini-batches computed at the current parameters; a worker that
    finishes starts another on the same parameters at once; at the update everyone restarts.

    For Exp(λ) times an update takes K/(Pλ): K arrivals of a Poisson process of rate Pλ.
    """

    def __init__(self, workers: int, k: int):
        super().__init__(k, workers - k)
        self.n_workers = workers

    @staticmethod
    def worker(wk):
        return cancellable(wk, wait=False)


class StaleSynchronous(Strategy):
    """SSP with bound s: every gradient is applied on arrival, but a worker that has completed
    c iterations may start another only while c - (the slowest worker's count) <= s.

    s = 0 is bulk-synchronous; a large s approaches async.
    """

    stale = True
    ready = FirstN(1)

    def __init__(self, workers: int, bound: int):
        self.n_workers, self.per_update, self.bound = workers, 1, bound
        self.clock = [0] * workers  # completed iterations per worker

    def start(self, ps) -> None:
        self.advanced = ps.env.event()  # succeeds when the slowest worker's count grows

    def worker(self, wk):
        ps, w = wk.ps, wk.index
        while True:
            while self.clock[w] - min(self.clock) > self.bound:
                yield self.advanced
            g = yield wk.begin(ps.version)
            ps.receive(g)
            before = min(self.clock)
            self.clock[w] += 1
            if min(self.clock) > before:
                done, self.advanced = self.advanced, ps.env.event()
                done.succeed()


class Deadline(Strategy):
    """Aggregate whatever gradients of the current step arrived by ``timeout`` seconds after the
    step began (at least one: with none by then, the first to arrive completes the step).
    Late gradients are dropped and their workers restart on the newest parameters.
    """

    per_update_varies = True  # anywhere from 1 to P gradients

    def __init__(self, workers: int, timeout: float):
        self.n_workers, self.per_update, self.timeout = workers, workers, timeout

    def admit(self, g, ps):
        return None if g.step == ps.version else DROPPED_LATE

    def ready(self, ps) -> bool:
        if len(ps.pending) >= self.n_workers:
            return True
        return bool(ps.pending) and ps.env.now >= self.step_started + self.timeout

    def start(self, ps) -> None:
        self.on_update(ps)

    def on_update(self, ps) -> None:
        self.step_started = ps.env.now
        ps.env.process(self._timer(ps, ps.version))

    def _timer(self, ps, version: int):
        yield ps.env.timeout(self.timeout)
        if ps.version == version and ps.pending and not ps.finished:
            ps.apply()

    worker = staticmethod(wait_for_update)


def make(config) -> Strategy:
    p, k = config.workers, config.k
    if config.strategy == "softsync":
        return softsync(p, config.softsync_n)
    if config.strategy == "k-sync":
        return k_sync(p, k)
    if config.strategy == "k-batch-sync":
        return KBatchSync(p, k)
    if config.strategy == "k-async":
        return KAsync(p, k)
    if config.strategy == "k-batch-async":
        return KBatchAsync(p, k)
    if config.strategy == "ssp":
        return StaleSynchronous(p, config.ssp_bound)
    if config.strategy == "adaptive-backup":
        from .adaptive import AdaptiveBackup

        return AdaptiveBackup(p, config.batch_size, config.noise_scale or p * config.batch_size, config.adapt_every)
    return Deadline(p, config.deadline)

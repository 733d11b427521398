"""Stale synchronous parallel (SSP): asynchronous updates, but no worker runs more than s
iterations ahead of the slowest.

References:
    Ho et al. 2013, "More effective distributed ML via a stale synchronous parallel parameter
    server": SSP.
"""

from __future__ import annotations

from .base import Strategy
from .options import SSP_BOUND
from .registry import register


@register
class StaleSynchronous(Strategy):
    """SSP with bound s: every gradient is applied on arrival, but a worker that has completed
    c iterations may start another only while c - (the slowest worker's count) <= s.

    s = 0 is bulk-synchronous; a large s approaches async.
    """

    name = "ssp"
    options = (SSP_BOUND,)
    stale = True

    def __init__(self, workers: int, bound: int):
        self.n_workers, self.per_update, self.bound = workers, 1, bound
        self.clock = [0] * workers  # completed iterations per worker

    @classmethod
    def from_config(cls, config) -> StaleSynchronous:
        return cls(config.workers, config.ssp_bound)

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

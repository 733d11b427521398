"""n-softsync: an update after every c = max(1, floor(λ/n)) gradients from λ workers, whatever
their staleness (Dutta et al.'s K-batch-async with K = c).

References:
    Zhang, Gupta, Lian, Liu 2016 (arXiv 1511.05950): n-softsync.
"""

from __future__ import annotations

from .base import Strategy, restart_at_once
from .options import SOFTSYNC_N
from .registry import register


@register
class Softsync(Strategy):
    """Every worker pushes, pulls and restarts at once; the PS updates after every c gradients."""

    name = "softsync"
    options = (SOFTSYNC_N,)
    stale = True
    worker = staticmethod(restart_at_once)

    def __init__(self, workers: int, n: int):
        self.n_workers, self.per_update = workers, max(1, workers // n)

    @classmethod
    def from_config(cls, config) -> Softsync:
        return cls(config.workers, config.softsync_n)

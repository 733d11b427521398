"""Asynchronous SGD: every gradient is applied as it arrives, optionally with a staleness cutoff.

References:
    TensorFlow ``DropStaleGradientOptimizer`` (the cutoff).
"""

from __future__ import annotations

from ..io.records import DROPPED_STALE
from .base import Strategy, restart_at_once
from .options import STALENESS_CUTOFF
from .registry import register


@register
class Async(Strategy):
    """Apply every gradient as it arrives; staleness = PS version at apply - version read.

    With ``cutoff`` T, a gradient whose staleness exceeds T is dropped (TensorFlow's
    ``DropStaleGradientOptimizer``).
    """

    name = "async"
    options = (STALENESS_CUTOFF,)
    stale = True
    shows_staleness = True
    worker = staticmethod(restart_at_once)

    def __init__(self, workers: int, cutoff: int | None = None):
        self.n_workers, self.per_update, self.cutoff = workers, 1, cutoff

    @classmethod
    def from_config(cls, config) -> Async:
        return cls(config.workers, config.staleness_cutoff)

    @classmethod
    def recursion(cls, config) -> str | None:
        return "arrival" if config.staleness_cutoff is None else None  # each gradient applied as it arrives

    def admit(self, g, ps):
        if self.cutoff is not None and ps.version - g.version > self.cutoff:
            return DROPPED_STALE
        return None

"""Deadline: each step aggregates whatever arrived within a fixed time."""

from __future__ import annotations

from ..io.records import DROPPED_LATE
from .base import Strategy, wait_for_update
from .options import DEADLINE
from .registry import register


@register
class Deadline(Strategy):
    """Aggregate whatever gradients of the current step arrived by ``timeout`` seconds after the
    step began (at least one: with none by then, the first to arrive completes the step).
    Late gradients are dropped and their workers restart on the newest parameters.
    """

    name = "deadline"
    options = (DEADLINE,)
    per_update_varies = True  # anywhere from 1 to P gradients
    barrier = True
    worker = staticmethod(wait_for_update)

    def __init__(self, workers: int, timeout: float):
        self.n_workers, self.per_update, self.timeout = workers, workers, timeout

    @classmethod
    def from_config(cls, config) -> Deadline:
        return cls(config.workers, config.deadline)

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

"""A new strategy in one file: everything the package needs to know about it is declared here.

Adding it to the package is this file in ``strategies/`` and its name in the import line of
``strategies/__init__.py``; here (a test) the registration line is ``register(Majority)``.
"""

from stragglersim.io.records import DROPPED_LATE
from stragglersim.strategies import Strategy, cancel_unfinished, cancellable


class Majority(Strategy):
    """Average the first floor(P/2) + 1 gradients of each step; cancel the rest; all restart."""

    name = "toy-majority"
    barrier = True  # every worker computes once per update (the memory estimate)
    worker = staticmethod(cancellable)  # a built-in loop: the engine runs it as event callbacks

    def __init__(self, workers: int):
        self.n_workers, self.per_update = workers, workers // 2 + 1

    @classmethod
    def fast_path(cls, config) -> int:
        return config.workers // 2 + 1  # an update is the m-th of P fresh draws: the vectorised fast path

    def admit(self, g, ps):
        return None if g.step == ps.version else DROPPED_LATE

    def on_update(self, ps):
        cancel_unfinished(ps)
